"""`perfseer bench fit`: SeerNet vs trees vs ridge vs what `fit` ships, on synthetic NAS-Bench-201 device tables
and LatBench, each fitted on the same N cells and tested on the same other cells.

    python -m bench.fit_tables --train 900 --test 1000      # → bench/results/fit_tables.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import save  # noqa: E402
from profiler_worker.device_info import cpu_model  # noqa: E402
from seernet.data import Sample  # noqa: E402
from seernet.fit import FIT_METHODS, FitRequest, select_and_fit  # noqa: E402
from seernet.graph_cache import graph_for  # noqa: E402
from seernet.scores import score  # noqa: E402
from seernet.spaces.nasbench201 import NasBench201Space  # noqa: E402
from seernet.synthetic_tables import DEVICES, synthetic_table  # noqa: E402
from seernet.train import TrainConfig  # noqa: E402

PRETRAINED = Path(__file__).resolve().parent.parent / "predictors" / "cpu"


def tables(n: int) -> dict[str, list[tuple[str, float]]]:
    """The synthetic devices' tables and LatBench's, over the same cells (so each cell is exported once)."""
    result = {d: [(r.arch_str, r.latency_ms) for r in synthetic_table(d, n, seed=0)] for d in DEVICES}
    try:
        from seernet.latbench import load_latbench

        measured = {r.arch_str: r.latency_ms for r in load_latbench()}
        cells = [a for a, _ in next(iter(result.values())) if a in measured]
        result["latbench"] = [(a, measured[a]) for a in cells]
    except FileNotFoundError:
        pass
    return result


def run(n_train: int, n_test: int, epochs: int, small: tuple[int, ...] = (50, 20)) -> dict:
    report = {"cpu_model": cpu_model(), "train": n_train, "test": n_test, "epochs": epochs, "tables": {}}
    runs = [(name, rows, n_train) for name, rows in tables(n_train + n_test).items()]
    runs += [(name, rows, n) for name, rows, _ in runs if name == "latbench" for n in small]
    for name, rows, n in tqdm(runs, desc="tables"):
        samples = [Sample(a, "nasbench201", graph_for(NasBench201Space.config_for(a)), {"latency_ms": v})
                   for a, v in tqdm(rows, desc=f"{name} graphs", leave=False)]
        train, test = samples[:n], samples[n_train:]
        name = name if n == n_train else f"{name}@{n}"
        request = FitRequest(Path(f"{name}.csv"), "latency_ms", pretrained=PRETRAINED if PRETRAINED.exists() else None,
                             train=TrainConfig(epochs=epochs, ensemble=1, patience=30, progress=False))
        started = time.perf_counter()
        best, candidates = select_and_fit(train, "latency_ms", request, FIT_METHODS)
        truth = np.array([s.targets["latency_ms"] for s in test])
        entry = {"chosen": best.name, "seconds": round(time.perf_counter() - started, 1), "methods": {}}
        for c in [*candidates, best]:
            p = c.predict(test)
            key = "shipped" if c is best else c.name
            entry["methods"][key] = {k: score(p, truth).get(k) for k in ("spearman", "kendall", "mape")}
        report["tables"][name] = entry
        print(name, json.dumps(entry), flush=True)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train", type=int, default=900)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--small", type=int, nargs="*", default=[50, 20], help="LatBench also with this few cells")
    args = parser.parse_args(argv)
    report = run(args.train, args.test, args.epochs, tuple(args.small))
    report["command"] = "perfseer bench fit " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"wrote {save('fit_tables', report)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
