"""Operator predictors' cost per network: onnxruntime's tree walk against the numpy reference, on one core.

Every shipped operator predictor (``kind: operators`` under ``predictors/``) predicts NAS-Bench-201 networks
(graphs straight from their configs) in passes of ``--pass-size`` and one at a time, with
``seernet.trees.predict_trees`` (onnxruntime) and with ``walk_trees`` (numpy) swapped in, in this one run;
it prints ms per network, the ratio, and the largest relative difference between the two walks.
Run: ``perfseer bench trees``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bench.common import pin_to_one_core, repeat_ms, save  # noqa: E402
from seernet import operator_trees, trees  # noqa: E402
from seernet.graph_cache import graph_for  # noqa: E402
from seernet.predictor import Predictor  # noqa: E402
from seernet.spaces import SPACES  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def operator_predictors() -> list[Path]:
    return [m.parent for m in sorted((ROOT / "predictors").glob("*/manifest.json"))
            if json.loads(m.read_text()).get("kind") == "operators"]


def time_walks(model: operator_trees.OperatorModel, graphs: list, pass_size: int, repeats: int) -> dict:
    """ms per network in passes and alone, for each walk, and how far apart their predictions are."""
    row, predictions = {}, {}
    for walk_name, walk in (("onnxruntime", trees.predict_trees), ("numpy", trees.walk_trees)):
        operator_trees.predict_trees = walk
        try:
            batch = graphs[:pass_size]
            passes = repeat_ms(lambda: model.predict(batch), repeats)
            single = repeat_ms(lambda: model.predict(graphs[pass_size:pass_size + 1]), repeats * 4)
            predictions[walk_name] = model.predict(graphs)
        finally:
            operator_trees.predict_trees = trees.predict_trees
        row[walk_name] = {"per_network_in_passes_ms": passes["median_ms"] / len(batch),
                          "pass_p25_p75_ms": [passes["p25_ms"], passes["p75_ms"]],
                          "one_network_ms": single["median_ms"],
                          "one_network_p25_p75_ms": [single["p25_ms"], single["p75_ms"]]}
    row["speedup_in_passes"] = row["numpy"]["per_network_in_passes_ms"] / row["onnxruntime"]["per_network_in_passes_ms"]
    row["speedup_one_network"] = row["numpy"]["one_network_ms"] / row["onnxruntime"]["one_network_ms"]
    row["max_relative_difference"] = float(np.max(np.abs(predictions["onnxruntime"] / predictions["numpy"] - 1)))
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pass-size", type=int, default=50, help="networks predicted together")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    cpu = pin_to_one_core()
    graphs = [graph_for(c) for c in SPACES["nasbench201"].sample_n(args.pass_size + 1, seed=3)]
    results = {}
    for directory in operator_predictors():
        model = Predictor.load(directory).model
        results[directory.name] = row = time_walks(model, graphs, args.pass_size, args.repeats)
        numpy_ms, ort_ms = (row[w]["per_network_in_passes_ms"] for w in ("numpy", "onnxruntime"))
        print(f"{directory.name:<24} ms per network in passes of {args.pass_size}: numpy {numpy_ms:.2f} → "
              f"onnxruntime {ort_ms:.2f} ({row['speedup_in_passes']:.1f}×); one network "
              f"{row['numpy']['one_network_ms']:.2f} → {row['onnxruntime']['one_network_ms']:.2f} "
              f"({row['speedup_one_network']:.1f}×); predictions within "
              f"{row['max_relative_difference']:.1e}")
    path = save("trees", {"pinned_cpu": cpu, "networks": "NAS-Bench-201, graphs from configs, seed 3",
                          "mean_nodes": float(np.mean([g.num_nodes for g in graphs])), "pass_size": args.pass_size,
                          "predictors": results})
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
