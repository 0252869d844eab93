"""The service's settings in one place: defaults, overridden by ``PERFSEER_*`` env vars, then CLI flags.

Per-request limits live below, in :class:`seernet.settings.Limits` (the
library enforces them); this adds where the service listens, what it serves,
and how much memory each of its caches may hold.  The CLI imports this; the
service never imports the CLI.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from seernet.settings import REPO_ROOT, Limits, env


@dataclass
class Settings:
    """Service, worker and data locations.  ``Settings.from_env()`` then ``apply_overrides(args)``."""

    host: str = field(default_factory=lambda: env("host", "127.0.0.1"))
    port: int = field(default_factory=lambda: int(env("port", "50051")))
    redis_url: str = field(default_factory=lambda: env("redis_url", ""))
    dataset: Path = field(default_factory=lambda: Path(env("dataset", str(REPO_ROOT / "data" / "cpu_dataset.sqlite"))))
    predictors: Path = field(default_factory=lambda: Path(env("predictors", str(REPO_ROOT / "predictors"))))
    # what answers a request that names no device (a predictor's directory name)
    default_predictor: str = field(default_factory=lambda: env("default_predictor", "cpu"))
    cache_ttl_s: int = field(default_factory=lambda: int(env("cache_ttl_s", str(7 * 24 * 3600))))
    # in-process caches are bounded in bytes, not entries: their keys are client data
    prediction_cache_bytes: int = field(default_factory=lambda: int(env("prediction_cache_bytes", str(64 * 2**20))))
    graph_cache_bytes: int = field(default_factory=lambda: int(env("graph_cache_bytes", str(256 * 2**20))))
    model_cache_bytes: int = field(default_factory=lambda: int(env("model_cache_bytes", str(256 * 2**20))))
    build_workers: int = field(default_factory=lambda: int(env("build_workers", "2")))  # concurrent graph builds
    build_queue: int = field(default_factory=lambda: int(env("build_queue", "64")))  # builds waiting beyond those
    explain_top_k: int = field(default_factory=lambda: int(env("explain_top_k", "20")))  # default and cap
    # graphs of more operators + tensors than this are predicted in a lane of their own, so one never holds up
    # the small ones; at most ``large_graphs`` of them wait or run at once (more: RESOURCE_EXHAUSTED)
    large_graph_rows: int = field(default_factory=lambda: int(env("large_graph_rows", "25000")))
    large_graphs: int = field(default_factory=lambda: int(env("large_graphs", "4")))
    redis_timeout_s: float = field(default_factory=lambda: float(env("redis_timeout_s", "0.25")))
    auth_token: str = field(default_factory=lambda: env("auth_token", ""))
    tls_cert: str = field(default_factory=lambda: env("tls_cert", ""))
    tls_key: str = field(default_factory=lambda: env("tls_key", ""))
    metrics_port: int = field(default_factory=lambda: int(env("metrics_port", "0")))
    # server processes sharing the port (SO_REUSEPORT): Python runs one request's work on one core at a time
    processes: int = field(default_factory=lambda: int(env("processes", "1")))
    retrain_after: int = field(default_factory=lambda: int(env("retrain_after", "500")))
    retrain_guard: str = field(default_factory=lambda: env("retrain_guard", ""))  # zoo_measured.json for promotion
    profile_uncertain_above: float = field(default_factory=lambda: float(env("profile_uncertain_above", "0")))
    limits: Limits = field(default_factory=Limits.from_env)

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
