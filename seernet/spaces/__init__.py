"""Model spaces we generate, measure and predict: a registry keyed by space name."""
from __future__ import annotations

from ..errors import LimitExceededError
from .base import BATCH_SIZES, ModelSpace
from .cnn import CNNSpace
from .config import ModelConfig
from .hf_space import HFSpace
from .mlp import MLPSpace
from .nasbench201 import NasBench201Space
from .timm_space import TimmSpace
from .transformer import BertSpace, ViTSpace

SPACES: dict[str, ModelSpace] = {s.name: s for s in (CNNSpace(), NasBench201Space(), ViTSpace(), BertSpace(), MLPSpace(),
                                                     TimmSpace(), HFSpace())}
FAMILIES: tuple[str, ...] = tuple(sorted({s.family for s in SPACES.values()}))


def get_space(name: str) -> ModelSpace:
    """The space called ``name``; ``ValueError`` naming the known ones otherwise."""
    try:
        return SPACES[name]
    except KeyError:
        raise ValueError(f"unknown model space {name!r}; known: {sorted(SPACES)}") from None


def family_of(config: ModelConfig) -> str:
    return get_space(config.space).family


class ConfigTooLargeError(LimitExceededError):
    """A config describes a model too large to build and export for one request."""


__all__ = ["BATCH_SIZES", "FAMILIES", "SPACES", "ConfigTooLargeError", "ModelConfig", "ModelSpace", "check_config",
           "family_of", "get_space"]


def check_config(config: ModelConfig, max_params: int, max_gflops: float) -> ModelConfig:
    """A config from outside (a request, a job), checked before anything is built or exported.

    Space, arch keys and ranges (``ValueError``), then size: parameters and
    per-sample forward FLOPs counted on the meta device (``ConfigTooLargeError``),
    since exporting a model costs time and memory in proportion to both.
    Returns the config with its arch in canonical form.
    """
    space = get_space(config.space)
    checked = space.check_arch(config)
    bound = space.size_bound(checked.with_batch(1))
    if bound is not None and bound[0] <= max_params and bound[1] <= max_gflops * 1e9:
        return checked  # under the limits whatever the arch: nothing to count
    try:
        params = space.param_count(checked)
        if params > max_params:
            raise ConfigTooLargeError(f"{config.space} model has {params:,} parameters, over the {max_params:,} "
                                      "limit for models built from a config (max_config_params)")
        flops = space.forward_flops(checked.with_batch(1))
    except (ValueError, RuntimeError, TypeError, KeyError, ZeroDivisionError) as exc:
        if isinstance(exc, ConfigTooLargeError):
            raise
        raise ValueError(f"{config.space} arch cannot be built: {type(exc).__name__}: {str(exc)[:160]}") from None
    if flops > max_gflops * 1e9:
        raise ConfigTooLargeError(f"{config.space} model costs {flops / 1e9:.1f} GFLOPs per sample, over the "
                                  f"{max_gflops:g} limit for models built from a config (max_config_gflops)")
    return checked
