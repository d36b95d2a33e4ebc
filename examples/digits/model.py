"""A small CNN for scikit-learn's 8x8 digits, and the factory ``edge export`` calls.

    edge export examples/digits/model.py:create --target auto -o build/digits

Input: ``pixels``, float32 [batch, 1, 8, 8] with values in 0..1 (the data set's 0..16 / 16).
Output: ``logits`` [batch, 10].
"""

from pathlib import Path

import torch
from torch import nn

WEIGHTS = Path(__file__).with_name("digits_cnn.pt")
INPUTS = ["pixels:float32[batch,1,8,8]:0..1"]
OUTPUTS = ["logits"]


class DigitsCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),  # 4x4
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.classifier = nn.Linear(64, 10)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(pixels), 1))


def create():
    """The trained model and its signature (what ``edge export`` needs)."""
    model = DigitsCNN()
    model.load_state_dict(torch.load(WEIGHTS, map_location="cpu", weights_only=True))
    return model.eval(), INPUTS, OUTPUTS
