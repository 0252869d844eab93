"""The library's settings, in one place: paths and every per-request limit, each with its environment variable.

Everything above seernet (the worker, the server, the CLI) imports these from
here, so a limit's default is written once.  Environment variables are read
when a settings object is made (``Limits.from_env()``, ``cache_dir()``), never
at import time, so a test or a process that sets them later is obeyed.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
ENV_PREFIX = "PERFSEER_"


def env(name: str, default: str) -> str:
    """``PERFSEER_<NAME>`` from the environment, else ``default``."""
    return os.environ.get(f"{ENV_PREFIX}{name.upper()}", default)


def cache_dir() -> Path:
    """Where exports and graphs of space configs are cached (``PERFSEER_CACHE``)."""
    return Path(env("cache", str(REPO_ROOT / ".cache")))


def shared_data_dir() -> Path:
    """Shared read-only data (LatBench, NeuSight) beside the checkout (``PERFSEER_SHARED_DATA``)."""
    return Path(env("shared_data", str(REPO_ROOT.parent / "shared" / "data")))


@dataclass
class Limits:
    """What one request may contain and cost.  Each limit is refused with its own error, naming it.

    Sizes are checked from counts and shapes *before* any work that would
    allocate them, so a small request can never cost more than these allow.
    """

    max_model_bytes: int = 256 * 2**20  # ONNX bytes after decoding
    max_request_bytes: int = 64 * 2**20  # one gRPC message
    max_nodes: int = 20_000  # operators, sub-graphs included
    max_edges: int = 100_000  # operator inputs in all (each is an edge candidate; the network's work grows with them)
    max_node_inputs: int = 4_096  # inputs of one operator
    max_graph_inputs: int = 4_096  # graph inputs and outputs
    max_batch_size: int = 4_096
    max_batch_items: int = 1_024  # models in one PredictPerformanceBatch
    max_dim: int = 1_048_576  # value of any named dimension (sequence length, image side …)
    max_dims_keys: int = 32  # entries of a request's ``dims`` map
    max_rank: int = 16  # dimensions of any tensor
    max_tensor_elements: int = 2**40  # elements of any one tensor after shape inference
    max_fold_elements: int = 4_096  # elements of a shape sub-graph value we evaluate to follow shapes
    max_build_cpu_s: float = 3.0  # CPU seconds to build one graph
    max_arch_json_bytes: int = 65_536  # a config request's architecture JSON
    max_config_params: int = 64_000_000  # parameters of a model built from a space config
    max_config_gflops: float = 50.0  # forward FLOPs of one sample of a model built from a space config
    max_queued_jobs: int = 10_000  # profiling jobs waiting in the stream
    max_plausible_ms: float = 1e9  # a time prediction above this (11.6 days) is refused as implausible
    max_plausible_mb: float = 1e9  # a memory prediction above this (1 PB) is refused as implausible

    @classmethod
    def from_env(cls) -> "Limits":
        """Defaults overridden by ``PERFSEER_<FIELD>`` (e.g. ``PERFSEER_MAX_NODES=50000``)."""
        limits = cls()
        for f in fields(cls):
            raw = os.environ.get(f"{ENV_PREFIX}{f.name.upper()}")
            if raw is not None:
                kind = type(getattr(limits, f.name))
                try:
                    setattr(limits, f.name, kind(float(raw)) if kind is int else kind(raw))
                except ValueError:
                    raise ValueError(f"{ENV_PREFIX}{f.name.upper()}={raw!r} is not a number") from None
        return limits


DEFAULT_LIMITS = Limits()
