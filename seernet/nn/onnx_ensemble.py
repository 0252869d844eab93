"""An ensemble's inference as one ONNX graph, run by onnxruntime: the serving path's network.

Why: at the sizes a service sees, SeerNet's forward pass is hundreds of small tensor operations,
and in eager PyTorch each costs a Python call and a dispatch (one NAS-Bench-201 graph, both
members, weights stacked along a member axis: 1.6 ms, most of it dispatch).  onnxruntime runs the
same operations from one graph, fuses what it can (linear + bias, x·sigmoid(x)), and costs about
two microseconds per operation: 0.9 ms for that graph, and 0.39 ms a graph in passes of 25 where
the stacked torch pass took 0.58 (Intel Xeon, one thread).  The members are parallel branches over
shared inputs.

It is :meth:`SeerNet.forward` with a :class:`~seernet.nn.plan.Plan`, written once more as ONNX
operators, for the architecture SeerNet ships with (:func:`exportable`; others run each member's
own forward).  The plan's index arrays are graph inputs, so one exported graph serves every batch
and plan; what a plan implies beyond per-row arithmetic (degrees, masks, per-graph weight totals)
is counted in numpy beside it (:func:`plan_inputs`).  ``tests/seernet/test_onnx_ensemble.py``
checks it against each member's own forward.  Inference only.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from .additive import TERMS
from .plan import Plan
from .seernet import SeerNet, SeerNetConfig

OPSET = 18  # ScatterND's max reduction
_LOWEST = float(np.finfo(np.float32).min)  # a max-scatter's start: any real value replaces it


def exportable(config: SeerNetConfig) -> bool:
    """Whether :func:`export_ensemble` writes this architecture (else members run their own forward)."""
    return config.synmm_aggregation and config.synmm_readout and config.gnpb and config.additive_readout


def _np(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().float().numpy().copy()


class _Writer:
    """Nodes and initialisers of one ONNX graph, with names made up as it goes."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0
        self._memo: dict[tuple, str] = {}

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, value: np.ndarray, hint: str = "c") -> str:
        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, *inputs: str, **attrs: object) -> str:
        out = self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=out, **attrs))
        return out

    def shared(self, key: tuple, make) -> str:
        """One node (or constant) for every caller asking the same ``key``: the members share their indices."""
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]


