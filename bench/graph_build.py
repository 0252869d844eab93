"""Graph-build time for ResNet-50-sized and larger ONNX models on one core, and the fast lane against the
whole-model path on the graphs NAS sends.

Goals: ≤ 10 ms per ResNet-50 (PerfSeer reports ~248 ms for its representation step); graphs from ONNX ≥ 5×
cheaper than the whole-model path (issue 16), measured as ratios in this one run: for each space, models never
built before (after the memo warmed on others of the space), and real-sized models seen before and at first sight;
with ``--baseline-repo DIR``, the same space models built by another checkout too (the code an issue measured).
Run: ``make bench`` or ``perfseer bench graph [--baseline-repo DIR]``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import onnx  # noqa: E402

from bench.common import pin_to_one_core, repeat_ms, save  # noqa: E402
from perfseer.config import Limits  # noqa: E402
from seernet.fast_graph import clear_memos  # noqa: E402
from seernet.graph import build_graph as _build_graph  # noqa: E402
from seernet.graph import reference_graph  # noqa: E402
from seernet.strip import strip_bytes  # noqa: E402
from seernet.zoo import zoo_onnx  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("resnet50", "resnet152", "vgg11", "mobilenet_v2", "vit_tiny_patch16_224", "bert_mini")
GOAL_MS = 10.0
BENCH_LIMITS = Limits(max_model_bytes=2**31 - 1, max_nodes=100_000, max_batch_size=4096)


def build_graph(source):
    return _build_graph(source, limits=BENCH_LIMITS)  # VGG-11 with weights is 507 MiB, over the default limit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--space-models", type=int, default=24,
                        help="models per space: half warm the memo, half are timed as never built before")
    parser.add_argument("--baseline-repo", type=Path,
                        help="also time the same space models with build_graph of this checkout (e.g. a worktree of "
                             "the revision an issue measured), each checkout in a fresh process")
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
    lanes = lane_ratios(args.models, args.space_models, args.repeats)
    resnet = rows.get("resnet50", {}).get("stripped_bytes_input", {}).get("median_ms")
    payload = {"cpu_pinned": cpu, "goal_ms_resnet50": GOAL_MS, "models": rows, "fast_lane_vs_whole_model": lanes,
               "resnet50_median_ms": resnet, "meets_goal": resnet is not None and resnet <= GOAL_MS}
    if args.baseline_repo:
        payload["against_baseline"] = against_baseline(args.baseline_repo.resolve(), args.space_models)
    path = save("graph_build", payload)
    if resnet is not None:
        print(f"ResNet-50 (stripped request) median {resnet:.2f} ms; goal ≤ {GOAL_MS} ms: "
              f"{'met' if resnet <= GOAL_MS else 'NOT met'}.  Written to {path}")
    return 0


def lane_ratios(zoo_names: list[str], per_space: int, repeats: int) -> dict:
    """Per space and per real-sized model: ms per graph on the fast lane and on the whole-model path, and
    their ratio (batch 4; stripped models, as clients send them)."""
    from seernet.export import export_config
    from seernet.spaces import SPACES

    out: dict[str, dict] = {}
    for space_name, space in SPACES.items():
        configs = space.sample_n(per_space, seed=21, max_gflops=2.0)
        models = [strip_bytes(export_config(c)) for c in configs]
        warm, timed = models[: len(models) // 2], models[len(models) // 2:]
        for m in warm:  # both paths remember operators across models (the lane its memo, the other its rows)
            _build_graph(m, batch_size=4)
            reference_graph(m, batch_size=4)
        fast = _once_ms(lambda: [_build_graph(m, batch_size=4) for m in timed])  # each model's first sight
        whole = _once_ms(lambda: [reference_graph(m, batch_size=4) for m in timed])
        out[f"space:{space_name}"] = _lane_row(fast / len(timed), whole / len(timed), len(timed))
    for name in zoo_names:
        stripped = strip_bytes(zoo_onnx(name))
        _build_graph(stripped, batch_size=3)  # the process's first use of onnx's reference evaluator, not the memo's
        clear_memos()
        first = _once_ms(lambda: _build_graph(stripped, batch_size=4))
        first_whole = _once_ms(lambda: reference_graph(stripped, batch_size=5))  # a batch it has not costed
        fast = repeat_ms(lambda: _build_graph(stripped, batch_size=4), repeats)["median_ms"]
        whole = repeat_ms(lambda: reference_graph(stripped, batch_size=4), max(5, repeats // 3))["median_ms"]
        out[name] = {**_lane_row(fast, whole, 1), "first_sight_ms": first, "whole_model_first_sight_ms": first_whole,
                     "first_sight_ratio": first_whole / first}
    for name, row in out.items():
        extra = (f" (first sight {row['first_sight_ms']:.2f} ms, whole-model path's {row['whole_model_first_sight_ms']:.2f})"
                 if "first_sight_ms" in row else " (models never built before, both paths)")
        print(f"{name:<24} fast lane {row['fast_ms']:7.2f} ms{extra}, whole-model path {row['whole_model_ms']:7.2f} ms:"
              f" {row['ratio']:.1f}×")
    return out


# Run in a fresh process with a checkout first on the path: each space's first half of models warms whatever
# that checkout remembers across models, the second half is timed at first sight and then again.
_CHILD = """
import json, pathlib, sys, time
import torch
torch.set_num_threads(1)
from seernet.graph import build_graph
out = {}
for space in sorted(p for p in pathlib.Path(sys.argv[1]).iterdir() if p.is_dir()):
    models = [f.read_bytes() for f in sorted(space.glob('*.onnx'))]
    warm, timed = models[:len(models) // 2], models[len(models) // 2:]
    for m in warm:
        build_graph(m, batch_size=4)
    row = {}
    for key in ('first_sight_ms', 'again_ms'):
        started = time.perf_counter()
        for m in timed:
            build_graph(m, batch_size=4)
        row[key] = (time.perf_counter() - started) * 1000.0 / len(timed)
    out[space.name] = row
print(json.dumps(out))
"""


def against_baseline(baseline: Path, per_space: int) -> dict:
    """ms per graph of each space's models (the ones :func:`lane_ratios` times) built by ``baseline``'s checkout
    and by this one, each in a fresh process on this core, and the ratios (baseline / this)."""
    from seernet.export import export_config
    from seernet.spaces import SPACES

    def run(repo: Path, models_dir: str) -> dict:
        done = subprocess.run([sys.executable, "-c", _CHILD, models_dir], cwd=repo, capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(repo)}, check=False)
        if done.returncode != 0:
            raise SystemExit(f"timing graphs with {repo} failed: {done.stderr.strip().splitlines()[-1:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    revision = subprocess.run(["git", "-C", str(baseline), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=False).stdout.strip()
    with tempfile.TemporaryDirectory() as models_dir:
        for space_name, space in SPACES.items():
            folder = Path(models_dir) / space_name
            folder.mkdir()
            for k, config in enumerate(space.sample_n(per_space, seed=21, max_gflops=2.0)):
                (folder / f"{k:03d}.onnx").write_bytes(strip_bytes(export_config(config)))
        before, after = run(baseline, models_dir), run(ROOT, models_dir)
    out = {"baseline_repo": str(baseline), "baseline_revision": revision, "spaces": {}}
    for space_name in after:
        b, a = before[space_name], after[space_name]
        out["spaces"][space_name] = {"baseline": b, "this": a, "first_sight_ratio": b["first_sight_ms"] / a["first_sight_ms"],
                                     "again_ratio": b["again_ms"] / a["again_ms"]}
        print(f"{space_name:<12} {revision or baseline}: first sight {b['first_sight_ms']:6.2f} ms, again "
              f"{b['again_ms']:6.2f};  this checkout: {a['first_sight_ms']:6.2f}, {a['again_ms']:6.2f}  →  "
              f"{b['first_sight_ms'] / a['first_sight_ms']:.1f}× / {b['again_ms'] / a['again_ms']:.1f}×")
    return out


def _once_ms(fn) -> float:
    """One timed call: a first sight cannot be repeated."""
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000.0


def _lane_row(fast_ms: float, whole_ms: float, models: int) -> dict:
    return {"models": models, "fast_ms": fast_ms, "whole_model_ms": whole_ms, "ratio": whole_ms / fast_ms}


if __name__ == "__main__":
    sys.exit(main())
