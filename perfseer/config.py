"""All of PerfSeer's settings in one place: defaults, overridden by ``PERFSEER_*`` env vars, then CLI flags."""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def _env(name: str, default: str) -> str:
    return os.environ.get(f"PERFSEER_{name.upper()}", default)


@dataclass
class Limits:
    """What a single request may contain; each is enforced with its own error."""

    max_model_bytes: int = field(default_factory=lambda: int(_env("max_model_bytes", str(256 * 2**20))))
    max_request_bytes: int = field(default_factory=lambda: int(_env("max_request_bytes", str(64 * 2**20))))
    max_nodes: int = field(default_factory=lambda: int(_env("max_nodes", "20000")))
    max_batch_size: int = field(default_factory=lambda: int(_env("max_batch_size", "4096")))
    max_batch_items: int = field(default_factory=lambda: int(_env("max_batch_items", "1024")))


@dataclass
class Settings:
    """Service, worker and data locations.  ``Settings.from_env()`` then ``apply_overrides(args)``."""

    host: str = field(default_factory=lambda: _env("host", "127.0.0.1"))
    port: int = field(default_factory=lambda: int(_env("port", "50051")))
    redis_url: str = field(default_factory=lambda: _env("redis_url", ""))
    dataset: Path = field(default_factory=lambda: Path(_env("dataset", str(REPO_ROOT / "data" / "cpu_dataset.sqlite"))))
    predictors: Path = field(default_factory=lambda: Path(_env("predictors", str(REPO_ROOT / "predictors"))))
    cache_ttl_s: int = field(default_factory=lambda: int(_env("cache_ttl_s", str(7 * 24 * 3600))))
    cache_size: int = field(default_factory=lambda: int(_env("cache_size", "100000")))
    auth_token: str = field(default_factory=lambda: _env("auth_token", ""))
    tls_cert: str = field(default_factory=lambda: _env("tls_cert", ""))
    tls_key: str = field(default_factory=lambda: _env("tls_key", ""))
    metrics_port: int = field(default_factory=lambda: int(_env("metrics_port", "0")))
    retrain_after: int = field(default_factory=lambda: int(_env("retrain_after", "500")))
    retrain_guard: str = field(default_factory=lambda: _env("retrain_guard", ""))  # zoo_measured.json for promotion
    profile_uncertain_above: float = field(default_factory=lambda: float(_env("profile_uncertain_above", "0")))
    limits: Limits = field(default_factory=Limits)

    @classmethod
    def from_env(cls) -> "Settings":
        return cls()

    def apply_overrides(self, **overrides: object) -> "Settings":
        """Set each given (non-None) field; unknown names are an error, not silently dropped."""
        names = {f.name for f in fields(self)} | {f.name for f in fields(Limits)}
        for key, value in overrides.items():
            if value is None:
                continue
            if key not in names:
                raise ValueError(f"unknown setting {key!r}")
            target = self.limits if hasattr(self.limits, key) else self
            current = getattr(target, key)
            setattr(target, key, type(current)(value) if not isinstance(current, Path) else Path(str(value)))
        return self