class _Member:
    """One member's forward pass, written into the shared graph."""

    def __init__(self, w: _Writer, net: SeerNet) -> None:
        self.w = w
        self.params = dict(net.state_dict())
        self.config = net.config
        self.additive_readout = net.additive

    # -------------------------------------------------------------- building blocks
    def weight(self, name: str, start: int = 0, width: int | None = None) -> str:
        """``name``'s weight transposed (x @ W), columns ``start:start+width`` of the original."""
        weight = self.params[f"{name}.weight"]
        end = weight.shape[1] if width is None else start + width
        return self.w.const(_np(weight[:, start:end].t()), "w")

    def linear(self, name: str, x: str, bias: bool = True) -> str:
        out = self.w.op("MatMul", x, self.weight(name))
        return self.w.op("Add", out, self.w.const(_np(self.params[f"{name}.bias"]), "b")) if bias else out

    def parts(self, name: str, parts: Sequence[str], widths: Sequence[int], per_graph: str | None = None,
              graph: str | None = None) -> str:
        """``linear(cat([*parts, per_graph[graph]]))``: the row parts concatenated into one product (one pass
        over the output, a deeper product), the per-graph part projected per graph and gathered."""
        width = sum(widths)
        joined = parts[0] if len(parts) == 1 else self.w.op("Concat", *parts, axis=-1)
        out = self.w.op("MatMul", joined, self.weight(name, 0, width))
        if per_graph is not None:
            assert graph is not None
            projected = self.w.op("MatMul", per_graph, self.weight(name, width, self.config.hidden))
            out = self.w.op("Add", out, self.w.op("Gather", projected, graph, axis=0))
        return self.w.op("Add", out, self.w.const(_np(self.params[f"{name}.bias"]), "b"))

    def silu(self, x: str) -> str:
        return self.w.op("Mul", x, self.w.op("Sigmoid", x))

    def mlp(self, name: str, x: str) -> str:
        return self.linear(f"{name}.2", self.silu(self.linear(f"{name}.0", x)))

    def layer_norm(self, name: str, x: str) -> str:
        return self.w.op("LayerNormalization", x, self.w.const(_np(self.params[f"{name}.weight"]), "g"),
                         self.w.const(_np(self.params[f"{name}.bias"]), "beta"), axis=-1, epsilon=1e-5)

    def scatter(self, x: str, index: str, rows_of: str, width: int, reduction: str) -> str:
        """Per-row ``reduction`` ("add" or "max") of ``x``'s rows into as many rows as ``rows_of`` names
        (an input whose first dimension is the target's), by ``index`` (1-D)."""
        w = self.w
        start = 0.0 if reduction == "add" else _LOWEST
        target = w.shared(("zeros", rows_of, width, start), lambda: w.op(
            "ConstantOfShape", w.op("Concat", w.op("Shape", rows_of, start=0, end=1),
                                    w.const(np.array([width], np.int64), "width"), axis=0),
            value=numpy_helper.from_array(np.array([start], np.float32))))
        column = w.shared(("column", index), lambda: w.op("Unsqueeze", index, w.const(np.array([1], np.int64), "ax")))
        return w.op("ScatterND", target, column, x, reduction=reduction)

    def gather(self, x: str, index: str) -> str:
        return self.w.op("Gather", x, index, axis=0)

    def synmm(self, name: str, x: str, index: str, rows_of: str, mean_scale: str, weight: str | None,
              mask: str | None = None) -> str:
        """``SynMM``: max and (weighted) mean per group, projected.  ``mean_scale``: 1 / (rows or weight) per
        group; ``mask``: 0 for groups with no rows (their max is 0, as in ``pool_max``)."""
        h = self.config.hidden
        peak = self.scatter(x, index, rows_of, h, "max")
        if mask is not None:
            peak = self.w.op("Mul", peak, mask)
        summed = self.scatter(x if weight is None else self.w.op("Mul", x, weight), index, rows_of, h, "add")
        return self.parts(f"{name}.proj", [peak, self.w.op("Mul", summed, mean_scale)], [h, h])

    # -------------------------------------------------------------- the network
    def forward(self) -> str:
        """``[graphs, metrics]``: this member's ``SeerNet.forward(data, plan)``."""
        w, h, config = self.w, self.config.hidden, self.config
        width, op_width = config.node_features, config.op_embedding
        first = self.params["node_encoder.0.weight"]
        op_part = _np(self.params["op_embedding.weight"] @ first[:, width:width + op_width].t())
        category_part = _np(self.params["category_embedding.weight"] @ first[:, width + op_width:].t())
        hidden = self.parts("node_encoder.0", ["x"], [width])
        hidden = w.op("Add", w.op("Add", hidden, self.gather(w.const(op_part, "op_part"), "op")),
                      self.gather(w.const(category_part, "category_part"), "category"))
        x = self.linear("node_encoder.2", self.silu(hidden))
        e = self.mlp("edge_encoder", "edge_attr")
        u = self.mlp("global_encoder", "u")
        graph, log_count = "first_graph", "first_log_count"
        scores = w.op("Add", self.linear("global_node.init_pool.score", x), log_count)
        peak = self.scatter(scores, graph, "u", 1, "max")
        exp = w.op("Exp", w.op("Sub", scores, self.gather(peak, graph)))
        total = w.op("Add", self.scatter(exp, graph, "u", 1, "add"), w.const(np.array([1e-16], np.float32), "tiny"))
        attention = w.op("Div", exp, self.gather(total, graph))
        g = self.scatter(w.op("Mul", attention, x), graph, "u", h, "add")
        for k in range(self.config.layers):
            x, e = self.block(k, x, e, u, g)
            graph = f"node_graph_{k}"
            pooled = self.synmm("global_node.readout", x, graph, "u", f"inv_total_{k}", f"count_{k}")
            update = self.mlp("global_node.update", w.op("Concat", g, pooled, axis=-1))
            g = self.layer_norm("global_node.norm", w.op("Add", g, update))
        last = self.config.layers - 1
        count, inv_total = f"count_{last}", f"inv_total_{last}"
        readout = self.synmm("readout", x, graph, "u", inv_total, count)
        z = self.mlp("trunk", w.op("Concat", readout, u, g, axis=-1))
        heads_weight = np.concatenate([_np(self.params[f"heads.{m}.weight"]).T for m in config.metrics], axis=1)
        heads_bias = np.concatenate([_np(self.params[f"heads.{m}.bias"]) for m in config.metrics])
        heads = w.op("Add", w.op("MatMul", z, w.const(heads_weight, "w")), w.const(heads_bias, "b"))
        return w.op("Add", heads, self.additive(x, g, graph, f"log_count_{last}"))

    def block(self, k: int, x: str, e: str, u: str, g: str) -> tuple[str, str]:
        """``GraphNetworkBlock.forward`` (inference) for block ``k``."""
        w, p, h = self.w, f"blocks.{k}", self.config.hidden
        e_prev = self.gather(e, f"edge_prev_{k}")
        e_new = w.op("Add", self.linear(f"{p}.edge_in", e_prev),
                     self.gather(self.linear(f"{p}.src_in", x, bias=False), f"edge_src_{k}"))
        e_new = w.op("Add", e_new, self.gather(self.linear(f"{p}.global_in", u, bias=False), f"edge_graph_{k}"))
        e_new = w.op("Add", e_new, self.gather(self.linear(f"{p}.dst_in", x, bias=False), f"edge_dst_{k}"))
        e_new = self.layer_norm(f"{p}.edge_norm", w.op("Add", self.linear(f"{p}.edge_out.1", self.silu(e_new)), e_prev))
        incoming = self.gather(e_new, f"agg_edge_{k}")
        rows = f"node_graph_{k}"
        aggregated = self.synmm(f"{p}.aggregate", incoming, f"agg_node_{k}", rows, f"inv_degree_{k}", None,
                                f"has_input_{k}")
        x_prev = self.gather(x, f"node_prev_{k}")
        context = w.op("Add", x_prev, self.gather(g, rows))
        hidden = self.parts(f"{p}.node_mlp.0", [aggregated, context], [h, h], u, rows)
        hidden = self.linear(f"{p}.node_mlp.2", self.silu(hidden))
        return self.layer_norm(f"{p}.node_norm", w.op("Add", hidden, x_prev)), e_new

    def additive(self, x: str, g: str, graph: str, log_count: str) -> str:
        """``AdditiveReadout.forward`` with the plan's counts."""
        w, metrics = self.w, len(self.config.metrics)
        additive = self.additive_readout
        assert additive is not None
        bound = w.const(np.array([additive.bound], np.float32), "bound")
        adjust = self.linear("additive.adjust.2", self.silu(self.parts("additive.adjust.0", [x], [self.config.hidden],
                                                                        g, graph)))
        adjust = w.op("Mul", bound, w.op("Tanh", adjust))
        logs = w.op("Add", w.op("Reshape", adjust, w.const(np.array([0, TERMS, metrics], np.int64), "shape")),
                    w.const(_np(additive.base), "base"))
        terms = w.op("ReduceLogSumExp", w.op("Add", logs, "work_terms"), w.const(np.array([1], np.int64), "ax"),
                     keepdims=0)
        terms = w.op("Add", terms, log_count)
        peak = self.scatter(terms, graph, "u", metrics, "max")
        shifted = w.op("Exp", w.op("Sub", terms, self.gather(peak, graph)))
        operators = w.op("Add", w.op("Log", self.scatter(shifted, graph, "u", metrics, "add")), peak)
        constant = w.op("Add", w.const(_np(additive.constant), "constant"),
                        w.op("Mul", bound, w.op("Tanh", self.linear("additive.constant_adjust", g))))
        # logaddexp(a, b) = max(a, b) + log(1 + exp(-|a - b|))
        top = w.op("Max", operators, constant)
        gap = w.op("Neg", w.op("Abs", w.op("Sub", operators, constant)))
        total = w.op("Add", top, w.op("Log", w.op("Add", w.const(np.array([1.0], np.float32), "one"),
                                                  w.op("Exp", gap))))
        return w.op("Div", w.op("Sub", total, w.const(_np(additive.log_mean), "mean")),
                    w.const(_np(additive.log_std), "std"))


