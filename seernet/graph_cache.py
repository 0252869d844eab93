"""Cached stripped ONNX exports and performance graphs of space configs, keyed by content hash.

Exporting a model takes 0.1–1 s, building its graph ~10 ms: training on
thousands of rows reads both from here instead of redoing them.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .graph import FEATURE_SCHEMA_VERSION, GRAPH_CONTENT_VERSION, PerfGraph, build_graph
from .settings import cache_dir
from .spaces import ModelConfig


def onnx_cache_path(root: str | Path, config: ModelConfig) -> Path:
    return Path(root) / config.arch_id[:2] / f"{config.arch_id}.onnx"


def onnx_cache_dir() -> Path:
    """Where stripped exports live (``PERFSEER_CACHE``/onnx), read when asked, not at import."""
    return cache_dir() / "onnx"


def store_stripped(config: ModelConfig, onnx_bytes: bytes, root: str | Path | None = None) -> bytes:
    """Strip ``onnx_bytes`` and cache them as the export of ``config`` (atomically; concurrent writers are safe)."""
    from .strip import strip_bytes

    data = strip_bytes(onnx_bytes)
    path = onnx_cache_path(root or onnx_cache_dir(), config)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return data


def stripped_onnx(config: ModelConfig, root: Path | None = None) -> bytes:
    """The stripped export of ``config`` (batch symbolic), from the cache or exported now."""
    root = root or onnx_cache_dir()
    path = onnx_cache_path(root, config)
    if path.exists():
        return path.read_bytes()
    from .export import export_config

    return store_stripped(config, export_config(config), root)


def arch_str_of(config: ModelConfig) -> str:
    """The NAS-Bench-201 cell a config describes ('' for other spaces): tabular predictors read its edges."""
    return str(config.arch.get("arch_str", "")) if config.space == "nasbench201" else ""


_ARRAYS = ("node_op", "node_category", "node_x", "edge_index", "edge_x", "global_x")
_NAMES = ("op_types", "node_names")  # kept too: operator labels and explanations address nodes by name
_COUNTS = ("folded_at_load", "folded_bytes")


def graph_for(config: ModelConfig, training: bool = False, root: Path | None = None) -> PerfGraph:
    """The performance graph of ``config`` at its batch size, cached as ``.npz`` per feature schema and graph
    content version (a file written before names were cached is rebuilt once)."""
    root = root or cache_dir()
    version = f"{FEATURE_SCHEMA_VERSION}.{GRAPH_CONTENT_VERSION}"
    path = root / f"graphs-v{version}" / config.arch_id[:2] / f"{config.config_id}-{int(training)}.npz"
    if path.exists():
        with np.load(path) as data:
            if all(k in data for k in _NAMES):
                return PerfGraph(**{k: data[k] for k in _ARRAYS}, batch_size=config.batch_size, training=training,
                                 arch_str=arch_str_of(config), **{k: data[k].tolist() for k in _NAMES},
                                 **{k: data[k].item() for k in _COUNTS if k in data})
    from .spaces import get_space

    graph = get_space(config.space).direct_graph(config, training)  # no export where the space knows its graph
    if graph is None:
        graph = build_graph(stripped_onnx(config, root / "onnx"), batch_size=config.batch_size, training=training)
    graph.arch_str = arch_str_of(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, **{k: getattr(graph, k) for k in _ARRAYS}, **{k: np.array(getattr(graph, k), dtype=str)
                                                                for k in _NAMES},
             **{k: np.array(getattr(graph, k)) for k in _COUNTS})
    tmp.replace(path)
    return graph
