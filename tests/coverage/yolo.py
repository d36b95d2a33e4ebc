"""A YOLOv8n-style detector, written out as Ultralytics builds it (Conv-BN-SiLU, C2f with Split,
SPPF, nearest Upsample, a decoupled head with DFL and anchors made from the feature maps' sizes),
exported to ONNX the way Ultralytics does (TorchScript exporter, opset 17, dynamic batch, height
and width), so the file carries the same Shape -> Gather -> Range chains and computed Resize.

Ultralytics itself needs torchvision, whose PyPI build cannot load beside the CPU torch
(docs/yolo-tflite-research.md): this is its graph at a tenth of the width, with random weights.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


class Conv(nn.Module):
    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(c2)
        self.act = nn.SiLU()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    def __init__(self, c: int, shortcut: bool = True) -> None:
        super().__init__()
        self.cv1, self.cv2, self.add = Conv(c, c, 3), Conv(c, c, 3), shortcut

    def forward(self, x):
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C2f(nn.Module):
    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = False) -> None:
        super().__init__()
        self.c = c2 // 2
        self.cv1 = Conv(c1, 2 * self.c)
        self.cv2 = Conv((2 + n) * self.c, c2)
        self.m = nn.ModuleList(Bottleneck(self.c, shortcut) for _ in range(n))

    def forward(self, x):
        y = list(self.cv1(x).split((self.c, self.c), 1))
        y.extend(m(y[-1]) for m in self.m)
        return self.cv2(torch.cat(y, 1))


class SPPF(nn.Module):
    def __init__(self, c1: int, c2: int) -> None:
        super().__init__()
        self.cv1, self.cv2 = Conv(c1, c1 // 2), Conv(c1 // 2 * 4, c2)
        self.m = nn.MaxPool2d(5, 1, 2)

    def forward(self, x):
        y = [self.cv1(x)]
        y.extend(self.m(y[-1]) for _ in range(3))
        return self.cv2(torch.cat(y, 1))


class DFL(nn.Module):
    """Distribution focal loss integral: a fixed 1x1 conv over softmax(16 bins)."""

    def __init__(self, bins: int = 16) -> None:
        super().__init__()
        self.conv = nn.Conv2d(bins, 1, 1, bias=False).requires_grad_(False)
        self.conv.weight.data[:] = torch.arange(bins, dtype=torch.float).view(1, bins, 1, 1)
        self.bins = bins

    def forward(self, x):
        b, _, a = x.shape
        return self.conv(x.view(b, 4, self.bins, a).transpose(2, 1).softmax(1)).view(b, 4, a)


class Detect(nn.Module):
    def __init__(self, classes: int, channels: tuple[int, ...]) -> None:
        super().__init__()
        self.nc, self.reg, self.stride = classes, 16, (8, 16, 32)
        self.no = classes + 4 * self.reg
        c2, c3 = max(16, channels[0] // 4, 4 * self.reg), max(channels[0], min(classes, 100))
        self.cv2 = nn.ModuleList(nn.Sequential(Conv(c, c2, 3), Conv(c2, c2, 3), nn.Conv2d(c2, 4 * self.reg, 1)) for c in channels)
        self.cv3 = nn.ModuleList(nn.Sequential(Conv(c, c3, 3), Conv(c3, c3, 3), nn.Conv2d(c3, classes, 1)) for c in channels)
        self.dfl = DFL(self.reg)

    def forward(self, xs):
        shape = xs[0].shape
        xs = [torch.cat((self.cv2[i](x), self.cv3[i](x)), 1) for i, x in enumerate(xs)]
        anchors, strides = self._anchors(xs)
        flat = torch.cat([x.view(shape[0], self.no, -1) for x in xs], 2)
        box, cls = flat.split((self.reg * 4, self.nc), 1)
        lt, rb = self.dfl(box).chunk(2, 1)
        xy, wh = (anchors + (rb - lt) / 2), (lt + rb)  # dist2bbox, xywh
        return torch.cat((torch.cat((xy, wh), 1) * strides, cls.sigmoid()), 1)

    def _anchors(self, xs):
        points, strides = [], []
        for x, stride in zip(xs, self.stride):
            _, _, h, w = x.shape
            sx = torch.arange(end=w, dtype=x.dtype) + 0.5
            sy = torch.arange(end=h, dtype=x.dtype) + 0.5
            yy, xx = torch.meshgrid(sy, sx, indexing="ij")
            points.append(torch.stack((xx, yy), -1).view(-1, 2))
            strides.append(torch.full((h * w, 1), stride, dtype=x.dtype))
        return torch.cat(points).transpose(0, 1), torch.cat(strides).transpose(0, 1)


class YoloV8(nn.Module):
    """The v8 backbone and PAN neck with widths (8, 16, 32, 64, 128) instead of n's (16 ... 256)."""

    def __init__(self, classes: int = 80, w: tuple[int, ...] = (8, 16, 32, 64, 128)) -> None:
        super().__init__()
        self.b0, self.b1, self.b2 = Conv(3, w[0], 3, 2), Conv(w[0], w[1], 3, 2), C2f(w[1], w[1], 1, True)
        self.b3, self.b4 = Conv(w[1], w[2], 3, 2), C2f(w[2], w[2], 2, True)
        self.b5, self.b6 = Conv(w[2], w[3], 3, 2), C2f(w[3], w[3], 2, True)
        self.b7, self.b8, self.b9 = Conv(w[3], w[4], 3, 2), C2f(w[4], w[4], 1, True), SPPF(w[4], w[4])
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.h12, self.h15 = C2f(w[4] + w[3], w[3]), C2f(w[3] + w[2], w[2])
        self.h16, self.h18 = Conv(w[2], w[2], 3, 2), C2f(w[2] + w[3], w[3])
        self.h19, self.h21 = Conv(w[3], w[3], 3, 2), C2f(w[3] + w[4], w[4])
        self.detect = Detect(classes, (w[2], w[3], w[4]))

    def forward(self, images):
        p3 = self.b4(self.b3(self.b2(self.b1(self.b0(images)))))
        p4 = self.b6(self.b5(p3))
        p5 = self.b9(self.b8(self.b7(p4)))
        n4 = self.h12(torch.cat((self.up(p5), p4), 1))
        n3 = self.h15(torch.cat((self.up(n4), p3), 1))
        m4 = self.h18(torch.cat((self.h16(n3), n4), 1))
        m5 = self.h21(torch.cat((self.h19(m4), p5), 1))
        return self.detect([n3, m4, m5])


def export(path: Path, opset: int = 17, seed: int = 0) -> Path:
    """Write the detector as Ultralytics' ``format=onnx, dynamic=True`` does; returns ``path``."""
    torch.manual_seed(seed)
    model = YoloV8().eval()
    for m in model.modules():  # random BatchNorm statistics, so folding them is exercised
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    with torch.no_grad():
        torch.onnx.export(model, torch.rand(1, 3, 320, 320), str(path), opset_version=opset, dynamo=False,
                          input_names=["images"], output_names=["output0"],
                          dynamic_axes={"images": {0: "batch", 2: "height", 3: "width"},
                                        "output0": {0: "batch", 2: "anchors"}})
    return path
