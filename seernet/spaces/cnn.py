"""PerfSeer's RegNet-style CNN space: stem → 4 stages → head, one style per stage.

Each stage picks one of five block styles (VGG, GoogLeNet, ResNe(X)t, DenseNet,
MobileNet) with its own depth, width and style parameters; the first block of
stages 2-4 halves the resolution.  Widths are kept modest so that a 2-core CPU
can measure thousands of configurations.
"""
from __future__ import annotations

import random

import torch
from torch import nn

from .base import ModelSpace
from .config import ModelConfig
from .schema import Int, ListOf, Obj, OneOf, Real

STYLES = ("vgg", "googlenet", "resnext", "densenet", "mobilenet")
STAGE_WIDTHS = ((16, 24, 32, 48), (32, 48, 64, 96), (48, 64, 96, 128, 160), (64, 96, 128, 192, 256))


def conv_bn_relu(c_in: int, c_out: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class VGGBlock(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, stride: int, params: dict) -> None:
        layers = [conv_bn_relu(c_in, c_out, 3, 1)]
        if stride == 2:
            layers.append(nn.MaxPool2d(2, 2))
        super().__init__(*layers)


class InceptionBlock(nn.Module):
    """GoogLeNet-style: 1x1, 1x1→3x3, 1x1→3x3→3x3 and pool→1x1 branches, concatenated."""

    def __init__(self, c_in: int, c_out: int, stride: int, params: dict) -> None:
        super().__init__()
        b = c_out // 4  # widths are >= 16, so every branch has >= 4 channels
        reduce = max(4, int(b * params.get("reduce_ratio", 0.5)))
        self.down = nn.MaxPool2d(3, 2, 1) if stride == 2 else nn.Identity()
        self.b1 = conv_bn_relu(c_in, b, 1)
        self.b2 = nn.Sequential(conv_bn_relu(c_in, reduce, 1), conv_bn_relu(reduce, b, 3))
        self.b3 = nn.Sequential(conv_bn_relu(c_in, reduce, 1), conv_bn_relu(reduce, b, 3), conv_bn_relu(b, b, 3))
        self.b4 = nn.Sequential(nn.MaxPool2d(3, 1, 1), conv_bn_relu(c_in, c_out - 3 * b, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.down(x)
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], dim=1)


class ResNeXtBlock(nn.Module):
    """Bottleneck 1x1 → grouped 3x3 → 1x1 with a residual (projected when shapes change)."""

    def __init__(self, c_in: int, c_out: int, stride: int, params: dict) -> None:
        super().__init__()
        group_width = int(params.get("group_width", 8))
        mid = max(group_width, int(c_out * params.get("bottleneck", 0.5)) // group_width * group_width)
        self.body = nn.Sequential(
            conv_bn_relu(c_in, mid, 1),
            conv_bn_relu(mid, mid, 3, stride, groups=mid // group_width),
            nn.Conv2d(mid, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


class DenseLayer(nn.Module):
    def __init__(self, c_in: int, growth: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(c_in), nn.ReLU(inplace=True), nn.Conv2d(c_in, 4 * growth, 1, bias=False),
            nn.BatchNorm2d(4 * growth), nn.ReLU(inplace=True), nn.Conv2d(4 * growth, growth, 3, 1, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.body(x)], dim=1)


class DenseStage(nn.Module):
    """A dense block (each layer sees every earlier feature map) and a 1x1 transition to the stage width."""

    def __init__(self, c_in: int, c_out: int, stride: int, depth: int, params: dict) -> None:
        super().__init__()
        growth = int(params.get("growth_rate", 12))
        layers = []
        c = c_in
        for _ in range(depth):
            layers.append(DenseLayer(c, growth))
            c += growth
        self.dense = nn.Sequential(*layers)
        transition: list[nn.Module] = [nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.Conv2d(c, c_out, 1, bias=False)]
        if stride == 2:
            transition.append(nn.AvgPool2d(2, 2))
        self.transition = nn.Sequential(*transition)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.transition(self.dense(x))


class InvertedResidual(nn.Module):
    """MobileNetV2: 1x1 expand → depthwise 3x3 → 1x1 project, residual when shapes allow."""

    def __init__(self, c_in: int, c_out: int, stride: int, params: dict) -> None:
        super().__init__()
        hidden = c_in * int(params.get("expansion", 4))
        kernel = int(params.get("kernel", 3))
        layers: list[nn.Module] = []
        if hidden != c_in:
            layers.append(conv_bn_relu(c_in, hidden, 1))
        layers += [conv_bn_relu(hidden, hidden, kernel, stride, groups=hidden),
                   nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return x + out if self.residual else out


_BLOCKS = {"vgg": VGGBlock, "googlenet": InceptionBlock, "resnext": ResNeXtBlock, "mobilenet": InvertedResidual}


def build_stage(style: str, c_in: int, c_out: int, stride: int, depth: int, params: dict) -> nn.Module:
    if style == "densenet":
        return DenseStage(c_in, c_out, stride, depth, params)
    if style not in _BLOCKS:
        raise ValueError(f"unknown CNN stage style {style!r}; expected one of {STYLES}")
    block = _BLOCKS[style]
    return nn.Sequential(*(block(c_in if i == 0 else c_out, c_out, stride if i == 0 else 1, params) for i in range(depth)))


class RegNetStyleCNN(nn.Module):
    def __init__(self, arch: dict, num_classes: int = 10) -> None:
        super().__init__()
        stem = int(arch["stem_width"])
        self.stem = conv_bn_relu(3, stem, 3, int(arch.get("stem_stride", 1)))
        stages = []
        c = stem
        for i, stage in enumerate(arch["stages"]):
            stages.append(build_stage(stage["style"], c, int(stage["width"]), 1 if i == 0 else 2,
                                      int(stage["depth"]), stage.get("params", {})))
            c = int(stage["width"])
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))


def _style_params(style: str, rng: random.Random) -> dict:
    if style == "resnext":
        return {"group_width": rng.choice([4, 8, 16]), "bottleneck": rng.choice([0.25, 0.5, 1.0])}
    if style == "densenet":
        return {"growth_rate": rng.choice([8, 12, 16, 24])}
    if style == "mobilenet":
        return {"expansion": rng.choice([1, 3, 4, 6]), "kernel": rng.choice([3, 5])}
    if style == "googlenet":
        return {"reduce_ratio": rng.choice([0.5, 0.75, 1.0])}
    return {}


_STAGE = Obj({
    "style": OneOf(STYLES), "depth": Int(1, 32), "width": Int(1, 4096),
    "params": Obj({"group_width": Int(1, 512), "bottleneck": Real(0.01, 8.0), "growth_rate": Int(1, 512),
                   "expansion": Int(1, 16), "kernel": OneOf((1, 3, 5, 7)), "reduce_ratio": Real(0.01, 8.0)}),
}, frozenset({"style", "depth", "width"}))


class CNNSpace(ModelSpace):
    name = "cnn"
    family = "cnn"
    arch_schema = Obj({"stem_width": Int(1, 1024), "stem_stride": Int(1, 4), "stages": ListOf(_STAGE, 1, 8)},
                      frozenset({"stem_width", "stages"}))
    input_size_range = (8, 2048)

    def sample_arch(self, rng: random.Random) -> dict:
        stages = []
        for i in range(4):
            style = rng.choice(STYLES)
            stages.append({
                "style": style,
                "depth": rng.randint(1, 3),
                "width": rng.choice(STAGE_WIDTHS[i]),
                "params": _style_params(style, rng),
            })
        return {"stem_width": rng.choice([16, 24, 32]), "stem_stride": rng.choice([1, 2]), "stages": stages}

    def input_sizes(self) -> tuple[int, ...]:
        return (32, 64, 96, 128)

    def build(self, config: ModelConfig) -> nn.Module:
        return RegNetStyleCNN(dict(config.arch))

    def example_input(self, config: ModelConfig) -> torch.Tensor:
        return torch.randn(config.batch_size, 3, config.input_size, config.input_size)
