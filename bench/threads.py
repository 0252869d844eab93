"""How to predict a CPU at another thread count: transfer from one-thread rows, or measure at that count.

onnxruntime's default on a user's machine is many threads; every predictor fitted before session 21 knew one.
Thread scaling is not one number: on the Intel Xeon, 2 threads run the same configs 1.3-1.9x faster (p10-p90), so
a one-thread predictor times the best constant still misses each architecture by its own speed-up.  This bench
takes a dataset measured at N threads (``--dataset``, e.g. ``perfseer dataset build --threads 2``), the same CPU's
one-thread dataset (``--reference-dataset``; rows pair by job id when both measured the same plan) and real
architectures measured at N threads (``--measured``, ``perfseer bench zoo --threads N``), and scores on those:

* the one-thread predictor as is, and times the median ratio of the N-thread rows to its predictions;
* the one-thread *measurements* of the same architectures times that ratio (what a perfect one-thread predictor
  would give, if a constant were all that threads change; needs ``--reference-measured``);
* operator trees on the N-thread rows alone, and with the one-thread rows as auxiliary rows
  (``seernet.operator_trees``: ``this_device`` 0, half weight), on all of them and on calibration-sized draws.

Run: ``perfseer bench threads`` (defaults: the Intel Xeon's files, 2 threads against 1) →
``bench/results/threads.json``.
Nothing is timed: it reads stored rows and fits (about 25 minutes on two cores).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bench.common import save  # noqa: E402
from bench.zoo import _group_of, build_samples, scores_by_group  # noqa: E402
from profiler_worker.store import DatasetStore  # noqa: E402
from seernet.data import samples_from_rows  # noqa: E402
from seernet.operator_trees import fit_operator_model  # noqa: E402
from seernet.predictor import Predictor  # noqa: E402

TARGET = "infer_time_ms"
ROOT = Path(__file__).resolve().parent.parent
XEON = "intel-r-xeon-r-processor-avx512"  # the CPU both thread counts were measured on (session 21)


def profiled_samples(path: str) -> tuple[list[dict], list]:
    """The measured rows of a dataset and their samples, operators labelled from the stored profiles."""
    store = DatasetStore(Path(path))
    rows = [r for r in store.rows() if r.get(TARGET)]
    kernels = store.operator_kernels({r["job_id"] for r in rows})
    return rows, samples_from_rows(rows, (TARGET,), progress=False, kernels=kernels)


def speedups(rows: list[dict], reference: list[dict]) -> dict:
    """Per family, one-thread time / N-thread time of the configs both datasets measured (median, p10, p90)."""
    one = {r["job_id"]: r[TARGET] for r in reference}
    by_family: dict[str, list[float]] = {}
    for r in rows:
        if r["job_id"] in one:
            by_family.setdefault(r["family"], []).append(one[r["job_id"]] / r[TARGET])
    by_family["all"] = [v for values in by_family.values() for v in values]
    return {f: {"n": len(v), "median": float(np.median(v)), "p10": float(np.percentile(v, 10)),
                "p90": float(np.percentile(v, 90))} for f, v in sorted(by_family.items())}


def scored(predicted: np.ndarray, truth: np.ndarray, rows: list[dict]) -> dict:
    """Scores on all rows and per zoo group, and the median predicted / measured ratio."""
    groups = ["all", *sorted({_group_of(r["model"]) for r in rows})]
    return {**scores_by_group(predicted, truth, rows, groups), "median_ratio": float(np.median(predicted / truth))}


def ratio_to(predictor: Predictor, samples: list) -> float:
    """The median ratio of the samples' measured times to ``predictor``'s: the best constant in log terms."""
    measured = [s for s in samples if s.targets.get(TARGET)]
    predicted = np.array([p.values[TARGET] for p in predictor.predict_graphs([s.graph for s in measured])])
    return float(np.exp(np.median(np.log(np.array([s.targets[TARGET] for s in measured]) / predicted))))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=str(ROOT / "data" / "cpu_dataset_intel-xeon-avx512_2t.sqlite"),
                        help="profiled rows measured at N threads")
    parser.add_argument("--reference-dataset", default=str(ROOT / "data" / "cpu_dataset_intel-xeon-avx512.sqlite"),
                        help="the same CPU's profiled one-thread rows")
    parser.add_argument("--measured", default=str(ROOT / "bench" / "results" / f"zoo_measured_{XEON}_2t.json"),
                        help="real architectures measured at N threads (perfseer bench zoo --threads N)")
    parser.add_argument("--reference-measured", default=str(ROOT / "bench" / "results" / f"zoo_measured_{XEON}.json"),
                        help="the same architectures measured at one thread ('' to leave that row out)")
    parser.add_argument("--predictor", default=str(ROOT / "predictors" / "cpu-intel-xeon-avx512"),
                        help="the one-thread predictor of this CPU")
    parser.add_argument("--sizes", type=int, nargs="+", default=[40, 80],
                        help="calibration-sized draws of N-thread rows")
    parser.add_argument("--draws", type=int, default=2)
    parser.add_argument("--out-name", default="threads")
    args = parser.parse_args(argv)

    rows, samples = profiled_samples(args.dataset)
    reference_rows, reference = profiled_samples(args.reference_dataset)
    stored = json.loads(Path(args.measured).read_text())
    zoo_rows, zoo, failures = build_samples([r for r in stored["rows"] if r["status"] == "ok" and r.get(TARGET)])
    graphs, truth = [s.graph for s in zoo], np.array([r[TARGET] for r in zoo_rows])
    predictor = Predictor.load(args.predictor)
    one_thread = np.array([p.values[TARGET] for p in predictor.predict_graphs(graphs)])
    results: dict = {}

    def record(name: str, predicted: np.ndarray) -> None:
        results[name] = scored(predicted, truth, zoo_rows)
        s = results[name]["all"]
        print(f"{name:58s} Kendall {s['kendall']:.3f}  MAPE {s['mape']:5.1f} %  ±10 % {s['acc10']:4.0f} %  "
              f"median ratio {results[name]['median_ratio']:.3f}", flush=True)

    record("one-thread predictor as is", one_thread)
    constant = ratio_to(predictor, samples)
    record(f"one-thread predictor × {constant:.3f} (all N-thread rows)", one_thread * constant)
    if args.reference_measured and Path(args.reference_measured).exists():
        one = {(r["model"], r["batch_size"]): r[TARGET] for r in json.loads(Path(args.reference_measured).read_text())[
            "rows"] if r["status"] == "ok" and r.get(TARGET)}
        keep = [i for i, r in enumerate(zoo_rows) if (r["model"], r["batch_size"]) in one]
        if len(keep) == len(zoo_rows):
            record(f"one-thread measurements × {constant:.3f}",
                   np.array([one[(r["model"], r["batch_size"])] for r in zoo_rows]) * constant)
    record(f"operator trees, {len(samples)} N-thread rows", fit_operator_model(samples).predict(graphs))
    record(f"operator trees, {len(samples)} N-thread rows + one-thread auxiliary",
           fit_operator_model(samples, auxiliary=reference).predict(graphs))
    rng = np.random.default_rng(0)
    for size in args.sizes:
        for draw in range(args.draws):
            subset = [samples[i] for i in rng.choice(len(samples), size=min(size, len(samples)), replace=False)]
            record(f"{size} N-thread rows, draw {draw}: one-thread predictor × their ratio",
                   one_thread * ratio_to(predictor, subset))
            record(f"{size} N-thread rows, draw {draw}: operator trees", fit_operator_model(subset).predict(graphs))
            record(f"{size} N-thread rows, draw {draw}: operator trees + one-thread auxiliary",
                   fit_operator_model(subset, auxiliary=reference).predict(graphs))
    settings = stored.get("settings", {})
    path = save(args.out_name, {"cpu": stored.get("cpu"), "threads": settings.get("threads"),
                                "dataset": args.dataset, "rows": len(samples),
                                "reference_dataset": args.reference_dataset,
                                "reference_rows": len(reference), "measured": args.measured,
                                "real_architectures": len(zoo_rows), "graph_failures": failures,
                                "speedups": speedups(rows, reference_rows), "variants": results})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
