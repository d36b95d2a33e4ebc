"""Classify the digit images in a folder with the digits bundle, on the device.

    .venv/bin/python examples/digits/classify.py build/demo/digits examples/digits/images

Uses only the runtime API (``edge.load``) plus Pillow to read the images. A file named
``3_017.png`` is taken to show a 3, so the script can say how many it got right.
"""

import sys
from pathlib import Path

import numpy as np
from PIL import Image

import edge


def read(path: Path) -> np.ndarray:
    """An 8x8 grey image as the model's input: [1, 1, 8, 8] float32 in 0..1."""
    with Image.open(path) as img:
        pixels = np.asarray(img.convert("L").resize((8, 8)), dtype=np.float32) / 255.0
    return pixels[None, None]


def main(bundle: str, folder: str) -> None:
    model = edge.load(bundle)
    print(f"{model.choice.artifact} artifact on {model.choice.runtime} {model.choice.runtime_version}")
    right = total = 0
    for path in sorted(Path(folder).glob("*.png")):
        logits = model.run({"pixels": read(path)})["logits"][0]
        guess = int(logits.argmax())
        truth = path.stem.split("_")[0]
        total += 1
        right += str(guess) == truth
        print(f"{path.name:12s} -> {guess}" + ("" if str(guess) == truth else f"   (labelled {truth})"))
    print(f"{right}/{total} right")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
