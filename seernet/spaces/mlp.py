"""Multi-layer perceptrons: the simplest family, and the one where Gemm dominates."""
from __future__ import annotations

import random

import torch
from torch import nn

from .base import BATCH_SIZES, ModelSpace
from .config import ModelConfig
from .schema import Int, ListOf, Obj, OneOf

_ACTS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


class MLP(nn.Module):
    def __init__(self, arch: dict, in_features: int, num_classes: int = 10) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_features
        for width in arch["widths"]:
            layers.append(nn.Linear(c, int(width)))
            if arch.get("norm") == "batchnorm":
                layers.append(nn.BatchNorm1d(int(width)))
            elif arch.get("norm") == "layernorm":
                layers.append(nn.LayerNorm(int(width)))
            layers.append(_ACTS[arch.get("activation", "relu")]())
            c = int(width)
        layers.append(nn.Linear(c, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MLPSpace(ModelSpace):
    name = "mlp"
    family = "mlp"
    arch_schema = Obj({"widths": ListOf(Int(1, 16384), 1, 64), "activation": OneOf(tuple(sorted(_ACTS))),
                       "norm": OneOf(("none", "batchnorm", "layernorm"))}, frozenset({"widths"}))
    input_size_range = (1, 65536)

    def sample_arch(self, rng: random.Random) -> dict:
        depth = rng.randint(1, 8)
        return {
            "widths": [rng.choice([64, 128, 256, 512, 1024, 2048]) for _ in range(depth)],
            "activation": rng.choice(sorted(_ACTS)),
            "norm": rng.choice(["none", "batchnorm", "layernorm"]),
        }

    def sample(self, rng: random.Random, batch_sizes: tuple[int, ...] = BATCH_SIZES) -> ModelConfig:
        """BatchNorm cannot train on a batch of one, so such draws use LayerNorm instead."""
        config = super().sample(rng, batch_sizes)
        if config.batch_size == 1 and config.arch.get("norm") == "batchnorm":
            arch = {**config.arch, "norm": "layernorm"}
            config = ModelConfig(config.space, arch, config.batch_size, config.input_size, config.seed)
        return config

    def input_sizes(self) -> tuple[int, ...]:
        return (64, 256, 784, 1024, 3072)

    def build(self, config: ModelConfig) -> nn.Module:
        return MLP(dict(config.arch), config.input_size)

    def example_input(self, config: ModelConfig) -> torch.Tensor:
        return torch.randn(config.batch_size, config.input_size)
