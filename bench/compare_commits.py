"""Graph build (from ONNX and from a config) and GNN forward per NAS-Bench-201 model for two checkouts,
interleaved in one session.

Absolute timings on a shared VM drift by tens of percent between runs, so a before/after claim is a ratio
measured here, alternating the checkouts.  Run: ``git worktree add /tmp/ref <commit>`` then
``python bench/compare_commits.py /tmp/ref . --rounds 2`` (each round runs both in fresh processes).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# runs inside one checkout: its own seernet, the same models and predictor for both
PROBE = r'''
import glob, json, os, statistics, sys, time
root, cache, predictor_dir = sys.argv[1:4]
sys.path.insert(0, root)
import torch
torch.set_num_threads(1)
from seernet.graph import build_graph
from seernet.predictor import Predictor
from seernet.spaces import get_space
space = get_space("nasbench201")
configs = [c.with_batch(4) for c in space.sample_n(50, seed=3)]
models = [open(f, "rb").read() for f in sorted(glob.glob(os.path.join(cache, "*", "*")))[:50]]
predictor = Predictor.load(predictor_dir)
graphs = [build_graph(m, batch_size=4) for m in models]
def per_model(fn, n):
    fn()
    samples = []
    for _ in range(5):
        t0 = time.perf_counter(); fn(); samples.append((time.perf_counter() - t0) * 1000 / n)
    return statistics.median(samples)
print(json.dumps({"graph_build_ms": per_model(lambda: [build_graph(m, batch_size=4) for m in models], len(models)),
                  "config_graph_ms": per_model(lambda: [space.direct_graph(c) for c in configs], len(configs)),
                  "gnn_batch_ms": per_model(lambda: predictor.predict_graphs(graphs), len(graphs)),
                  "gnn_single_ms": per_model(lambda: [predictor.predict_graphs([g]) for g in graphs[:10]], 10),
                  "models": len(models)}))
'''


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cache", default=str(ROOT / ".cache" / "onnx"),
                        help="stripped NAS-Bench-201 exports (perfseer bench serve fills it)")
    parser.add_argument("--predictor", default=str(ROOT / "predictors" / "cpu"))
    args = parser.parse_args(argv)
    rows: dict[str, list[dict]] = {"before": [], "after": []}
    for _ in range(args.rounds):
        for label in ("before", "after"):
            out = subprocess.run([sys.executable, "-c", PROBE, str(Path(getattr(args, label)).resolve()), args.cache,
                                  args.predictor], capture_output=True, text=True, check=True).stdout
            rows[label].append(json.loads(out.strip().splitlines()[-1]))
            print(label, rows[label][-1], flush=True)
    for key in ("graph_build_ms", "config_graph_ms", "gnn_batch_ms", "gnn_single_ms"):
        before = statistics.median(r[key] for r in rows["before"])
        after = statistics.median(r[key] for r in rows["after"])
        print(f"{key:<16} before {before:7.2f}  after {after:7.2f}  ratio {before / after:.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
