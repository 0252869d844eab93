"""Per-operator profiles of inference: which kernels onnxruntime ran, for how long, and for which ONNX nodes.

onnxruntime's profiler (``SessionOptions.enable_profiling``) reports every executed kernel, named by the
tensor it writes (``r_nchwc`` writes the layout-converted form of tensor ``r``) or by the node it runs
(``add``).  A fused kernel covers several original nodes: its anchor (the node that writes that tensor, or
has that name) and the anchor's producers back to the tensors other kernels write.  Kernels the runtime
inserted itself (layout reorders, copies) map to no node and are recorded as unmapped, never dropped, and
so are nodes no kernel covers (folded constants).  The profile runs in a session of its own, after the
end-to-end timing, so its overhead never touches the headline figure.
"""
from __future__ import annotations

import json
import os
import re
import statistics
import tempfile
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import onnx

# What onnxruntime appends to the node or tensor a kernel came from: layout and token suffixes, a fusion's
# name ("/act/Mul/QuickGeluFusion/", "/attn/Gather_5/GatherSliceToSplitFusion"), and a BatchNorm or Mul
# turned into a convolution ("…/BatchNormalization_output_0_bn_nchwc").  Seen unmapped in the AMD EPYC
# dataset's profiles before these were stripped: 1,820 kernels, 6 % of the profiled time.
_SUFFIXES = re.compile(r"(_nchwc|_token_\d+|_kernel_time|/\w+Fusion/?|_bn|_mul)+$")
_PREFIXES = ("fused ",)


@dataclass
class KernelProfile:
    kernel: str  # onnxruntime's node name in the optimized graph
    op_type: str
    provider: str
    median_ms: float
    nodes: list[str] = field(default_factory=list)  # original ONNX nodes it executes ([] = unmapped)


@dataclass
class OperatorProfile:
    kernels: list[KernelProfile]
    end_to_end_ms: float  # median of the profiled runs, from onnxruntime's own executor spans
    uncovered: list[str] = field(default_factory=list)  # original nodes no kernel covers (folded away)

    @property
    def kernel_share(self) -> float:
        """How much of end-to-end time the kernels account for (the rest: the executor, allocation)."""
        total = sum(k.median_ms for k in self.kernels)
        return total / self.end_to_end_ms if self.end_to_end_ms > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"kernels": [asdict(k) for k in self.kernels], "end_to_end_ms": self.end_to_end_ms,
                "kernel_share": self.kernel_share, "uncovered": self.uncovered}


@dataclass
class RuntimeNode:
    """A node of onnxruntime's optimized graph: what a kernel of the profile reads and writes."""

    op_type: str
    inputs: list[str]
    outputs: list[str]


# Kernels the runtime inserts to convert layouts: they stand for no original node and stay unmapped.
RUNTIME_INSERTED = ("ReorderInput", "ReorderOutput")
_MAX_REORDER_HOPS = 6  # how far downstream a kernel between layout reorders is traced to a mapped kernel


def map_kernels(model: onnx.ModelProto, kernel_names: list[str],
                runtime_graph: dict[str, RuntimeNode] | None = None) -> tuple[dict[str, list[str]], list[str]]:
    """Original nodes covered by each kernel (names of nodes, in graph order), and the nodes none covers.

    ``runtime_graph``: onnxruntime's optimized graph by node name; the node of the original graph that writes
    one of a kernel's outputs is the kernel's anchor.  Without it (or for tensors the runtime renamed) the
    kernel's own name decides: a node name (``fused `` stripped) or a tensor name (``_nchwc`` stripped).
    A kernel that runs between layout reorders (a Gelu fused from Div, Erf, Add and Mul between two blocked
    convolutions reads and writes only tensors the runtime made) is traced downstream to the first mapped
    kernel; the original input of that kernel's anchor is its anchor.  In the Intel Xeon dataset 994 such Gelu
    kernels (276 ms, 42 timm rows: PoolFormer, ConvFormer, RDNet …) were stored unmapped (``data/README.md``)."""
    runtime_graph = runtime_graph or {}
    nodes = list(model.graph.node)
    name_of = [n.name or f"{n.op_type}_{i}" for i, n in enumerate(nodes)]
    by_name = {name: i for i, name in enumerate(name_of)}
    producer = {out: i for i, n in enumerate(nodes) for out in n.output if out}
    anchors: dict[str, int] = {}
    for kernel in kernel_names:
        runtime = runtime_graph.get(kernel)
        written = [producer[t] for t in (runtime.outputs if runtime else []) if t in producer]
        base = _SUFFIXES.sub("", kernel)
        for prefix in _PREFIXES:
            base = base.removeprefix(prefix)
        index = max(written) if written else by_name.get(kernel, by_name.get(base, producer.get(base,
                                                                                              producer.get(kernel))))
        if index is not None:
            anchors[kernel] = index
    claimed = _claim(nodes, producer, anchors)
    unplaced = [k for k in kernel_names if k not in anchors and k in runtime_graph
                and runtime_graph[k].op_type not in RUNTIME_INSERTED]
    if unplaced:  # kernels between layout reorders: placed from the first claim, then everything claimed again
        consumers: dict[str, list[str]] = {}
        for name, node in runtime_graph.items():
            for t in node.inputs:
                consumers.setdefault(t, []).append(name)
        placed = {k: _anchor_downstream(k, runtime_graph, consumers, anchors, claimed, nodes, producer)
                  for k in unplaced}
        between = {k: i for k, i in placed.items() if i is not None}
        if between:
            claimed = _claim(nodes, producer, {**anchors, **between})
    covered: dict[str, list[str]] = {k: [] for k in kernel_names}
    for i, kernel in sorted(claimed.items()):
        covered[kernel].append(name_of[i])
    uncovered = [name_of[i] for i in range(len(nodes)) if i not in claimed]
    return covered, uncovered


