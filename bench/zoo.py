"""Real architectures none of our spaces produced, measured on this machine, then predicted.

Four groups (``--groups``): ``zoo``, our layer-for-layer re-implementations (ResNet-18/50/152, MobileNetV2,
VGG-11, ViT-Tiny, BERT-mini); ``torchvision``, torchvision's own classification models (weights=None; never
training data, and their timm twins are kept out of the timm family); ``timm``, the timm architectures held
out of the timm family by name (``seernet.spaces.timm_space.held_out_archs``); ``hf``, published Hugging Face
text models at their own sizes (BERT-base, RoBERTa-base, GPT-2, Pythia, SmolLM …: ``seernet.zoo.HF_MODELS``),
none a configuration the ``hf`` family draws.  Inference only: the
profiler measures ONNX with onnxruntime, one pinned thread (``--threads N``: N threads on the last N allowed
cores), the dataset's repeat policy.  A model whose graph
does not build is reported as such and left out of the scores.

Measurements are kept per CPU model in ``bench/results/zoo_measured_<cpu>.json`` (``…_<N>t.json`` at N threads;
taken once, reused when
only the predictor changed; ``--remeasure`` takes them again; exports all run before the first measurement,
so nothing else runs while one does).  Several ``--predictor``s are scored on the same rows in one run.
``--measured FILE`` scores predictors on a file measured earlier on another machine (the machine a dataset
was measured on, say) without timing anything here.
Run: ``perfseer bench zoo [--groups zoo torchvision timm hf] [--batch-sizes 1 8] [--predictor DIR ...]``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bench.common import RESULTS, save  # noqa: E402
from profiler_worker.calibrate import slug  # noqa: E402
from profiler_worker.device_info import cpu_identity, cpu_model  # noqa: E402
from profiler_worker.job import ProfileJob  # noqa: E402
from profiler_worker.measure import measure_job  # noqa: E402
from profiler_worker.settings import ProfileSettings  # noqa: E402
from seernet.predictor import Predictor  # noqa: E402
from seernet.scores import score  # noqa: E402
from seernet.zoo import ZOO_GROUPS, zoo_names, zoo_onnx, zoo_samples  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
METRICS = ("infer_time_ms", "infer_mem_mb")


def measured_path(threads: int = 1) -> Path:
    return RESULTS / f"zoo_measured_{slug(cpu_identity())}{'' if threads == 1 else f'_{threads}t'}.json"


def measure(names: list[str], batch_sizes: list[int], cpus: tuple[int, ...], time_cap: float, remeasure: bool,
            path: Path, threads: int = 1) -> list[dict]:
    """Each model at each batch size, measured like the dataset (``threads`` threads pinned to ``cpus``, same
    time cap), kept in ``path`` (resumed from it unless ``remeasure``).  Models that fail to export are recorded
    as failed."""
    known = json.loads(path.read_text())["rows"] if path.exists() and not remeasure else []
    done = {(r["model"], r["batch_size"]) for r in known}
    todo = [(n, b) for n in names for b in batch_sizes if (n, b) not in done]
    exported: dict[str, bytes | str] = {}
    for name in sorted({n for n, _ in todo}):  # every export first: none runs beside a measurement
        try:
            exported[name] = zoo_onnx(name)
        except Exception as exc:  # noqa: BLE001 - an architecture the exporter cannot take is a finding
            exported[name] = f"export failed: {type(exc).__name__}: {str(exc)[:160]}"
    settings = ProfileSettings(threads=threads, cpu_affinity=cpus, time_cap_s=time_cap, modes=("infer",),
                               op_profile=False)
    for name, batch in todo:
        onnx_bytes = exported[name]
        if isinstance(onnx_bytes, str):
            row = {"model": name, "batch_size": batch, "status": "failed", "reason": onnx_bytes}
        else:
            result = measure_job(ProfileJob(onnx_bytes=onnx_bytes, batch_size=batch, family="zoo"), settings)
            row = {"model": name, "batch_size": batch, "status": result.status, "reason": result.reason,
                   "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(result.measured_at)),
                   **{m: result.metrics.get(m) for m in METRICS}}
        print(json.dumps(row)[:200], flush=True)
        known.append(row)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"cpu": cpu_model(), "settings": settings.describe(), "rows": known}, indent=2)
                        + "\n")
    return [r for r in known if r["model"] in set(names) and r["batch_size"] in set(batch_sizes)]


def combine_measured(paths: list[Path]) -> tuple[list[dict], str]:
    """The rows of one measurement file, or of several taken on one CPU model: each (model, batch) measured ok in
    every file, at the geometric mean of their times (a second session's drift averaged out), with the times of
    each file kept under ``infer_time_ms_each``.  Files naming different CPU models are refused (a file names the
    model, not the vector extensions: keep files of two machines of one model name apart yourself)."""
    stored = [json.loads(p.read_text()) for p in paths]
    cpus = {str(s.get("cpu", "unknown")) for s in stored}
    if len(cpus) > 1:
        raise SystemExit(f"--measured files name different CPUs ({sorted(cpus)}): their times cannot be averaged")
    if len(stored) == 1:
        return stored[0]["rows"], cpus.pop()
    ok = [{(r["model"], r["batch_size"]): r for r in s["rows"] if r["status"] == "ok"} for s in stored]
    rows = []
    for key, first in ok[0].items():
        if all(key in o for o in ok[1:]):
            times = [o[key]["infer_time_ms"] for o in ok]
            rows.append({**first, "infer_time_ms": float(np.exp(np.mean(np.log(times)))), "infer_time_ms_each": times})
    print(f"{len(rows)} rows measured in all {len(paths)} files ({', '.join(str(p) for p in paths)})")
    return rows, cpus.pop()


def build_samples(rows: list[dict]) -> tuple[list[dict], list, dict[str, str]]:
    """Rows whose graph builds, their samples, and why the others' did not."""
    kept, samples, failures = [], [], {}
    for row in rows:
        try:
            samples.extend(zoo_samples([row]))
            kept.append(row)
        except Exception as exc:  # noqa: BLE001 - reported per model, never hidden
            failures[row["model"]] = f"{type(exc).__name__}: {str(exc)[:160]}"
    return kept, samples, failures


def _group_of(name: str) -> str:
    return name.split(":", 1)[0] if ":" in name else "zoo"


def scores_by_group(predicted: np.ndarray, truth: np.ndarray, rows: list[dict], groups: list[str]) -> dict:
    """``seernet.scores.score`` (with ``n``) on each group's rows ("all": every row), where it has two or more."""
    by_group = {}
    for group in groups:
        keep = [i for i, r in enumerate(rows) if group == "all" or _group_of(r["model"]) == group]
        if len(keep) >= 2:
            by_group[group] = {"n": len(keep), **score(predicted[keep], truth[keep])}
    return by_group


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictor", action="append", help="predictor directory (repeatable; default "
                        "predictors/cpu)")
    parser.add_argument("--groups", nargs="+", default=list(ZOO_GROUPS), choices=ZOO_GROUPS)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--cpu", type=int, default=sorted(os.sched_getaffinity(0))[-1],
                        help="core the measurements are pinned to (default: the last allowed)")
    parser.add_argument("--threads", type=int, default=1,
                        help="onnxruntime threads per measurement, pinned to the last N allowed cores (default 1, "
                             "on --cpu); kept apart in zoo_measured_<cpu>_<N>t.json")
    parser.add_argument("--time-cap", type=float, default=0.5, help="seconds per timed loop (the dataset's: 0.5)")
    parser.add_argument("--remeasure", action="store_true")
    parser.add_argument("--measured", nargs="+", help="score on the rows of this file (a zoo_measured_<cpu>.json "
                        "taken earlier, on the machine it names) instead of measuring here; several files of one CPU: "
                        "on the rows all of them measured, at the geometric mean of their times (one session's "
                        "measurements rank another's at Kendall 0.978 on the Intel Xeon, README)")
    parser.add_argument("--metric", choices=METRICS, default="infer_time_ms",
                        help="what is scored (infer_mem_mb: peak memory growth, measured in the same runs)")
    parser.add_argument("--out-name", default="zoo", help="results file name under bench/results/")
    args = parser.parse_args(argv)
    allowed = sorted(os.sched_getaffinity(0))
    if not 1 <= args.threads <= len(allowed):
        parser.error(f"--threads must be 1..{len(allowed)} (the cores this process may use), got {args.threads}")
    cpus = (args.cpu,) if args.threads == 1 else tuple(allowed[-args.threads:])

    names = [n for g in args.groups for n in zoo_names(g)]
    if args.measured:  # another machine's measurements: nothing is timed here, and the results name that machine
        measured, cpu = combine_measured([Path(f) for f in args.measured])
        measured = [r for r in measured if r["model"] in set(names) and r["batch_size"] in set(args.batch_sizes)]
    else:
        measured = measure(names, args.batch_sizes, cpus, args.time_cap, args.remeasure,
                           measured_path(args.threads), args.threads)
        cpu = cpu_model()
    rows, samples, graph_failures = build_samples([r for r in measured if r["status"] == "ok"])
    for model, why in sorted(graph_failures.items()):
        print(f"graph does not build: {model}: {why}")
    graphs = [s.graph for s in samples]
    results = {}
    metric = args.metric
    rows_kept = [i for i, r in enumerate(rows) if r.get(metric)]
    rows, graphs = [rows[i] for i in rows_kept], [graphs[i] for i in rows_kept]
    for directory in args.predictor or [str(ROOT / "predictors" / "cpu")]:
        predictor = Predictor.load(directory)
        if metric not in predictor.metrics:
            print(f"{directory} does not predict {metric}; skipped")
            continue
        predicted = [p.values[metric] for p in predictor.predict_graphs(graphs)]
        by_group = scores_by_group(np.array(predicted), np.array([r[metric] for r in rows]), rows,
                                   ["all", *args.groups])
        results[directory] = {"version": predictor.version, "scores": by_group,
                              "predicted": {f"{r['model']}:b{r['batch_size']}": v for r, v in zip(rows, predicted)}}
        for group, sc in by_group.items():
            print(f"{Path(directory).name:>20} {group:>12} n={sc['n']:3d}  Kendall {sc['kendall']:.3f}  "
                  f"Spearman {sc['spearman']:.3f}  MAPE {sc['mape']:.1f} %")
    results["size_ideally_scaled" if metric != "infer_time_ms" else "macs_ideally_scaled"] = macs_baseline(
        rows, graphs, ["all", *args.groups], metric)
    threads = args.threads  # as measured here, or as the file says it was measured
    if args.measured:
        threads = json.loads(Path(args.measured[0]).read_text()).get("settings", {}).get("threads", 1)
    how = "one onnxruntime thread" if threads == 1 else f"{threads} onnxruntime threads"
    path = save(args.out_name, {"cpu": cpu, "measured_file": ", ".join(args.measured or
                                                                       [str(measured_path(args.threads))]),
                                "batch_sizes": args.batch_sizes, "groups": args.groups,
                                "measured": measured, "graph_failures": graph_failures,
                                "gflops": {f"{r['model']}:b{r['batch_size']}": g.global_value("flops_sum") / 1e9
                                           for r, g in zip(rows, graphs)},
                                "metric": metric, "predictors": results,
                                "note": f"{metric}, {how}"})
    print(f"wrote {path}")
    return 0


def macs_baseline(rows: list[dict], graphs: list, groups: list[str], metric: str = "infer_time_ms") -> dict:
    """MACs alone (for memory: parameters), times the one constant that best fits each group's measurements
    (the median ratio, an oracle no predictor gets): the ranking any predictor has to beat, and the error left
    by size alone."""
    size = "macs_sum" if metric == "infer_time_ms" else "params_sum"
    macs = np.array([g.global_value(size) for g in graphs], dtype=float)
    measured = np.array([r[metric] for r in rows], dtype=float)
    by_group = {}
    for group in groups:
        keep = [i for i, r in enumerate(rows) if group == "all" or _group_of(r["model"]) == group]
        if len(keep) >= 2:
            scale = float(np.median(measured[keep] / np.maximum(macs[keep], 1.0)))
            by_group[group] = {"n": len(keep), **score(macs[keep] * scale, measured[keep])}
            sc = by_group[group]
            print(f"{size + ' × best constant':>20} {group:>12} n={sc['n']:3d}  Kendall {sc['kendall']:.3f}  "
                  f"Spearman {sc['spearman']:.3f}  MAPE {sc['mape']:.1f} %")
    return {"scores": by_group}


if __name__ == "__main__":
    raise SystemExit(main())