# name → (element type, rank) of every graph input; per-layer ones end in the layer number
_GLOBAL_INPUTS = {"x": (TensorProto.FLOAT, 2), "op": (TensorProto.INT64, 1), "category": (TensorProto.INT64, 1),
                  "edge_attr": (TensorProto.FLOAT, 2), "u": (TensorProto.FLOAT, 2), "first_graph": (TensorProto.INT64, 1),
                  "first_log_count": (TensorProto.FLOAT, 2), "work_terms": (TensorProto.FLOAT, 3)}
_LAYER_INPUTS = {"edge_prev": (TensorProto.INT64, 1), "edge_src": (TensorProto.INT64, 1),
                 "edge_dst": (TensorProto.INT64, 1), "edge_graph": (TensorProto.INT64, 1),
                 "agg_edge": (TensorProto.INT64, 1), "agg_node": (TensorProto.INT64, 1),
                 "inv_degree": (TensorProto.FLOAT, 2), "has_input": (TensorProto.FLOAT, 2),
                 "node_prev": (TensorProto.INT64, 1), "node_graph": (TensorProto.INT64, 1),
                 "count": (TensorProto.FLOAT, 2), "log_count": (TensorProto.FLOAT, 2),
                 "inv_total": (TensorProto.FLOAT, 2)}


