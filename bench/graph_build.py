"""Graph-build time for ResNet-50-sized and larger ONNX models on one core.

Goal: ≤ 10 ms per ResNet-50 (PerfSeer reports ~248 ms for its representation step).
Run: ``make bench`` or ``python -m bench.graph_build``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import onnx  # noqa: E402

from bench.common import pin_to_one_core, repeat_ms, save  # noqa: E402
from perfseer.config import Limits  # noqa: E402
from seernet.graph import build_graph as _build_graph  # noqa: E402
from seernet.strip import strip_bytes  # noqa: E402
from seernet.zoo import zoo_onnx  # noqa: E402

MODELS = ("resnet50", "resnet152", "vgg11", "mobilenet_v2", "vit_tiny_patch16_224", "bert_mini")
GOAL_MS = 10.0
BENCH_LIMITS = Limits(max_model_bytes=2**31 - 1, max_nodes=100_000, max_batch_size=4096)


def build_graph(source):
    return _build_graph(source, limits=BENCH_LIMITS)  # VGG-11 with weights is 507 MiB, over the default limit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    args = parser.parse_args(argv)
    cpu = pin_to_one_core()
    rows = {}
    for name in args.models:
        full = zoo_onnx(name)
        stripped = strip_bytes(full)
        proto = onnx.load_from_string(full)
        graph = build_graph(stripped)
        rows[name] = {
            "nodes": graph.num_nodes, "edges": graph.num_edges, "full_bytes": len(full), "stripped_bytes": len(stripped),
            "stripped_bytes_input": repeat_ms(lambda: build_graph(stripped), args.repeats),
            "full_modelproto_input": repeat_ms(lambda: build_graph(proto), args.repeats),
            "full_bytes_input": repeat_ms(lambda: build_graph(full), max(5, args.repeats // 3)),
        }
        r = rows[name]
        print(f"{name:<22} {r['nodes']:>4} nodes  stripped bytes {r['stripped_bytes_input']['median_ms']:7.2f} ms "
              f"[{r['stripped_bytes_input']['p25_ms']:.2f}–{r['stripped_bytes_input']['p75_ms']:.2f}]  "
              f"full ModelProto {r['full_modelproto_input']['median_ms']:7.2f} ms  "
              f"full bytes {r['full_bytes_input']['median_ms']:7.2f} ms  ({len(full) / 2**20:.0f} MiB → {len(stripped) / 1024:.0f} KiB)")
    resnet = rows.get("resnet50", {}).get("stripped_bytes_input", {}).get("median_ms")
    payload = {"cpu_pinned": cpu, "goal_ms_resnet50": GOAL_MS, "models": rows,
               "resnet50_median_ms": resnet, "meets_goal": resnet is not None and resnet <= GOAL_MS}
    path = save("graph_build", payload)
    if resnet is not None:
        print(f"ResNet-50 (stripped request) median {resnet:.2f} ms; goal ≤ {GOAL_MS} ms: "
              f"{'met' if resnet <= GOAL_MS else 'NOT met'}.  Written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
