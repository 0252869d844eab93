"""``perfseer predict``: ONNX files or a CSV of models → predicted metrics, in-process or via the service."""
from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path
from typing import Mapping

from .config import REPO_ROOT, Settings


FALLBACK_PREDICTOR = "cpu"  # the reference machine's SeerNet: what answers on a CPU no predictor was measured on


def choose_predictor(keys: Mapping[str, str], root: Path, device: str | None, cpu: str, threads: int = 1) -> str:
    """The name of the predictor, among ``keys`` (``seernet.devices.predictor_keys(root)``), for ``device``
    (name, device key or key prefix, as the service resolves a request's ``device``); without one, the predictor
    measured on this machine's CPU (``cpu``: model and ISA; at ``threads`` threads where one was) when there is
    one — absolute CPU timings do not transfer between CPUs — else :data:`FALLBACK_PREDICTOR`.  ValueError
    naming the known devices when ``device`` matches none."""
    from seernet.devices import machine_predictor, resolve_device

    if device:
        name = resolve_device(keys, device)
        if name is None:
            known = ", ".join(f"{n} ({k})" for n, k in sorted(keys.items())) or "none"
            raise ValueError(f"no predictor for device {device!r} under {root}; known: {known} (a GPU: gpu:NAME, "
                             "--gpu NAME or --gpu-spec SPEC.json)")
        return name
    return machine_predictor(keys, cpu, threads) or FALLBACK_PREDICTOR


def _graph_for_row(row: dict, base: Path):
    """A CSV row's graph: an ONNX path (relative to the CSV; its own batch when fixed and none is given) or a
    NAS-Bench-201 arch string (the graph knows its cell, which tabular predictors fitted on arch rows read)."""
    from seernet.graph import build_graph
    from seernet.loader import local_model

    batch = int(row["batch_size"]) if row.get("batch_size") else None
    if row.get("onnx"):
        path = Path(row["onnx"])
        return build_graph(local_model(path if path.is_absolute() else base / path), batch_size=batch)
    if row.get("arch_str"):
        from seernet.graph_cache import graph_for
        from seernet.spaces import ModelConfig
        from seernet.spaces.nasbench201 import parse_arch_str

        parse_arch_str(row["arch_str"])
        return graph_for(ModelConfig("nasbench201", {"arch_str": row["arch_str"]}, batch or 1,
                                     int(row.get("input_size") or 32)))
    raise ValueError("each row needs an 'onnx' path or an 'arch_str'")


def predict_csv(predictor, csv_in: Path, csv_out: Path, metrics: list[str]) -> int:
    """One prediction per row, written beside the row's key columns; failures get an ``error`` column."""
    with csv_in.open(newline="") as f:
        rows = list(csv.DictReader(f))
    keys = [k for k in ("onnx", "arch_str", "batch_size", "input_size") if rows and k in rows[0]]
    out_rows, failures = [], 0
    for row in rows:
        out = {k: row.get(k, "") for k in keys}
        try:
            graph = _graph_for_row(row, csv_in.parent)
            prediction = predictor.predict_graphs([graph])[0]
            out.update({m: f"{prediction.values[m]:.6g}" for m in metrics})
            out["error"] = ""
        except Exception as exc:  # a bad row is reported, not fatal
            failures += 1
            out.update({m: "" for m in metrics})
            out["error"] = f"{type(exc).__name__}: {exc}"
        out_rows.append(out)
    with csv_out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[*keys, *metrics, "error"])
        writer.writeheader()
        writer.writerows(out_rows)
    return failures


