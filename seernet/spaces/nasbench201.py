"""NAS-Bench-201: the standard CIFAR network built from a cell's arch string.

Skeleton (Dong & Yang, ICLR 2020): 3x3 conv stem with 16 channels + BN, three
stages of five identical cells at 16/32/64 channels, a residual reduction block
between stages, BN + ReLU, global average pool and a linear classifier.
Edges whose op is ``none`` carry zeros; like an optimising runtime we leave
them out of the built network instead of multiplying by zero.
"""
from __future__ import annotations

import functools
import itertools
import random
import re

import torch
from torch import nn

from .base import ModelSpace
from .config import ModelConfig
from .schema import Obj, Text

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NUM_EDGES = 6
_ARCH_RE = re.compile(r"^\|([a-z0-9_]+)~(\d)\|\+\|([a-z0-9_]+)~(\d)\|([a-z0-9_]+)~(\d)\|\+\|([a-z0-9_]+)~(\d)\|([a-z0-9_]+)~(\d)\|([a-z0-9_]+)~(\d)\|$")


def parse_arch_str(arch_str: str) -> list[tuple[int, int, str]]:
    """``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` → [(to_node, from_node, op), …] in edge order.

    Raises ``ValueError`` naming the problem for any other string.
    """
    match = _ARCH_RE.match(arch_str.strip())
    if not match:
        raise ValueError(f"not a NAS-Bench-201 arch string: {arch_str!r}")
    groups = match.groups()
    edges = []
    expected_sources = [(1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2)]
    for k, (to_node, from_node) in enumerate(expected_sources):
        op, src = groups[2 * k], int(groups[2 * k + 1])
        if op not in OPS:
            raise ValueError(f"unknown NAS-Bench-201 op {op!r} in {arch_str!r}; expected one of {OPS}")
        if src != from_node:
            raise ValueError(f"edge {k} of {arch_str!r} reads node {src}, expected {from_node}")
        edges.append((to_node, from_node, op))
    return edges


def arch_str_from_ops(ops: list[str]) -> str:
    a, b, c, d, e, f = ops
    return f"|{a}~0|+|{b}~0|{c}~1|+|{d}~0|{e}~1|{f}~2|"


def all_arch_strs() -> list[str]:
    """All 15,625 cells, in a fixed order."""
    return [arch_str_from_ops(list(p)) for p in itertools.product(OPS, repeat=NUM_EDGES)]


def ops_of(arch_str: str) -> list[str]:
    return [op for _, _, op in parse_arch_str(arch_str)]


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False),
            nn.BatchNorm2d(c_out),
        )


