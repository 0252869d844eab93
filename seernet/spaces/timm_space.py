"""Real image architectures from timm (``pretrained=False``): the models people run, as a dataset family.

Our generated spaces teach the predictor how operators cost; timm's families (ResNet/ResNeXt/SE, RegNet,
EfficientNet, MobileNet, ConvNeXt, ViT/DeiT, PoolFormer, LeViT, MLP-Mixer, RepVGG, DLA, HRNet, CSP, …)
teach it the operator mixes and graph shapes real models have.  Which architectures are in the family is
fixed by a screened table (``timm_archs.json``, made by ``bench/timm_screen.py``): each one built, exported
with our exporter and turned into our graph at its default resolution, with its parameters and FLOPs.

Two kinds of architecture are kept out of the training data:

* those torchvision ships as classification models (ResNet-18/50, MobileNetV2/V3, EfficientNet-B*, ViT-B/16,
  Swin-T, ConvNeXt-T, RegNet, DenseNet, VGG, Inception-V3 …): real-architecture accuracy is checked on
  torchvision's models, so their timm twins are not in the table at all;
* one architecture in six, chosen by a hash of its name (``held_out``): the zoo bench predicts them as
  architectures the predictor never saw (``perfseer bench zoo``).

Sampling draws an architecture, then a batch size and a resolution (architectures whose position
embeddings fix their input size run at that size only).
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import random
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from .base import ModelSpace
from .config import ModelConfig
from .schema import Obj, Text

ARCHS_FILE = Path(__file__).with_name("timm_archs.json")
RESOLUTIONS = (96, 128, 160, 192, 224)
BATCH_SIZES = (1, 2, 4, 8)
HELD_OUT_BUCKETS = 6


def is_held_out(name: str) -> bool:
    """One architecture in six, fixed by its name: never trained on, predicted by the zoo bench."""
    return int(hashlib.sha256(f"timm:{name}".encode()).hexdigest(), 16) % HELD_OUT_BUCKETS == 0


@lru_cache(maxsize=1)
def arch_table() -> dict[str, dict]:
    """Screened architectures by name: ``params``, ``gflops`` (per sample at ``resolution``), ``resolution``
    (the default), ``fixed_input_size``."""
    data = json.loads(ARCHS_FILE.read_text())
    return {a["name"]: a for a in data["archs"]}


def training_archs() -> list[str]:
    return sorted(n for n in arch_table() if not is_held_out(n))


def held_out_archs() -> list[str]:
    return sorted(n for n in arch_table() if is_held_out(n))


class ArchPatternError(ValueError):
    """A timm architecture pattern matches no training architecture (or was given where no timm model is drawn)."""


@lru_cache(maxsize=16)
def matching_archs(patterns: tuple[str, ...]) -> tuple[str, ...]:
    """The training architectures matching any of ``patterns`` (shell globs: ``regnet*``, ``*resnext*``): a
    dataset build aimed at the families a user searches over.  ArchPatternError when a pattern matches none (naming
    any held-out architecture it matched: those stay out of training data)."""
    training = training_archs()
    chosen: set[str] = set()
    for pattern in patterns:
        found = fnmatch.filter(training, pattern)
        if not found:
            held = fnmatch.filter(held_out_archs(), pattern)
            why = (f"it matches only held-out architectures ({', '.join(held[:3])}…), which stay out of training data"
                   if held else f"none of the {len(training)} training architectures in seernet/spaces/timm_archs.json")
            raise ArchPatternError(f"timm architecture pattern {pattern!r} matches nothing: {why}")
        chosen.update(found)
    return tuple(sorted(chosen))


def _timm():
    from ..torchvision_compat import ensure_torchvision_importable

    ensure_torchvision_importable()
    import timm

    return timm


def _check_arch_name(name: str) -> None:
    if name not in arch_table():
        raise ValueError(f"timm arch model: {name!r} is not a screened timm architecture "
                         f"(seernet/spaces/timm_archs.json lists {len(arch_table())})")


class TimmSpace(ModelSpace):
    name = "timm"
    family = "timm"
    batch_sizes = BATCH_SIZES
    arch_schema = Obj({"model": Text(100, _check_arch_name)}, frozenset({"model"}))
    input_size_range = (32, 512)

    def sample_arch(self, rng: random.Random, archs: tuple[str, ...] = ()) -> dict:
        """One training architecture; with ``archs`` (globs), one of those matching them."""
        return {"model": rng.choice(matching_archs(archs) if archs else training_archs())}

    def sample(self, rng: random.Random, batch_sizes: tuple[int, ...] = BATCH_SIZES,
               archs: tuple[str, ...] = ()) -> ModelConfig:
        arch = self.sample_arch(rng, archs)
        entry = arch_table()[arch["model"]]
        sizes = (entry["resolution"],) if entry["fixed_input_size"] else RESOLUTIONS
        batch = rng.choice([b for b in batch_sizes if b <= max(BATCH_SIZES)] or list(BATCH_SIZES))
        return ModelConfig(space=self.name, arch=arch, batch_size=batch, input_size=rng.choice(sizes),
                           seed=rng.randrange(2**31))

    def input_sizes(self) -> tuple[int, ...]:
        return RESOLUTIONS

    def check_arch(self, config: ModelConfig) -> ModelConfig:
        checked = super().check_arch(config)
        entry = arch_table()[checked.arch["model"]]
        if entry["fixed_input_size"] and checked.input_size != entry["resolution"]:
            raise ValueError(f"timm {entry['name']} has a fixed input size: input_size must be "
                             f"{entry['resolution']}, got {checked.input_size}")
        return checked

    def build(self, config: ModelConfig) -> nn.Module:
        return _timm().create_model(str(config.arch["model"]), pretrained=False)

    def example_input(self, config: ModelConfig) -> torch.Tensor:
        return torch.randn(config.batch_size, 3, config.input_size, config.input_size)

    def num_outputs(self, config: ModelConfig) -> int:
        return 1000

    def param_count(self, config: ModelConfig) -> int:
        return int(arch_table()[config.arch["model"]]["params"])

    def forward_flops(self, config: ModelConfig) -> float:
        """From the screened table, scaled by pixels and batch: exact for convolutional networks, an
        underestimate of attention's quadratic part at other resolutions; used for the dataset's FLOPs cap
        and request limits, never as a feature (features come from the exported graph)."""
        entry = arch_table()[config.arch["model"]]
        scale = (config.input_size / entry["resolution"]) ** 2
        return float(entry["gflops"]) * 1e9 * scale * config.batch_size

    def size_bound(self, config: ModelConfig) -> tuple[int, float] | None:
        return self.param_count(config), self.forward_flops(config.with_batch(1))