def _input_specs(layers: int) -> dict[str, tuple[int, int]]:
    return {**_GLOBAL_INPUTS, **{f"{name}_{k}": spec for k in range(layers) for name, spec in _LAYER_INPUTS.items()}}


def input_names(layers: int) -> list[str]:
    """The exported graph's inputs, in order (what :func:`plan_inputs` gives values for)."""
    return list(_input_specs(layers))


def export_ensemble(members: Sequence[SeerNet]) -> onnx.ModelProto:
    """The members' inference as one ONNX model: inputs :func:`input_names`, output ``predictions``
    ``[members, graphs, metrics]`` (normalised log space, as ``SeerNet.forward``)."""
    config = members[0].config
    if not exportable(config) or any(m.config != config for m in members):
        raise ValueError("members must share one configuration with SynMM, GNPB and the additive read-out")
    writer = _Writer()
    specs = _input_specs(config.layers)
    outputs = []
    for member in members:
        out = _Member(writer, member.eval()).forward()
        outputs.append(writer.op("Unsqueeze", out, writer.const(np.array([0], np.int64), "ax")))
    writer.nodes.append(helper.make_node("Concat", outputs, ["predictions"], axis=0))
    graph = helper.make_graph(
        writer.nodes, "seernet_ensemble",
        [helper.make_tensor_value_info(name, dtype, [None] * rank) for name, (dtype, rank) in specs.items()],
        [helper.make_tensor_value_info("predictions", TensorProto.FLOAT, [len(members), None, len(config.metrics)])],
        writer.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="perfseer")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _column(values: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(values, dtype=np.float32).reshape(-1, 1)


def plan_inputs(batch, plan: Plan) -> dict[str, np.ndarray]:
    """The graph inputs for ``batch`` (an :class:`~seernet.inference_batch.InferenceBatch`) and ``plan``:
    the plan's first gathers done here (numpy), identity indices spelt out, degrees and totals counted."""
    def rows(tensor: torch.Tensor, index: torch.Tensor | None) -> np.ndarray:
        array = tensor.numpy()
        return array if index is None else array[index.numpy()]

    num_graphs = plan.num_graphs
    node_graph = plan.node_graph.numpy()
    count = np.ones(len(node_graph), np.float32) if plan.node_count is None else plan.node_count.numpy()
    work = rows(batch.work, plan.work_rows)
    out = {"x": rows(batch.x, plan.node_rows), "op": rows(batch.op, plan.node_rows),
           "category": rows(batch.category, plan.node_rows), "edge_attr": rows(batch.edge_attr, plan.edge_rows),
           "u": batch.u.numpy(), "first_graph": node_graph, "first_log_count": _column(np.log(count)),
           "work_terms": np.concatenate([work, np.zeros((len(work), 1), np.float32)], axis=1)[:, :, None]}
    previous_nodes, previous_edges = len(node_graph), len(out["edge_attr"])
    for k, layer in enumerate(plan.layers):
        size = layer.size
        agg_node = layer.agg_node.numpy()
        degree = np.bincount(agg_node, minlength=size)
        layer_graph = layer.node_graph.numpy()
        layer_count = np.ones(size, np.float32) if layer.node_count is None else layer.node_count.numpy()
        total = np.bincount(layer_graph, weights=layer_count, minlength=num_graphs)
        out.update({
            f"edge_prev_{k}": np.arange(previous_edges) if layer.edge_prev is None else layer.edge_prev.numpy(),
            f"edge_src_{k}": layer.edge_src.numpy(), f"edge_dst_{k}": layer.edge_dst.numpy(),
            f"edge_graph_{k}": layer.edge_graph.numpy(),
            f"agg_edge_{k}": np.arange(len(agg_node)) if layer.agg_edge is None else layer.agg_edge.numpy(),
            f"agg_node_{k}": agg_node, f"inv_degree_{k}": _column(1.0 / np.maximum(degree, 1)),
            f"has_input_{k}": _column(degree > 0),
            f"node_prev_{k}": np.arange(previous_nodes) if layer.node_prev is None else layer.node_prev.numpy(),
            f"node_graph_{k}": layer_graph, f"count_{k}": _column(layer_count),
            f"log_count_{k}": _column(np.log(layer_count)),
            f"inv_total_{k}": _column(1.0 / np.maximum(total, 1.0))})
        previous_nodes, previous_edges = size, len(layer.edge_src)
    return {name: np.ascontiguousarray(value, dtype=np.int64 if value.dtype.kind in "iu" else np.float32)
            for name, value in out.items()}


class OnnxEnsemble:
    """The exported ensemble in an onnxruntime session (one thread: the service runs one per core)."""

    def __init__(self, members: Sequence[SeerNet], threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # every pass has new shapes: a memory pattern per shape set would only grow, and the arena would keep
        # the largest pass's memory for good (measured: both off cost ~0.1 ms on one graph, nothing on 25)
        options.enable_mem_pattern = False
        options.enable_cpu_mem_arena = False
        self._session = ort.InferenceSession(export_ensemble(members).SerializeToString(), options,
                                             providers=["CPUExecutionProvider"])

    def __call__(self, batch, plan: Plan) -> np.ndarray:
        """``[members, graphs, metrics]``: each member's ``SeerNet.forward(batch, plan)``."""
        return self._session.run(["predictions"], plan_inputs(batch, plan))[0]


__all__ = ["OnnxEnsemble", "export_ensemble", "exportable", "input_names", "plan_inputs"]
