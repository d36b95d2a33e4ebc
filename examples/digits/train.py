"""Train the digits CNN deterministically and write ``digits_cnn.pt`` beside this file.

    python examples/digits/train.py

Same seed, same torch version, same CPU: the same weights. Prints the test-set accuracy
(the split is scikit-learn's, 25 % held out, random_state 0).
"""

import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

sys.path.insert(0, str(Path(__file__).parent))
from model import WEIGHTS, DigitsCNN  # noqa: E402


def data():
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    return train_test_split(x, digits.target.astype(np.int64), test_size=0.25, random_state=0)


def main() -> None:
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    x_train, x_test, y_train, y_test = data()
    model = DigitsCNN()
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    generator = torch.Generator().manual_seed(0)
    for _epoch in range(30):
        order = torch.randperm(len(xt), generator=generator)
        for i in range(0, len(xt), 64):
            idx = order[i : i + 64]
            optimiser.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            loss.backward()
            optimiser.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean()
    torch.save(model.state_dict(), WEIGHTS)
    print(f"test accuracy {accuracy:.4f} on {len(y_test)} images; wrote {WEIGHTS}")


if __name__ == "__main__":
    main()
