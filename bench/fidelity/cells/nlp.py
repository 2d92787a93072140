# %% nltk tokenize without downloads
import nltk
from nltk.tokenize import wordpunct_tokenize, TreebankWordTokenizer
from nltk.stem import PorterStemmer, SnowballStemmer
tokens = wordpunct_tokenize("The runners were running quickly, weren't they?")
stems = [PorterStemmer().stem(t) for t in tokens]
assert "run" in stems
# %% nltk ngrams and frequency distribution
from nltk import FreqDist, ngrams
words = "the cat sat on the mat the end".split()
fd = FreqDist(words)
assert fd.most_common(1)[0] == ("the", 3) and len(list(ngrams(words, 2))) == 7
# %% textblob sentiment (its lexicon ships with it; no corpora)
from textblob import TextBlob
good = TextBlob("This product is wonderful and amazing.").sentiment.polarity
bad = TextBlob("The delivery was terrible.").sentiment.polarity
print(good, bad)
assert good > 0 > bad
# %% spacy blank pipeline tokenizer and matcher
import spacy
from spacy.matcher import Matcher
nlp = spacy.blank("en")
doc = nlp("Apple is looking at buying U.K. startup for $1 billion")
matcher = Matcher(nlp.vocab)
matcher.add("MONEY", [[{"ORTH": "$"}, {"LIKE_NUM": True}, {"LOWER": "billion"}]])
assert len(doc) > 8 and len(matcher(doc)) == 1
# %% spacy entity ruler
ruler = nlp.add_pipe("entity_ruler")
ruler.add_patterns([{"label": "ORG", "pattern": "Apple"}])
assert [(e.text, e.label_) for e in nlp("Apple hires").ents] == [("Apple", "ORG")]
# %% gensim word2vec
from gensim.models import Word2Vec
sentences = [["cat", "dog", "pet"], ["dog", "bark", "pet"], ["cat", "meow", "pet"]] * 50
w2v = Word2Vec(sentences, vector_size=20, min_count=1, seed=0, workers=1, epochs=20)
assert w2v.wv["cat"].shape == (20,)
w2v.wv.most_similar("dog", topn=2)
# %% gensim LDA topics
from gensim import corpora, models
texts = [["apple", "banana", "fruit"], ["car", "engine", "wheel"], ["banana", "fruit", "juice"], ["wheel", "car", "road"]] * 10
dictionary = corpora.Dictionary(texts)
lda = models.LdaModel([dictionary.doc2bow(t) for t in texts], num_topics=2, id2word=dictionary, random_state=0)
assert len(lda.print_topics()) == 2
# %% rapidfuzz and fuzzywuzzy matching
from rapidfuzz import fuzz, process
from fuzzywuzzy import fuzz as fw
best = process.extractOne("appel", ["apple", "maple", "people"])
assert best[0] == "apple" and fw.ratio("kitten", "sitting") > 50
# %% pronouncing rhymes
import pronouncing
assert "cat" in pronouncing.rhymes("hat")
pronouncing.syllable_count(pronouncing.phones_for_word("python")[0])
# %% markdownify and BeautifulSoup
from markdownify import markdownify as md
from bs4 import BeautifulSoup
html = "<h1>Title</h1><p>Some <b>bold</b> text</p><ul><li>a</li><li>b</li></ul>"
assert "**bold**" in md(html) and BeautifulSoup(html, "lxml").h1.text == "Title"
