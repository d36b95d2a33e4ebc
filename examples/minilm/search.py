"""Embed sentences with the MiniLM bundle and answer nearest-neighbour queries.

    .venv/bin/python examples/minilm/search.py build/demo/minilm "how are modules imported?"

The corpus is the 300 sentences of calib.txt and eval.txt beside this script (Python's own
documentation). Embeddings are the masked mean of the model's token states, as
sentence-transformers computes them; the bundle carries its tokenizer.
"""

import sys
from pathlib import Path

import numpy as np

import edge
from edge.device.text import encode

HERE = Path(__file__).parent


def embed(model: edge.Model, tokenizer: Path, sentences: list[str]) -> np.ndarray:
    # A TFLite artifact takes one fixed shape (batch 1); an ONNX one takes batches of any size.
    fixed = model.inputs[0].shape[0]
    batch = fixed if isinstance(fixed, int) else 16
    out = []
    for i in range(0, len(sentences), batch):
        feeds = encode(tokenizer, sentences[i : i + batch], 128)
        hidden = model.run({s.name: feeds[s.name] for s in model.inputs})["last_hidden_state"]
        mask = feeds["attention_mask"][..., None]
        pooled = (hidden * mask).sum(1) / mask.sum(1)
        out.append(pooled / np.linalg.norm(pooled, axis=1, keepdims=True))
    return np.concatenate(out)


def main(bundle: str, queries: list[str]) -> None:
    model = edge.load(bundle)
    tokenizer = Path(bundle) / "tokenizer/tokenizer.json"
    corpus = [s for name in ("calib.txt", "eval.txt") for s in (HERE / name).read_text().splitlines() if s.strip()]
    print(f"{model.choice.artifact} artifact on {model.choice.runtime}; embedding {len(corpus)} sentences...")
    index = embed(model, tokenizer, corpus)
    for query, vector in zip(queries, embed(model, tokenizer, queries)):
        scores = index @ vector
        print(f"\n{query}")
        for k in np.argsort(scores)[::-1][:3]:
            print(f"  {scores[k]:.3f}  {corpus[k]}")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
