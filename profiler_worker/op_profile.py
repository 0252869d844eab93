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


def map_kernels(model: onnx.ModelProto, kernel_names: list[str],
                kernel_outputs: dict[str, list[str]] | None = None) -> tuple[dict[str, list[str]], list[str]]:
    """Original nodes covered by each kernel (names of nodes, in graph order), and the nodes none covers.

    ``kernel_outputs``: the tensors each kernel writes (from the optimized graph); the node of the original
    graph that writes one of them is the kernel's anchor.  Without it (or for tensors the runtime renamed)
    the kernel's own name decides: a node name (``fused `` stripped) or a tensor name (``_nchwc`` stripped)."""
    nodes = list(model.graph.node)
    name_of = [n.name or f"{n.op_type}_{i}" for i, n in enumerate(nodes)]
    by_name = {name: i for i, name in enumerate(name_of)}
    producer = {out: i for i, n in enumerate(nodes) for out in n.output if out}
    anchors: dict[str, int] = {}
    for kernel in kernel_names:
        written = [producer[t] for t in (kernel_outputs or {}).get(kernel, []) if t in producer]
        base = _SUFFIXES.sub("", kernel)
        for prefix in _PREFIXES:
            base = base.removeprefix(prefix)
        index = max(written) if written else by_name.get(kernel, by_name.get(base, producer.get(base,
                                                                                              producer.get(kernel))))
        if index is not None:
            anchors[kernel] = index
    anchor_nodes = set(anchors.values())
    claimed: dict[int, str] = {}
    covered: dict[str, list[str]] = {k: [] for k in kernel_names}
    for kernel, index in sorted(anchors.items(), key=lambda kv: kv[1]):
        if index in claimed:
            continue
        stack = [index]
        while stack:
            i = stack.pop()
            if i in claimed or (i != index and i in anchor_nodes):
                continue
            claimed[i] = kernel
            stack.extend(producer[t] for t in nodes[i].input if t in producer)
    for i, kernel in sorted(claimed.items()):
        covered[kernel].append(name_of[i])
    uncovered = [name_of[i] for i in range(len(nodes)) if i not in claimed]
    return covered, uncovered


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
            outputs = {n.name: list(n.output) for n in optimized.graph.node}
        except (OSError, onnx.onnx_cpp2py_export.checker.ValidationError, ValueError):
            outputs = {}
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
    covered, uncovered = map_kernels(onnx.load_from_string(onnx_bytes), list(per_kernel), outputs)
    kernels = [KernelProfile(k, meta[k][0], meta[k][1], statistics.median(v), covered.get(k, []))
               for k, v in per_kernel.items()]
    kernels.sort(key=lambda k: -k.median_ms)
    end_to_end = statistics.median([r["dur"] / 1000.0 for r in runs[1:]]) if len(runs) > 1 else 0.0
    return OperatorProfile(kernels, end_to_end, uncovered)
