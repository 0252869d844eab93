"""The one description of a model that every part of PerfSeer shares.

A :class:`ModelConfig` names a model space, the architecture parameters inside
that space, and the run shape (batch size, input size).  It is what the dataset
stores per row, what a profiling job carries, and what the server accepts in
place of ONNX bytes, so it must round-trip through JSON exactly.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Mapping


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: the basis of every hash we take."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class ModelConfig:
    """A model from one of our spaces, plus how it is run.

    ``input_size`` is the image resolution for vision spaces, the sequence
    length for BERT-style encoders and the feature width for MLPs.
    """

    space: str
    arch: Mapping[str, Any]
    batch_size: int = 1
    input_size: int = 32
    seed: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "space": self.space,
            "arch": json.loads(canonical_json(self.arch)),
            "batch_size": int(self.batch_size),
            "input_size": int(self.input_size),
            "seed": int(self.seed),
            "extra": dict(self.extra),
        }

    def to_json(self) -> str:
        return canonical_json(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelConfig":
        missing = {"space", "arch"} - set(data)
        if missing:
            raise ValueError(f"model config is missing keys: {sorted(missing)}")
        return cls(
            space=str(data["space"]),
            arch=dict(data["arch"]),
            batch_size=int(data.get("batch_size", 1)),
            input_size=int(data.get("input_size", 32)),
            seed=int(data.get("seed", 0)),
            extra=dict(data.get("extra", {})),
        )

    @classmethod
    def from_json(cls, text: str) -> "ModelConfig":
        return cls.from_dict(json.loads(text))

    @property
    def arch_id(self) -> str:
        """Identifies the network itself (space, architecture, input size), not the batch."""
        key = canonical_json({"space": self.space, "arch": self.arch, "input_size": self.input_size})
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    @property
    def config_id(self) -> str:
        """Identifies one measurement target: the network and its batch size."""
        return hashlib.sha256(f"{self.arch_id}:{self.batch_size}".encode()).hexdigest()[:16]

    def with_batch(self, batch_size: int) -> "ModelConfig":
        return ModelConfig(self.space, self.arch, batch_size, self.input_size, self.seed, self.extra)
