"""A profiling job and its result: the unit that flows through the queue and into the dataset."""
from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from seernet.metrics import METRICS
from seernet.spaces import ModelConfig, family_of

__all__ = ["METRICS", "ProfileJob", "ProfileResult"]


@dataclass
class ProfileJob:
    """Measure one model on one device.  Exactly one of ``config`` / ``onnx_bytes`` is set."""

    config: ModelConfig | None = None
    onnx_bytes: bytes | None = None
    batch_size: int = 1
    device: str = "cpu"
    job_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    family: str = ""

    def __post_init__(self) -> None:
        if (self.config is None) == (self.onnx_bytes is None):
            raise ValueError("a profiling job needs exactly one of a model config or ONNX bytes")
        if self.config is not None:
            self.batch_size = self.config.batch_size
            self.family = self.family or family_of(self.config)
        self.family = self.family or "onnx"
        if self.batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {self.batch_size}")

    @classmethod
    def for_config(cls, config: ModelConfig, device: str = "cpu", job_id: str | None = None) -> "ProfileJob":
        """Job ids for configs are deterministic so that resubmitting one is a no-op in the dataset."""
        return cls(config=config, device=device, job_id=job_id or f"{config.config_id}@{device}")

    @property
    def model_key(self) -> str:
        if self.config is not None:
            return self.config.config_id
        return hashlib.sha256(self.onnx_bytes or b"").hexdigest()[:16] + f"-b{self.batch_size}"

    def to_fields(self) -> dict[str, str]:
        """Flat string fields for a Redis Stream entry."""
        return {
            "job_id": self.job_id,
            "device": self.device,
            "batch_size": str(self.batch_size),
            "family": self.family,
            "config": self.config.to_json() if self.config else "",
            "onnx_b64": base64.b64encode(self.onnx_bytes).decode() if self.onnx_bytes else "",
        }

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> "ProfileJob":
        config = ModelConfig.from_json(fields["config"]) if fields.get("config") else None
        onnx_bytes = base64.b64decode(fields["onnx_b64"]) if fields.get("onnx_b64") else None
        return cls(config=config, onnx_bytes=onnx_bytes, batch_size=int(fields.get("batch_size", 1)),
                   device=fields.get("device", "cpu"), job_id=fields["job_id"], family=fields.get("family", ""))


@dataclass
class ProfileResult:
    """What one job measured (or why it could not), with how and where."""

    job_id: str
    status: str  # ok | partial | failed
    reason: str
    family: str
    config_json: str
    config_id: str
    batch_size: int
    input_size: int | None
    device: str
    device_key: str
    metrics: dict[str, float | None]
    stats: dict[str, Any]
    descriptor: dict[str, Any]
    settings: dict[str, Any]
    worker: str = ""
    measured_at: float = field(default_factory=time.time)
    operators: dict[str, Any] = field(default_factory=dict)  # the inference's per-operator profile (op_profile)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ProfileResult":
        return cls(**json.loads(text))