class ResNetBasicBlock(nn.Module):
    """The reduction block between stages: stride-2 residual with an avg-pool shortcut."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1)
        self.downsample = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


def _make_op(op: str, channels: int) -> nn.Module:
    if op == "skip_connect":
        return nn.Identity()
    if op == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, 1)
    if op == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, 1)
    if op == "avg_pool_3x3":
        return nn.AvgPool2d(3, 1, 1, count_include_pad=False)
    raise ValueError(f"op {op!r} has no module")


class Cell(nn.Module):
    def __init__(self, arch_str: str, channels: int) -> None:
        super().__init__()
        self.edges = [(t, s, op) for t, s, op in parse_arch_str(arch_str) if op != "none"]
        self.ops = nn.ModuleList(_make_op(op, channels) for _, _, op in self.edges)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes: list[torch.Tensor | None] = [x, None, None, None]
        for (to_node, from_node, _), op in zip(self.edges, self.ops):
            source = nodes[from_node]
            if source is None:
                continue
            out = op(source)
            nodes[to_node] = out if nodes[to_node] is None else nodes[to_node] + out
        result = nodes[3]
        return result if result is not None else x * 0.0


class NasBench201Net(nn.Module):
    def __init__(self, arch_str: str, num_classes: int = 10, cells_per_stage: int = 5, stem_channels: int = 16) -> None:
        super().__init__()
        c = stem_channels
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        layers: list[nn.Module] = []
        for stage in range(3):
            if stage > 0:
                layers.append(ResNetBasicBlock(c, c * 2))
                c *= 2
            layers.extend(Cell(arch_str, c) for _ in range(cells_per_stage))
        self.cells = nn.Sequential(*layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.lastact(self.cells(self.stem(x)))
        return self.classifier(torch.flatten(self.pool(x), 1))


class NasBench201Space(ModelSpace):
    name = "nasbench201"
    family = "nasbench201"
    arch_schema = Obj({"arch_str": Text(200, parse_arch_str)}, frozenset({"arch_str"}))
    input_size_range = (8, 512)

    def sample_arch(self, rng: random.Random) -> dict:
        while True:
            arch_str = arch_str_from_ops([rng.choice(OPS) for _ in range(NUM_EDGES)])
            if is_connected(arch_str):
                return {"arch_str": arch_str}

    def input_sizes(self) -> tuple[int, ...]:
        return (32, 64)

    def build(self, config: ModelConfig) -> nn.Module:
        return NasBench201Net(str(config.arch["arch_str"]))

    def example_input(self, config: ModelConfig) -> torch.Tensor:
        return torch.randn(config.batch_size, 3, config.input_size, config.input_size)

    def direct_graph(self, config: ModelConfig, training: bool = False):
        """Straight from the arch string (``seernet.spaces.nasbench201_graph``): no torch, no export."""
        from .nasbench201_graph import nasbench201_graph

        return nasbench201_graph(str(config.arch["arch_str"]), config.batch_size, config.input_size, training)

    def size_bound(self, config: ModelConfig) -> tuple[int, float] | None:
        """The cell with a 3×3 conv on every edge is the largest at each input size (every edge at its most
        parameters and FLOPs, all of them live): its size, counted once per input size."""
        return _graph_size(LARGEST_CELL, 1, config.input_size)

    def param_count(self, config: ModelConfig) -> int:
        """Parameters as the exported graph counts them (BatchNorm folded, dead edges dropped), from the arch
        string in about a millisecond: a server checks every config it is sent, and building the torch
        module on the meta device costs 30 ms, counting its FLOPs 200 ms."""
        size = _graph_size(str(config.arch["arch_str"]), 1, config.input_size)
        return super().param_count(config) if size is None else size[0]

    def forward_flops(self, config: ModelConfig) -> float:
        """FLOPs of one forward pass over the batch, from the direct graph (see :meth:`param_count`)."""
        size = _graph_size(str(config.arch["arch_str"]), config.batch_size, config.input_size)
        return super().forward_flops(config) if size is None else size[1]

    @staticmethod
    def config_for(arch_str: str, batch_size: int = 1, input_size: int = 32) -> ModelConfig:
        parse_arch_str(arch_str)
        return ModelConfig("nasbench201", {"arch_str": arch_str}, batch_size, input_size)


def _eager_run(arch_str: str) -> tuple[set[int], list[str]]:
    """What ``Cell.forward`` does: the nodes the input reaches, and the operations it runs (not ``none``,
    reading a reached node; operations whose output nothing reads still run)."""
    reach, ops = {0}, []
    for to_node, from_node, op in parse_arch_str(arch_str):
        if op != "none" and from_node in reach:
            reach.add(to_node)
            ops.append(op)
    return reach, ops


LARGEST_CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"


@functools.lru_cache(maxsize=256)
def _graph_size(arch_str: str, batch_size: int, input_size: int) -> tuple[int, float] | None:
    """(parameters, forward FLOPs) of the exported network's graph; None where it is not described directly."""
    from .nasbench201_graph import nasbench201_graph

    graph = nasbench201_graph(arch_str, batch_size, input_size)
    return None if graph is None else (int(graph.global_value("params_sum")), graph.global_value("flops_sum"))


def executed_ops(arch_str: str) -> list[str]:
    """The cell's operations an eager run executes (the exported ONNX graph drops or merges some of them)."""
    return _eager_run(arch_str)[1]


def is_connected(arch_str: str) -> bool:
    """Whether the cell's output depends on its input (341 of 15,625 cells do not)."""
    return 3 in _eager_run(arch_str)[0]
