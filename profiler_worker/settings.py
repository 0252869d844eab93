"""How a measurement is taken: one dataclass, filled from CLI flags or env vars."""
from __future__ import annotations

import os
from dataclasses import dataclass, field


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


GRAPH_OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")
# calibrate's largest candidate, forward GFLOPs: up to the sizes people run.  On the Intel Xeon, 10 minutes of
# candidates up to 20 GFLOPs gave real architectures 0.951 / 10.6 % (operator trees) where candidates up to 4
# gave 12.1–13.5 % (bench/results/calibrate_max20gflops_operator_trees.json, calibrate_*operator_trees.json)
CALIBRATE_MAX_GFLOPS = 20.0


@dataclass
class ProfileSettings:
    """Repeat policy, isolation limits, threads (0: the runtime's default) and pinning for one measurement.

    Timing stops when the running median is stable to ``stable_tolerance``
    (compared with the median ``min_repeats`` samples earlier), when
    ``time_cap_s`` of timed work has passed, or at ``max_repeats``.
    """

    device: str = "cpu"
    threads: int = field(default_factory=lambda: _env_int("PERFSEER_PROFILE_THREADS", 1))
    cpu_affinity: tuple[int, ...] | None = None
    warmup: int = 2
    min_repeats: int = field(default_factory=lambda: _env_int("PERFSEER_PROFILE_MIN_REPEATS", 5))
    min_repeats_slow: int = 3  # iterations slower than slow_ms need fewer repeats to settle
    slow_ms: float = 150.0
    max_repeats: int = field(default_factory=lambda: _env_int("PERFSEER_PROFILE_MAX_REPEATS", 50))
    time_cap_s: float = field(default_factory=lambda: _env_float("PERFSEER_PROFILE_TIME_CAP_S", 1.0))
    stable_tolerance: float = 0.02
    timeout_s: float = field(default_factory=lambda: _env_float("PERFSEER_PROFILE_TIMEOUT_S", 120.0))
    memory_cap_mb: float = field(default_factory=lambda: _env_float("PERFSEER_PROFILE_MEMORY_CAP_MB", 6144.0))
    modes: tuple[str, ...] = ("infer", "train")
    # per-operator inference profile, in a session of its own after the timing (profiler_worker.op_profile)
    op_profile: bool = field(default_factory=lambda: os.environ.get("PERFSEER_PROFILE_OPERATORS", "1") != "0")
    op_profile_repeats: int = field(default_factory=lambda: _env_int("PERFSEER_PROFILE_OPERATOR_REPEATS", 10))
    onnx_cache_dir: str | None = field(default_factory=lambda: os.environ.get("PERFSEER_ONNX_CACHE") or None)
    # onnxruntime's graph optimisation level: part of the device key when not the runtime's default ("all")
    graph_optimization: str = field(default_factory=lambda: os.environ.get("PERFSEER_PROFILE_GRAPH_OPT", "all"))

    def __post_init__(self) -> None:
        if self.graph_optimization not in GRAPH_OPTIMIZATION_LEVELS:
            raise ValueError(f"graph optimisation level must be one of {list(GRAPH_OPTIMIZATION_LEVELS)}, "
                             f"got {self.graph_optimization!r}")
        if self.threads < 0:
            raise ValueError(f"threads must be ≥ 0 (0: the runtime's default), got {self.threads}")

    def describe(self) -> dict:
        return {
            "threads": self.threads,
            "graph_optimization": self.graph_optimization,
            "cpu_affinity": list(self.cpu_affinity) if self.cpu_affinity else None,
            "warmup": self.warmup,
            "min_repeats": self.min_repeats,
            "max_repeats": self.max_repeats,
            "time_cap_s": self.time_cap_s,
            "stable_tolerance": self.stable_tolerance,
            "op_profile_repeats": self.op_profile_repeats if self.op_profile else 0,
        }
