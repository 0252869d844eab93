"""What every model space provides, so profilers and dataset builders treat them alike."""
from __future__ import annotations

import random
from abc import ABC, abstractmethod

import torch
from torch import nn

from .config import ModelConfig
from .schema import Schema

BATCH_SIZES = (1, 2, 4, 8, 16, 32)


class ModelSpace(ABC):
    """A family of networks that can be sampled reproducibly and built in torch."""

    name: str = ""
    family: str = ""
    arch_schema: Schema | None = None  # what a config request's arch may contain (checked before building)
    input_size_range: tuple[int, int] = (1, 4096)
    batch_sizes: tuple[int, ...] = BATCH_SIZES  # what sample draws from (and the most it accepts)

    @abstractmethod
    def sample_arch(self, rng: random.Random) -> dict:
        """One architecture drawn from the space."""

    @abstractmethod
    def input_sizes(self) -> tuple[int, ...]:
        """Input sizes (resolution, sequence length or width) the dataset measures."""

    @abstractmethod
    def build(self, config: ModelConfig) -> nn.Module:
        """The torch module; weights are seeded from ``config.seed``."""

    @abstractmethod
    def example_input(self, config: ModelConfig) -> torch.Tensor:
        """A random input of the right shape and dtype for ``config``."""

    def num_outputs(self, config: ModelConfig) -> int:
        return 10

    def sample(self, rng: random.Random, batch_sizes: tuple[int, ...] = BATCH_SIZES) -> ModelConfig:
        arch = self.sample_arch(rng)
        return ModelConfig(
            space=self.name,
            arch=arch,
            batch_size=rng.choice(batch_sizes),
            input_size=rng.choice(self.input_sizes()),
            seed=rng.randrange(2**31),
        )

    def sample_n(self, n: int, seed: int = 0, batch_sizes: tuple[int, ...] = BATCH_SIZES,
                 max_gflops: float | None = None) -> list[ModelConfig]:
        """``n`` configs, identical for the same ``seed`` on every machine.

        With ``max_gflops``, configs whose forward pass (whole batch) costs more
        are redrawn: it keeps a CPU dataset build within hours, and is recorded
        in the dataset's build settings so users know the range it covers.
        """
        rng = random.Random(f"{self.name}:{seed}")
        configs: list[ModelConfig] = []
        while len(configs) < n:
            config = self.sample(rng, batch_sizes)
            if max_gflops is None or self.forward_flops(config) <= max_gflops * 1e9:
                configs.append(config)
        return configs

    def forward_flops(self, config: ModelConfig) -> float:
        """FLOPs of one forward pass over the whole batch, counted on the meta device (no compute)."""
        from torch.utils.flop_counter import FlopCounterMode

        with torch.device("meta"):
            module = self.build(config).eval()
            example = self.example_input(config)
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            module(example)
        return float(counter.get_total_flops())

    def direct_graph(self, config: ModelConfig, training: bool = False):
        """The performance graph of ``config``'s exported ONNX, built without exporting, where the space can
        describe its own graph (NAS-Bench-201); None otherwise, and the caller exports.  Must equal the
        graph of the export (each space that implements it tests that)."""
        return None

    def check_arch(self, config: ModelConfig) -> ModelConfig:
        """``config`` with its arch checked against the space's schema; ``ValueError`` naming the problem."""
        lo, hi = self.input_size_range
        if isinstance(config.input_size, bool) or not lo <= config.input_size <= hi:
            raise ValueError(f"{self.name} input_size must be in {lo}..{hi}, got {config.input_size}")
        arch = self.arch_schema.check(config.arch, f"{self.name} arch") if self.arch_schema else dict(config.arch)
        return ModelConfig(config.space, arch, config.batch_size, config.input_size, config.seed)

    def size_bound(self, config: ModelConfig) -> tuple[int, float] | None:
        """An upper bound on (parameters, per-sample forward FLOPs) that costs next to nothing, where the
        space's schema gives one: a config under the limits by its bound needs no count.  None: count."""
        return None

    def param_count(self, config: ModelConfig) -> int:
        """Parameters of ``config``'s model, counted on the meta device: nothing is allocated."""
        with torch.device("meta"):
            return int(sum(p.numel() for p in self.build(config).parameters()))

    def build_seeded(self, config: ModelConfig) -> nn.Module:
        torch.manual_seed(config.seed)
        module = self.build(config)
        return module.eval()