def predict_command(args: argparse.Namespace, settings: Settings) -> int:
    if not args.models and not args.csv:
        print("error: give ONNX files or --csv", file=sys.stderr)
        return 2
    if args.server:
        return _via_server(args)
    if args.device and args.device.startswith("gpu:") and not (args.gpu or args.gpu_spec):
        args.gpu = args.device[len("gpu:"):]  # as the service reads a request's device "gpu:NAME"
    if args.gpu or args.gpu_spec:
        return _on_gpu(args)
    from seernet.predictor import Predictor, PredictorLoadError

    if args.threads is not None and (args.device or args.predictor or args.threads < 0):
        print("error: --threads picks among the predictors measured on this CPU, and is 0 (the runtime's default) "
              "or more; with --device or --predictor, name one measured at that count (its key ends in :<N>t)",
              file=sys.stderr)
        return 2
    try:
        predictor = Predictor.load(args.predictor or _chosen(args, settings))
    except (PredictorLoadError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    metrics = list(args.metrics or predictor.metrics)
    unknown = [m for m in metrics if m not in predictor.metrics]
    if unknown:
        print(f"error: predictor {predictor.name} does not predict {unknown}; it predicts {list(predictor.metrics)}",
              file=sys.stderr)
        return 2
    if args.csv:
        if not args.output:
            print("error: --csv needs --output", file=sys.stderr)
            return 2
        failures = predict_csv(predictor, Path(args.csv), Path(args.output), metrics)
        print(f"wrote {args.output}" + (f" ({failures} row(s) failed; see the error column)" if failures else ""))
        return 0
    try:
        dims = dict(parse_dim(d) for d in args.dim or [])
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    results = _in_process(predictor, args.models, args.batch_size, metrics, dims, settings,
                          args.top if args.explain else 0)
    if args.plot:
        plot_operators(results, Path(args.plot))
    return _print_results(results, args.json)


def _chosen(args: argparse.Namespace, settings: Settings) -> Path:
    from profiler_worker.device_info import cpu_identity
    from seernet.devices import cpu_of_key, measured_at, predictor_keys

    root, cpu, threads = Path(settings.predictors), cpu_identity(), 1 if args.threads is None else args.threads
    keys = predictor_keys(root)
    chosen = root / choose_predictor(keys, root, args.device, cpu, threads)
    if args.device or not chosen.is_dir():  # what the user named; a missing directory is load's error
        return chosen
    key = keys.get(chosen.name, "")
    if cpu_of_key(key) != cpu:  # none measured on this CPU: the reference machine's
        print(f"note: no predictor under {settings.predictors} was measured on this CPU ({cpu}); answering for "
              f"the reference machine ({FALLBACK_PREDICTOR}). `make calibrate` writes one for this machine",
              file=sys.stderr)
    elif not measured_at(key, threads):
        print(f"note: no predictor under {settings.predictors} was measured on this CPU at {threads} thread(s) "
              "(0: the runtime's default); "
              f"answering with {chosen.name} ({key}). `perfseer calibrate --threads {threads}` writes one",
              file=sys.stderr)
    return chosen


def list_predictors(args: argparse.Namespace, settings: Settings) -> int:
    """``perfseer predictors``: what is under the predictors directory, which device each answers for, and
    which one ``perfseer predict`` uses on this machine by default."""
    from profiler_worker.device_info import cpu_identity
    from seernet.devices import keys_of, predictor_summaries

    root, cpu = Path(settings.predictors), cpu_identity()
    rows = predictor_summaries(root)
    default = choose_predictor(keys_of(rows), root, None, cpu)
    for row in rows:
        row["default_here"] = row["name"] == default
    if args.json:
        print(json.dumps({"this_machine": cpu, "predictors": rows}, indent=2))
        return 0
    print(f"this machine: {cpu}; predictors under {root}:")
    for row in rows:
        if "error" in row:
            print(f"  {row['name']}: {row['error']}")
            continue
        answers = f"GPUs {', '.join(row['gpus'])}" if "gpus" in row else row["device_key"] or "no device key"
        metrics = ", ".join(row["metrics"])
        if row.get("base_device_key"):  # an operator predictor: its own metrics, then its base network's
            own = row.get("own_metrics", row["metrics"][:1])
            rest = [m for m in row["metrics"] if m not in own]
            metrics = f"{', '.join(own)}; {', '.join(rest)} by a network of {row['base_device_key']}"
        mark = "  <- perfseer predict's default here" if row["default_here"] else ""
        print(f"  {row['name']:<22} {row['kind']:<11} {row['version']}  {answers}: {metrics}{mark}")
    return 0


def parse_dim(text: str) -> tuple[str, int]:
    """``NAME=N`` → (NAME, N); ValueError naming the problem otherwise."""
    name, sep, value = text.partition("=")
    if not sep or not name or not value.strip().isdigit():
        raise ValueError(f"--dim wants NAME=N (a positive integer), got {text!r}")
    return name.strip(), int(value)


def _in_process(predictor, models: list[str], batch_size: int | None, metrics: list[str], dims: dict[str, int],
                settings: Settings, explain_top: int = 0) -> list[dict]:
    from seernet.errors import GraphBuildError
    from seernet.graph import build_graph
    from seernet.loader import local_model

    results = []
    for model in models:
        try:
            graph = build_graph(local_model(model, settings.limits), batch_size=batch_size, dims=dims,
                                limits=settings.limits)
            prediction = predictor.predict_graphs([graph])[0]
            results.append({"file": model, "batch_size": graph.batch_size, "predictor": predictor.name,
                            "predictor_version": predictor.version,
                            **{m: prediction.values[m] for m in metrics},
                            "uncertainty": {m: _finite(prediction.uncertainty[m]) for m in metrics}})
            if explain_top:
                results[-1]["operators"] = predictor.explain(graph, prediction, "infer_time_ms", explain_top)
        except (GraphBuildError, OSError, ValueError) as exc:
            results.append({"file": model, "error": str(exc)})
    return results


def _via_server(args: argparse.Namespace) -> int:
    from perfseer_client import PerfSeerClient, PerfSeerError

    results = []
    with PerfSeerClient(args.server) as client:
        for model in args.models:
            try:
                r = client.predict(model, batch_size=args.batch_size, metrics=args.metrics or None,
                                   device=args.device or "",
                                   dims=dict(parse_dim(d) for d in args.dim or []),
                                   explain=args.top if args.explain else False)
                results.append({"file": model, "batch_size": r.batch_size or args.batch_size, "predictor": r.predictor,
                                "predictor_version": r.predictor_version, "cache_hit": r.cache_hit, **r.metrics,
                                "uncertainty": {m: _finite(v) for m, v in r.uncertainty.items()},
                                **({"operators": list(r.operators)} if r.operators else {})})
            except (PerfSeerError, OSError, ValueError) as exc:
                results.append({"file": model, "error": str(exc)})
    return _print_results(results, args.json)


def _on_gpu(args: argparse.Namespace) -> int:
    """``--gpu NAME`` / ``--gpu-spec SPEC.json``: the GPU kernel cost model, for GPUs known by their spec."""
    from seernet.errors import GraphBuildError
    from seernet.gpu.predictor import GpuPredictor
    from seernet.gpu.specs import GpuSpec, GpuSpecError
    from seernet.loader import local_model

    directory = Path(args.gpu_predictor or REPO_ROOT / "predictors" / "gpu")
    try:
        predictor = GpuPredictor.load(directory)
        gpu = GpuSpec.from_file(args.gpu_spec) if args.gpu_spec else predictor.spec(args.gpu)
        dims = dict(parse_dim(d) for d in args.dim or [])
    except (GpuSpecError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    results = []
    for model in args.models:
        try:
            results.append({"file": model, **predictor.predict(local_model(model), gpu, args.batch_size, dims,
                                                               top=args.top if args.explain else 0)})
        except (GraphBuildError, OSError) as exc:
            results.append({"file": model, "error": str(exc)})
    return _print_results(results, args.json)


def plot_operators(results: list[dict], path: Path) -> None:
    """A horizontal bar chart of each model's costliest operators (``--plot``): where the time goes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [r for r in results if r.get("operators")]
    if not shown:
        return
    fig, axes = plt.subplots(len(shown), 1, figsize=(8, 0.35 * sum(len(r["operators"]) for r in shown) + 1.2 * len(shown)),
                             squeeze=False)
    for ax, r in zip(axes[:, 0], shown):
        ops = r["operators"][::-1]
        ax.barh([f"{o['op_type']} {o['node'][-40:]}" for o in ops], [o["infer_time_ms"] for o in ops])
        ax.set(xlabel="predicted infer_time_ms", title=f"{Path(r['file']).name}: {r['infer_time_ms']:.3g} ms in all")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _finite(value: float) -> float | None:
    return None if value is None or math.isnan(value) else value


def _print_results(results: list[dict], as_json: bool) -> int:
    if as_json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            if "error" in r:
                print(f"{r['file']}: error: {r['error']}")
                continue
            values = "  ".join(f"{k}={v:.4g}" for k, v in r.items() if isinstance(v, float))
            where = f" on {r['gpu']}" if r.get("gpu") else ""
            by = f", predictor {r['predictor']}" if r.get("predictor") else ""
            print(f"{r['file']}{where} (batch {r['batch_size']}{by}): {values}")
            for op in r.get("operators", []):  # --explain: where the time goes
                print(f"  {op['share']:6.1%}  {op['infer_time_ms']:9.4f} ms  {op['op_type']:<12} {op['node']}")
    return 1 if any("error" in r for r in results) else 0
