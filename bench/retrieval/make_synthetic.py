"""Writes a small synthetic BEIR-format dataset (corpus.jsonl, queries.jsonl, qrels/test.tsv) to prove the bench
runs where no public dataset can be downloaded. Topics are short factual passages; each query asks for one passage,
some with its words, some with other words for the same thing (which only embeddings bridge), some by an exact code.

With --zipf it writes a corpus at scale instead: long documents of words drawn from a Zipfian vocabulary (English stop
words plus 50,000 made-up words, frequency ~ 1/rank, as in real text), each on one of docs/5 topics whose words it
uses more often; a query asks for a document by two topic words and one to three of the most common words (the
queries that cost BM25 most), and the documents of its topic are relevant (the asked one most).

    python make_synthetic.py OUT_DIR [--docs 300]
    python make_synthetic.py OUT_DIR --zipf --docs 10000 --words 1500 --queries 200
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
from pathlib import Path

SUBJECTS = [
    ("the heart", "cardiac muscle", "pumps blood through the arteries", "how does the cardiac organ move blood"),
    ("a glacier", "ice sheet", "slowly carves valleys as it flows downhill", "what do slow rivers of ice do to valleys"),
    ("photosynthesis", "plant light capture", "turns sunlight, water and carbon dioxide into sugar",
     "how do plants make food from light"),
    ("a volcano", "magma vent", "erupts molten rock and ash when pressure builds",
     "why do mountains spew lava"),
    ("the immune system", "body defences", "produces antibodies that attack viruses",
     "how does the body fight infections"),
    ("a transistor", "semiconductor switch", "amplifies or switches electronic signals",
     "what component switches current in chips"),
    ("insulin", "pancreatic hormone", "lowers the level of glucose in the blood",
     "which hormone controls blood sugar"),
    ("a comet", "icy body", "grows a glowing tail when it nears the sun",
     "why do icy space objects get tails"),
    ("coral reefs", "reef ecosystems", "shelter a quarter of all marine species",
     "where do many ocean animals live"),
    ("the printing press", "movable type", "spread books and literacy across Europe",
     "what invention made books common"),
]
PLACES = ["Norway", "Peru", "Kenya", "Japan", "Chile", "Canada", "India", "Spain", "Egypt", "Brazil"]
FILLER = ["Researchers reported", "A recent survey found", "Historical records show", "Field studies suggest",
          "Laboratory tests confirmed"]


STOP = ("the of and to in a is that for it as was with be by on not this are or from at which an were have has "
        "but their these its been also than more can may other such into they between".split())
SYLLABLES = [c + v for c in "bcdfghklmnprstvz" for v in ("a", "e", "i", "o", "u", "ai", "ou")]


def vocabulary(rng: random.Random, size: int) -> list[str]:
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < size:
        w = "".join(rng.choice(SYLLABLES) for _ in range(rng.choice((2, 3, 3, 4)))) + rng.choice("nrtlkm")
        if w not in seen:
            seen.add(w)
            words.append(w)
    return words


def zipf(out: Path, docs: int, words: int, nqueries: int, rng: random.Random) -> None:
    vocab = vocabulary(rng, 50_000)
    weights = [1 / (r + 2.7) for r in range(len(vocab))]
    cum = list(itertools.accumulate(weights))
    ntopics = max(1, docs // 5)
    topics = [rng.sample(range(500, len(vocab)), 20) for _ in range(ntopics)]
    corpus, members = [], [[] for _ in range(ntopics)]
    for i in range(docs):
        t = i % ntopics
        members[t].append(i)
        drawn = rng.choices(range(len(vocab)), cum_weights=cum, k=words)
        text = []
        for n, r in enumerate(drawn):
            if rng.random() < 0.35:
                text.append(rng.choice(STOP))
            text.append(vocab[rng.choice(topics[t])] if n % 7 == 0 else vocab[r])
        title = " ".join(vocab[w] for w in topics[t][:3])
        corpus.append({"_id": f"z{i}", "title": title.capitalize(), "text": " ".join(text) + "."})
    queries, qrels = [], []
    for q in range(nqueries):
        i = rng.randrange(docs)
        t = i % ntopics
        ask = [vocab[w] for w in rng.sample(topics[t], 2)] + [vocab[r] for r in rng.sample(range(300), rng.randint(1, 3))]
        rng.shuffle(ask)
        queries.append({"_id": f"zq{q}", "text": " ".join(ask)})
        qrels.extend((f"zq{q}", f"z{d}", 2 if d == i else 1) for d in members[t])
    write(out, corpus, queries, qrels)


def write(out: Path, corpus, queries, qrels) -> None:
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    with open(out / "corpus.jsonl", "w") as f:
        f.writelines(json.dumps(d) + "\n" for d in corpus)
    with open(out / "queries.jsonl", "w") as f:
        f.writelines(json.dumps(q) + "\n" for q in queries)
    with open(out / "qrels" / "test.tsv", "w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        f.writelines(f"{q}\t{d}\t{s}\n" for q, d, s in qrels)
    print(f"{len(corpus)} documents, {len(queries)} queries in {out}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--docs", type=int, default=300)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--zipf", action="store_true", help="a Zipfian corpus at scale (see above)")
    ap.add_argument("--words", type=int, default=1500, help="--zipf: words per document")
    ap.add_argument("--queries", type=int, default=200, help="--zipf: queries")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    if args.zipf:
        return zipf(args.out, args.docs, args.words, args.queries, rng)
    corpus, queries, qrels = [], [], []
    for i in range(args.docs):
        subject, synonym, fact, paraphrase = SUBJECTS[i % len(SUBJECTS)]
        place = PLACES[(i // len(SUBJECTS)) % len(PLACES)]
        code = f"QX-{1000 + i}"
        text = (f"{rng.choice(FILLER)} that {subject} studied in {place} {fact}. "
                f"Sample {code} was catalogued in {1900 + rng.randrange(120)}. "
                f"The {synonym} observations from {place} were repeated {rng.randrange(2, 40)} times.")
        corpus.append({"_id": f"d{i}", "title": f"{subject.capitalize()} in {place} ({code})", "text": text})
        kind = i % 3
        if kind == 0:
            query = f"{subject} {fact.split(' ')[0]} {place}"
        elif kind == 1:
            query = f"{paraphrase} in {place}"
        else:
            query = f"sample {code}"
        queries.append({"_id": f"q{i}", "text": query})
        qrels.append((f"q{i}", f"d{i}", 1))
    write(args.out, corpus, queries, qrels)


if __name__ == "__main__":
    main()
