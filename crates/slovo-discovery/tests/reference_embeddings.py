"""Reference sentence embeddings for tests/embed.rs, computed independently of candle.

A plain numpy BERT forward pass over the same sentence-transformers directory (weights read with
`safetensors`, text split with the `tokenizers` Python package), mean pooling and L2
normalisation as the directory's modules.json says. Prints, per sentence, the first eight
components and the norm, and the pairwise cosines.

    python3 -m venv /tmp/ref && /tmp/ref/bin/pip install numpy safetensors tokenizers
    /tmp/ref/bin/python crates/slovo-discovery/tests/reference_embeddings.py \
        ~/.cache/slovo-test/models/all-MiniLM-L6-v2
"""
import json
import math
import sys

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

SENTENCES = [
    "book me a table for two tonight",
    "restaurant reservations",
    "current air quality index for a city",
    "delete a file from the repository",
]


def layer_norm(x, w, b, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


def gelu(x):
    # BERT's exact GELU (erf), as config.json's hidden_act "gelu" means.
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def embed(model_dir, text):
    cfg = json.load(open(f"{model_dir}/config.json"))
    w = load_file(f"{model_dir}/model.safetensors")
    p = "" if "embeddings.word_embeddings.weight" in w else "bert."
    tok = Tokenizer.from_file(f"{model_dir}/tokenizer.json")
    # tokenizer.json pads to 128 tokens; sentence-transformers masks padding out, so drop it.
    tok.no_padding()
    enc = tok.encode(text)
    ids = np.array(enc.ids)
    eps = cfg["layer_norm_eps"]
    h = (w[p + "embeddings.word_embeddings.weight"][ids]
         + w[p + "embeddings.position_embeddings.weight"][: len(ids)]
         + w[p + "embeddings.token_type_embeddings.weight"][0])
    h = layer_norm(h, w[p + "embeddings.LayerNorm.weight"], w[p + "embeddings.LayerNorm.bias"], eps)
    heads = cfg["num_attention_heads"]
    dh = cfg["hidden_size"] // heads
    for i in range(cfg["num_hidden_layers"]):
        l = f"{p}encoder.layer.{i}."
        lin = lambda x, n: x @ w[l + n + ".weight"].T + w[l + n + ".bias"]
        q = lin(h, "attention.self.query").reshape(len(ids), heads, dh).transpose(1, 0, 2)
        k = lin(h, "attention.self.key").reshape(len(ids), heads, dh).transpose(1, 0, 2)
        v = lin(h, "attention.self.value").reshape(len(ids), heads, dh).transpose(1, 0, 2)
        s = q @ k.transpose(0, 2, 1) / math.sqrt(dh)
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        a = (s @ v).transpose(1, 0, 2).reshape(len(ids), -1)
        h = layer_norm(lin(a, "attention.output.dense") + h,
                       w[l + "attention.output.LayerNorm.weight"], w[l + "attention.output.LayerNorm.bias"], eps)
        f = lin(gelu(lin(h, "intermediate.dense")), "output.dense")
        h = layer_norm(f + h, w[l + "output.LayerNorm.weight"], w[l + "output.LayerNorm.bias"], eps)
    v = h.mean(0)
    return v / np.linalg.norm(v)


def main():
    model_dir = sys.argv[1]
    vs = [embed(model_dir, s) for s in SENTENCES]
    for s, v in zip(SENTENCES, vs):
        print(json.dumps(s), [round(float(x), 5) for x in v[:8]])
    for i in range(len(vs)):
        for j in range(i + 1, len(vs)):
            print(i, j, round(float(vs[i] @ vs[j]), 5))


if __name__ == "__main__":
    main()
