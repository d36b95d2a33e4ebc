"""Write calibration and evaluation sentences for the MiniLM examples, from Python's own docs.

    python examples/minilm/make_sentences.py

Real English prose that ships with every CPython (``pydoc_data.topics``), so nothing is
downloaded: 778 sentences of 8-30 words, shuffled with a fixed seed; the first 100 go to
calib.txt and the next 200 to eval.txt (disjoint).
"""

import random
import re
from pathlib import Path

from pydoc_data.topics import topics

HERE = Path(__file__).parent


def sentences() -> list[str]:
    text = re.sub(r"\s+", " ", " ".join(topics[k] for k in sorted(topics)))
    found = re.split(r"(?<=[.!?])\s+(?=[A-Z])", text)
    keep = [
        s for s in found
        if 8 <= len(s.split()) <= 30
        and re.fullmatch(r"[A-Za-z0-9 ,;:'\"()\-.!?]+", s)
        and not re.search(r"[=*_`>]|\.\.\.|\(\)", s)
    ]
    keep = sorted(set(keep))
    random.Random(0).shuffle(keep)
    return keep


def main() -> None:
    found = sentences()
    (HERE / "calib.txt").write_text("\n".join(found[:100]) + "\n")
    (HERE / "eval.txt").write_text("\n".join(found[100:300]) + "\n")
    print(f"{len(found)} sentences; wrote calib.txt (100) and eval.txt (200)")


if __name__ == "__main__":
    main()
