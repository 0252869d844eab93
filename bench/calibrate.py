"""Calibrate on this machine within budgets (default 2, 5 and 10 minutes), then predict real architectures
measured here that no calibration saw: Kendall τ, MAPE and ±10 % accuracy of the calibrated predictor beside
the uncalibrated shipped one and a log-linear MACs fit on the same calibration rows.

The real architectures are the zoo (ResNet-18/50/152, MobileNetV2, VGG-11, ViT-Ti, BERT-mini: none from a
space calibrate draws from; ``--groups zoo torchvision timm`` adds torchvision's classification models and
the timm architectures held out of every training set), measured once per CPU model into
``bench/results/zoo_measured_<cpu>.json``.  Beside the predictor calibrate ships, the table shows operator
trees fitted on all of the budget's measured rows (``seernet.operator_trees``; on top of the shipped trees
when ``--pretrained`` is an operator predictor, as calibrate fits them), whichever calibrate chose.
Each budget starts from an empty work directory: a budget is what a user would spend from nothing.
Run: ``perfseer bench calibrate [--budgets 2 5 10]`` (about the sum of the budgets plus two minutes).
``--replay`` measures nothing: it refits on the rows a previous run left in ``--workdir`` and scores on the real
architectures measured with them, so fitting methods are compared on the very same measurements.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bench.common import save  # noqa: E402
from bench.zoo import build_samples, measure, measured_path  # noqa: E402
from profiler_worker.calibrate import Calibration, CalibrationRequest, calibrate  # noqa: E402
from profiler_worker.device_info import cpu_model  # noqa: E402
from profiler_worker.settings import CALIBRATE_MAX_GFLOPS  # noqa: E402
from seernet.predictor import OperatorPredictor, Predictor  # noqa: E402
from seernet.scores import score  # noqa: E402
from seernet.settings import cache_dir  # noqa: E402
from seernet.operator_trees import enough_profiles, fit_operator_model  # noqa: E402
from seernet.zoo import ZOO_GROUPS, zoo_names  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TARGET = "infer_time_ms"
SHOWN = ("kendall", "mape", "acc10")


def macs_loglinear(train_macs: np.ndarray, train_ms: np.ndarray, macs: np.ndarray) -> np.ndarray:
    """log ms = a + b log MACs, least squares on the calibration rows: the simplest model a user could fit."""
    slope, intercept = np.polyfit(np.log(train_macs), np.log(train_ms), 1)
    return np.exp(intercept + slope * np.log(macs))


def score_budget(measured: list, graphs: list, truth: np.ndarray, prior, auxiliary: list) -> dict:
    """What a budget's calibration rows teach, scored on the real architectures: operator trees from scratch,
    operator trees on top of the shipped ones (``prior``, when the shipped predictor is an operator predictor),
    operator trees with other devices' rows (``auxiliary``, when given) and the log-linear MACs line."""
    macs = np.array([g.global_value("macs_sum") for g in graphs])
    fit_macs = np.array([s.graph.global_value("macs_sum") for s in measured])
    fit_ms = np.array([s.targets[TARGET] for s in measured])
    keep = (fit_macs > 0) & (fit_ms > 0)
    entry = {"profiled": sum(s.operators is not None for s in measured), "operator_trees": {},
             "operator_trees_on_shipped": {}, "operator_trees_auxiliary": {},
             "macs_loglinear": score(macs_loglinear(fit_macs[keep], fit_ms[keep], macs), truth)}
    if enough_profiles(measured):
        entry["operator_trees"] = score(fit_operator_model(measured, TARGET).predict(graphs), truth)
        if prior is not None:
            entry["operator_trees_on_shipped"] = score(
                fit_operator_model(measured, TARGET, prior=prior).predict(graphs), truth)
        if auxiliary:
            entry["operator_trees_auxiliary"] = score(
                fit_operator_model(measured, TARGET, auxiliary=auxiliary).predict(graphs), truth)
    return entry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=[2.0, 5.0, 10.0])
    parser.add_argument("--cpu", type=int, default=sorted(os.sched_getaffinity(0))[-1],
                        help="core measurements are pinned to (default: the last allowed)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--groups", nargs="+", default=["zoo"], choices=ZOO_GROUPS, help="real architectures")
    parser.add_argument("--zoo-time-cap", type=float, default=0.5)
    parser.add_argument("--pretrained", default=str(ROOT / "predictors" / "cpu"))
    parser.add_argument("--workdir", default=str(cache_dir() / "bench-calibrate"))
    parser.add_argument("--max-gflops", type=float, default=CALIBRATE_MAX_GFLOPS,
                        help="calibrate's cap on candidates (default: calibrate's own)")
    parser.add_argument("--replay", action="store_true",
                        help="measure nothing: refit on each budget's rows a previous run left in --workdir and "
                             "score on --measured (fitting methods compared on the very same measurements)")
    parser.add_argument("--measured", help="with --replay: the real architectures' file that run measured")
    parser.add_argument("--auxiliary-dataset", nargs="+", default=[], metavar="SQLITE",
                        help="other devices' profiled datasets, given to calibrate (calibrate --auxiliary-dataset) "
                             "and scored as a column of their own")
    parser.add_argument("--out-name", default="calibrate", help="results file name under bench/results/")
    args = parser.parse_args(argv)
    here = cpu_model()
    base = Path(args.workdir)
    if args.replay:
        zoo_path = Path(args.measured) if args.measured else measured_path()
        if not zoo_path.exists():
            parser.error(f"--replay needs the real architectures measured with the calibration: no {zoo_path}")
        measured_rows = json.loads(zoo_path.read_text())["rows"]
        wanted = {(n, b) for group in args.groups for n in zoo_names(group) for b in args.batch_sizes}
        measured_rows = [r for r in measured_rows if (r["model"], r["batch_size"]) in wanted]
    else:
        zoo_path = measured_path()
        print(f"measuring the real architectures on {here} (kept in {zoo_path})…", flush=True)
        names = [n for group in args.groups for n in zoo_names(group)]
        measured_rows = measure(names, args.batch_sizes, (args.cpu,), args.zoo_time_cap, False, zoo_path)
    rows, samples, failures = build_samples([r for r in measured_rows if r["status"] == "ok"])
    for name, why in failures.items():
        print(f"  {name}: no graph ({why})", flush=True)
    graphs = [s.graph for s in samples]
    truth = np.array([r[TARGET] for r in rows])
    shipped = Predictor.load(args.pretrained)
    prior = shipped.model if isinstance(shipped, OperatorPredictor) else None  # as calibrate's operator trees
    report: dict = {"cpu_model": here, "target": TARGET, "real_architectures": len(rows),
                    "measured_file": str(zoo_path.relative_to(ROOT) if zoo_path.is_relative_to(ROOT) else zoo_path),
                    "groups": args.groups, "batch_sizes": args.batch_sizes, "no_graph": failures,
                    "max_gflops": args.max_gflops, "pretrained": args.pretrained, "replay": args.replay,
                    "auxiliary_datasets": args.auxiliary_dataset,
                    "shipped": score(np.array([p.values[TARGET] for p in shipped.predict_graphs(graphs)]), truth),
                    "budgets": {}}
    auxiliary: list | None = None  # other devices' rows: the same for every budget, read once
    for budget in args.budgets:
        name = f"bench-{budget:g}min"
        workdir = base / name
        request = CalibrationRequest(budget_minutes=budget, out=base / "predictors", name=name, cpus=(args.cpu,),
                                     pretrained=Path(args.pretrained), workdir=workdir, max_gflops=args.max_gflops,
                                     auxiliary=tuple(Path(p) for p in args.auxiliary_dataset))
        entry: dict = {}
        if args.replay:
            if not (workdir / "measurements.sqlite").exists():
                print(f"  {name}: nothing measured in {workdir}; skipped", flush=True)
                continue
        else:
            shutil.rmtree(workdir, ignore_errors=True)
            print(f"calibrating for {budget:g} minutes…", flush=True)
            result = calibrate(request)
            calibrated = Predictor.load(base / "predictors" / name)
            predicted = np.array([p.values[TARGET] for p in calibrated.predict_graphs(graphs)])
            entry = {"seconds": result.seconds, "families": result.summary["families"],
                     "chosen": result.summary["selection"],
                     "held_out_calibration_rows": result.summary["held_out"],
                     "calibrated": score(predicted, truth)}
        calibration = Calibration(request)
        measured = calibration.measured_samples()
        if auxiliary is None:
            auxiliary = calibration.auxiliary_samples()
        report["budgets"][f"{budget:g}"] = {"measured": len(measured), **entry,
                                            **score_budget(measured, graphs, truth, prior, auxiliary)}
    path = save(args.out_name, report)
    print(f"\nreal architectures measured on {here}: {len(rows)} rows ({' '.join(args.groups)}, "
          f"batch {args.batch_sizes}){'; replayed calibration rows' if args.replay else ''}")
    columns = {"calibrated": "calibrated (chosen)", "operator_trees": "operator trees (scratch)",
               "operator_trees_on_shipped": "operator trees on shipped",
               "operator_trees_auxiliary": "operator trees + other devices", "shipped": "shipped",
               "macs_loglinear": "MACs log-linear"}
    if args.replay:
        columns.pop("calibrated")
    if prior is None:
        columns.pop("operator_trees_on_shipped")
    if not args.auxiliary_dataset:
        columns.pop("operator_trees_auxiliary")
    print(f"{'budget':>8} {'measured':>9}  " + "  ".join(f"{w:>28}" for w in columns.values()))
    print(f"{'':>8} {'':>9}  " + "  ".join(f"{'τ':>8} {'MAPE %':>9} {'±10 %':>9}" for _ in columns))
    nan = {"kendall": float("nan"), "mape": float("nan"), "acc10": float("nan")}
    for budget, entry in report["budgets"].items():
        cells = [(report["shipped"] if key == "shipped" else entry.get(key)) or nan for key in columns]
        print(f"{budget + ' min':>8} {entry['measured']:>9}  " + "  ".join(
            f"{c['kendall']:8.3f} {c['mape']:9.1f} {c['acc10']:9.1f}" for c in cells))
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
