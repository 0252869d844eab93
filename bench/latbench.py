"""External check on BRP-NAS's LatBench (desktop CPU, 15,284 NAS-Bench-201 cells; never training data
for the shipped predictors): fit on 900 random cells, test on the rest, beside a gradient-boosted-trees
baseline on one-hot edge operations; then 20 and 50 cells, from scratch and from our CPU predictor.

Targets (issue 4): Spearman ≥ 0.975 and MAPE ≤ 7 % with 900 cells; Spearman ≥ 0.93 with 50.
Run: ``python -m bench.latbench [--max-test N] [--cached-only]``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from sklearn.ensemble import HistGradientBoostingRegressor  # noqa: E402

from bench.common import save  # noqa: E402
from seernet.data import Sample  # noqa: E402
from seernet.fit import FitRequest, fit_samples  # noqa: E402
from seernet.graph_cache import graph_for, onnx_cache_dir, onnx_cache_path  # noqa: E402
from seernet.latbench import load_latbench, split_order  # noqa: E402
from seernet.predictor import Predictor  # noqa: E402
from seernet.scores import score  # noqa: E402
from seernet.spaces.nasbench201 import OPS, ops_of  # noqa: E402
from seernet.train import TrainConfig  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def one_hot(arch_str: str) -> np.ndarray:
    return np.array([1.0 if op == o else 0.0 for op in ops_of(arch_str) for o in OPS])


def samples(rows) -> list[Sample]:
    return [Sample(r.arch_str, "latbench", graph_for(r.config()), {"latency_ms": r.latency_ms}) for r in rows]


def seernet_scores(train_rows, test_samples, pretrained: Path | None, epochs: int, ensemble: int) -> tuple[dict, float]:
    started = time.monotonic()
    request = FitRequest(Path("latbench.csv"), "latency_ms", pretrained=pretrained, val_fraction=0.2,
                         train=TrainConfig(epochs=epochs, ensemble=ensemble, patience=30, progress=False))
    ensemble_model = fit_samples(samples(train_rows), "latency_ms", request)
    values, _ = ensemble_model.predict(test_samples)
    truth = np.array([s.targets["latency_ms"] for s in test_samples])
    return score(values[:, 0], truth), time.monotonic() - started


def gbt_scores(train_rows, test_rows) -> dict:
    model = HistGradientBoostingRegressor(max_iter=500, learning_rate=0.05, random_state=0)
    model.fit(np.stack([one_hot(r.arch_str) for r in train_rows]), np.log([r.latency_ms for r in train_rows]))
    predicted = np.exp(model.predict(np.stack([one_hot(r.arch_str) for r in test_rows])))
    return score(predicted, np.array([r.latency_ms for r in test_rows]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-test", type=int, default=0, help="test on the first N cells of the random test order")
    parser.add_argument("--cached-only", action="store_true", help="test only on cells whose export is cached")
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--ensemble", type=int, default=2)
    parser.add_argument("--pretrained", default=str(ROOT / "predictors" / "cpu"))
    args = parser.parse_args(argv)

    train_rows, test_rows = split_order(load_latbench(), 900, seed=0)
    if args.cached_only:
        cache = onnx_cache_dir()
        cached = [onnx_cache_path(cache, r.config()).exists() for r in test_rows]
        first_missing = cached.index(False) if False in cached else len(cached)
        test_rows = test_rows[:first_missing]  # a prefix of the random order: still a uniform sample
    if args.max_test:
        test_rows = test_rows[:args.max_test]
    if not test_rows:
        print("no test cells: without --cached-only every cell is exported (about 0.15 s each)", file=sys.stderr)
        return 2
    print(f"train 900 cells, test {len(test_rows)} of 14,384 other cells", flush=True)
    test = samples(test_rows)
    pretrained = Path(args.pretrained)
    pretrained = pretrained if (pretrained / "manifest.json").exists() else None
    if pretrained is not None:
        try:
            Predictor.load(pretrained)
        except Exception as exc:
            print(f"pretrained predictor unusable ({exc}); transfer runs skipped")
            pretrained = None

    results: dict = {"test_cells": len(test_rows), "of_test_cells": 14384, "train_cells": {}}
    for n in (900, 50, 20):
        subset = train_rows[:n]
        row = {"gbt_one_hot": gbt_scores(subset, test_rows)}
        row["seernet_scratch"], row["seernet_scratch_seconds"] = seernet_scores(subset, test, None, args.epochs,
                                                                                args.ensemble)
        if pretrained is not None:
            row["seernet_transfer"], row["seernet_transfer_seconds"] = seernet_scores(subset, test, pretrained,
                                                                                      args.epochs, args.ensemble)
        results["train_cells"][str(n)] = row
        for name in ("seernet_scratch", "seernet_transfer", "gbt_one_hot"):
            if name in row:
                s = row[name]
                print(f"{n:>4} cells  {name:<17} Spearman {s.get('spearman', float('nan')):.4f}  MAPE {s['mape']:.2f} %  "
                      f"±10 % {s['acc10']:.1f} %", flush=True)
    path = save("latbench", results)
    print(f"written to {path}")
    print(json.dumps({n: {k: v.get("spearman") for k, v in r.items() if isinstance(v, dict)}
                      for n, r in results["train_cells"].items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
