"""Writes a small synthetic BEIR-format dataset (corpus.jsonl, queries.jsonl, qrels/test.tsv) to prove the bench
runs where no public dataset can be downloaded. Topics are short factual passages; each query asks for one passage,
some with its words, some with other words for the same thing (which only embeddings bridge), some by an exact code.

    python make_synthetic.py OUT_DIR [--docs 300]
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--docs", type=int, default=300)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    (args.out / "qrels").mkdir(parents=True, exist_ok=True)
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
    with open(args.out / "corpus.jsonl", "w") as f:
        f.writelines(json.dumps(d) + "\n" for d in corpus)
    with open(args.out / "queries.jsonl", "w") as f:
        f.writelines(json.dumps(q) + "\n" for q in queries)
    with open(args.out / "qrels" / "test.tsv", "w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        f.writelines(f"{q}\t{d}\t{s}\n" for q, d, s in qrels)
    print(f"{len(corpus)} documents, {len(queries)} queries in {args.out}")


if __name__ == "__main__":
    main()