def _claim(nodes: list, producer: dict[str, int], anchors: dict[str, int]) -> dict[int, str]:
    """Node index → kernel: each anchor, in graph order, claims its node and the unclaimed producers back to
    other anchors."""
    claimed: dict[int, str] = {}
    stop = set(anchors.values())
    for kernel, index in sorted(anchors.items(), key=lambda kv: kv[1]):
        if index in claimed:
            continue
        stack = [index]
        while stack:
            i = stack.pop()
            if i in claimed or (i != index and i in stop):
                continue
            claimed[i] = kernel
            stack.extend(producer[t] for t in nodes[i].input if t in producer)
    return claimed


def _anchor_downstream(kernel: str, runtime_graph: dict[str, RuntimeNode], consumers: dict[str, list[str]],
                       anchors: dict[str, int], claimed: dict[int, str], nodes: list, producer: dict[str, int]
                       ) -> int | None:
    """The original node a kernel between layout reorders stands for (None when none is found).

    What it writes is followed through unmapped runtime kernels to a kernel with an anchor, which reads it as
    its input ``j``; among that kernel's original nodes, the one of its own op type (a Conv for a blocked
    convolution) reads the original tensor at input ``j``, and that tensor's writer is the anchor.  A
    tensor the runtime kept under its original name (``_nchwc`` stripped) answers directly.  ``consumers``:
    the runtime kernels reading each tensor."""
    frontier, seen = list(runtime_graph[kernel].outputs), {kernel}
    for _ in range(_MAX_REORDER_HOPS):
        following = []
        for tensor in frontier:
            if (original := producer.get(_SUFFIXES.sub("", tensor))) is not None:
                return original
            for name in consumers.get(tensor, []):
                if name in seen:
                    continue
                seen.add(name)
                if name not in anchors:
                    following.extend(runtime_graph[name].outputs)
                    continue
                reader = runtime_graph[name]
                position = reader.inputs.index(tensor)
                op_type = reader.op_type.removeprefix("Fused")
                readers = [i for i, k in claimed.items() if k == name and nodes[i].op_type == op_type
                           and len(nodes[i].input) > position and nodes[i].input[position] in producer]
                if readers:
                    return producer[nodes[max(readers)].input[position]]
        frontier = following
        if not frontier:
            break
    return None


def profile_operators(onnx_bytes: bytes, make_options: Callable[[], Any], providers: list, feeds: dict,
                      repeats: int = 10) -> OperatorProfile:
    """Run ``repeats`` profiled inferences in a fresh session; per kernel, the median over the runs."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        options = make_options()
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(tmp, "ops")
        options.optimized_model_filepath = os.path.join(tmp, "optimized.onnx")  # which tensors each kernel writes
        session = ort.InferenceSession(onnx_bytes, options, providers=providers)
        session.run(None, feeds)  # warm-up, dropped below
        for _ in range(repeats):
            session.run(None, feeds)
        with open(session.end_profiling()) as f:
            events = json.load(f)
        try:
            optimized = onnx.load(os.path.join(tmp, "optimized.onnx"), load_external_data=False)
            runtime_graph = {n.name: RuntimeNode(n.op_type, list(n.input), list(n.output))
                             for n in optimized.graph.node}
        except (OSError, onnx.onnx_cpp2py_export.checker.ValidationError, ValueError):
            runtime_graph = {}
    runs = [e for e in events if e.get("cat") == "Session" and e.get("name") == "SequentialExecutor::Execute"]
    first_timed = runs[1]["ts"] if len(runs) > 1 else 0
    per_kernel: dict[str, list[float]] = {}
    meta: dict[str, tuple[str, str]] = {}
    for e in events:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time") or e.get("ts", 0) < first_timed:
            continue
        kernel = e["name"].removesuffix("_kernel_time")
        per_kernel.setdefault(kernel, []).append(e["dur"] / 1000.0)
        meta[kernel] = (e["args"].get("op_name", ""), e["args"].get("provider", ""))
    covered, uncovered = map_kernels(onnx.load_from_string(onnx_bytes), list(per_kernel), runtime_graph)
    kernels = [KernelProfile(k, meta[k][0], meta[k][1], statistics.median(v), covered.get(k, []))
               for k, v in per_kernel.items()]
    kernels.sort(key=lambda k: -k.median_ms)
    end_to_end = statistics.median([r["dur"] / 1000.0 for r in runs[1:]]) if len(runs) > 1 else 0.0
    return OperatorProfile(kernels, end_to_end, uncovered)
