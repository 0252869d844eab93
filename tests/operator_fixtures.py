"""Models measured on a synthetic device with per-operator profiles: what operator-tree tests train on."""
from __future__ import annotations

from seernet.data import Sample
from seernet.graph import build_graph
from seernet.graph_cache import stripped_onnx
from seernet.operator_labels import label_operators
from seernet.operator_trees import roofline_ms
from seernet.spaces import ModelConfig

EFFICIENCY = {"Gemm": 3.0, "Relu": 0.0}  # a synthetic device: time = roofline × this (others 1.5)


def mlp_graph(widths: list[int], batch: int):
    config = ModelConfig("mlp", {"widths": widths, "activation": "relu", "norm": "none"}, batch_size=batch,
                         input_size=widths[0])
    return build_graph(stripped_onnx(config), batch_size=batch)


def profiled(graph, key: str, efficiency: dict[str, float] = EFFICIENCY, fuse: bool = True) -> Sample:
    """A sample measured on the synthetic device (``efficiency``: another device): Gemm+Relu run as one kernel
    (as onnxruntime fuses them; ``fuse`` False: each node its own kernel), the model's time is its kernels'
    times × 1.1 + 0.01 ms."""
    roof = roofline_ms(graph)
    names, ops = graph.node_names, graph.op_types
    kernels, i = [], 0
    while i < len(names):
        span = 2 if fuse and ops[i] == "Gemm" and i + 1 < len(names) and ops[i + 1] == "Relu" else 1
        kernels.append((names[i:i + span], float(sum(roof[j] * efficiency.get(ops[j], 1.5)
                                                      for j in range(i, i + span)))))
        i += span
    total = sum(ms for _, ms in kernels) * 1.1 + 0.01
    return Sample(key, "mlp", graph, {"infer_time_ms": total}, None, label_operators(graph, kernels))


def profiled_mlps(efficiency: dict[str, float] = EFFICIENCY) -> list[Sample]:
    """Twelve small MLPs (three widths, four batch sizes), each with its kernel profile."""
    return [profiled(mlp_graph([w, w // 2, w // 4], b), f"mlp{w}b{b}", efficiency)
            for w in (32, 64, 128) for b in (1, 2, 4, 8)]
