"""Model spaces we generate, measure and predict: a registry keyed by space name."""
from __future__ import annotations

from .base import BATCH_SIZES, ModelSpace
from .cnn import CNNSpace
from .config import ModelConfig
from .mlp import MLPSpace
from .nasbench201 import NasBench201Space
from .transformer import BertSpace, ViTSpace

SPACES: dict[str, ModelSpace] = {s.name: s for s in (CNNSpace(), NasBench201Space(), ViTSpace(), BertSpace(), MLPSpace())}
FAMILIES: tuple[str, ...] = tuple(sorted({s.family for s in SPACES.values()}))


def get_space(name: str) -> ModelSpace:
    """The space called ``name``; ``ValueError`` naming the known ones otherwise."""
    try:
        return SPACES[name]
    except KeyError:
        raise ValueError(f"unknown model space {name!r}; known: {sorted(SPACES)}") from None


def family_of(config: ModelConfig) -> str:
    return get_space(config.space).family


__all__ = ["BATCH_SIZES", "FAMILIES", "SPACES", "ModelConfig", "ModelSpace", "family_of", "get_space"]
