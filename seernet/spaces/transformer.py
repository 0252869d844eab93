"""ViT- and BERT-encoder-style transformers, written out op by op.

Attention is spelled as explicit Q/K/V projections, batched MatMuls and a
Softmax (not ``nn.MultiheadAttention``) so the exported ONNX graph shows the
operators that decide its cost, as real exported transformers do.
"""
from __future__ import annotations

import math
import random

import torch
from torch import nn

from .base import ModelSpace
from .config import ModelConfig
from .schema import Int, Obj, Real


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads, self.head_dim = heads, dim // heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = torch.softmax(q @ k.transpose(-2, -1) * (1.0 / math.sqrt(self.head_dim)), dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, d))


class EncoderLayer(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float, pre_norm: bool) -> None:
        super().__init__()
        self.pre_norm = pre_norm
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pre_norm:  # ViT
            x = x + self.attn(self.norm1(x))
            return x + self.mlp(self.norm2(x))
        x = self.norm1(x + self.attn(x))  # BERT
        return self.norm2(x + self.mlp(x))


class ViT(nn.Module):
    def __init__(self, arch: dict, image_size: int, num_classes: int = 10) -> None:
        super().__init__()
        dim, patch = int(arch["width"]), int(arch["patch_size"])
        if image_size % patch:
            raise ValueError(f"image size {image_size} is not a multiple of patch size {patch}")
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        tokens = (image_size // patch) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, tokens + 1, dim) * 0.02)
        self.layers = nn.Sequential(*(EncoderLayer(dim, int(arch["heads"]), float(arch["mlp_ratio"]), True)
                                      for _ in range(int(arch["depth"]))))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        x = self.norm(self.layers(x))
        return self.head(x[:, 0])


class BertEncoder(nn.Module):
    def __init__(self, arch: dict, seq_len: int, num_classes: int = 2) -> None:
        super().__init__()
        dim = int(arch["width"])
        self.tok_embed = nn.Embedding(int(arch["vocab_size"]), dim)
        self.pos_embed = nn.Parameter(torch.randn(1, seq_len, dim) * 0.02)
        self.embed_norm = nn.LayerNorm(dim)
        self.layers = nn.Sequential(*(EncoderLayer(dim, int(arch["heads"]), float(arch["mlp_ratio"]), False)
                                      for _ in range(int(arch["depth"]))))
        self.pooler = nn.Sequential(nn.Linear(dim, dim), nn.Tanh())
        self.head = nn.Linear(dim, num_classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed_norm(self.tok_embed(tokens) + self.pos_embed)
        x = self.layers(x)
        return self.head(self.pooler(x[:, 0]))


_ENCODER = {"depth": Int(1, 96), "width": Int(1, 8192), "heads": Int(1, 128), "mlp_ratio": Real(0.125, 16.0)}


def _sample_encoder(rng: random.Random) -> dict:
    heads = rng.choice([2, 4, 8])
    return {
        "depth": rng.randint(1, 6),
        "width": heads * rng.choice([16, 32, 48, 64]),
        "heads": heads,
        "mlp_ratio": rng.choice([1.0, 2.0, 4.0]),
    }


class ViTSpace(ModelSpace):
    name = "vit"
    family = "vit"
    arch_schema = Obj({**_ENCODER, "patch_size": Int(1, 256)}, frozenset({*_ENCODER, "patch_size"}))
    input_size_range = (1, 2048)

    def sample_arch(self, rng: random.Random) -> dict:
        return {**_sample_encoder(rng), "patch_size": rng.choice([4, 8, 16])}

    def input_sizes(self) -> tuple[int, ...]:
        return (32, 64, 96)

    def build(self, config: ModelConfig) -> nn.Module:
        return ViT(dict(config.arch), config.input_size)

    def example_input(self, config: ModelConfig) -> torch.Tensor:
        return torch.randn(config.batch_size, 3, config.input_size, config.input_size)


class BertSpace(ModelSpace):
    name = "bert"
    family = "bert"
    arch_schema = Obj({**_ENCODER, "vocab_size": Int(2, 1_000_000)}, frozenset({*_ENCODER, "vocab_size"}))
    input_size_range = (1, 16384)

    def sample_arch(self, rng: random.Random) -> dict:
        return {**_sample_encoder(rng), "vocab_size": rng.choice([1000, 5000, 30522])}

    def input_sizes(self) -> tuple[int, ...]:
        return (16, 32, 64, 128)

    def build(self, config: ModelConfig) -> nn.Module:
        return BertEncoder(dict(config.arch), config.input_size)

    def example_input(self, config: ModelConfig) -> torch.Tensor:
        gen = torch.Generator().manual_seed(config.seed)
        return torch.randint(0, int(config.arch["vocab_size"]), (config.batch_size, config.input_size), generator=gen)

    def num_outputs(self, config: ModelConfig) -> int:
        return 2
