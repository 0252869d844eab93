"""Subcommands for training, prediction, fitting, evaluation and serving (imported lazily)."""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from profiler_worker.settings import CALIBRATE_MAX_GFLOPS
from seernet.metrics import CPU_METRICS

from .config import REPO_ROOT, Settings

DEFAULT_METRICS = CPU_METRICS
DEFAULT_PREDICTOR = REPO_ROOT / "predictors" / "cpu"


def _train_config(args: argparse.Namespace):
    from seernet.train import TrainConfig

    return TrainConfig(epochs=args.epochs, ensemble=args.ensemble, seed=args.seed, threads=args.threads,
                       max_minutes=args.max_minutes, pcgrad=not args.no_pcgrad, operator_loss=args.operator_loss)


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    from seernet.training_run import TrainRequest, run_training

    metrics = tuple(args.metrics)
    dataset = open_dataset(args.dataset or settings.dataset, metrics)
    request = TrainRequest(Path(args.out), metrics, name=args.name or Path(args.out).name,
                           hidden=args.hidden, layers=args.layers, additive=not args.no_additive,
                           train=_train_config(args), dataset=str(dataset.path))
    scores = run_training(request, dataset.samples, dataset.device_keys)
    print(json.dumps(scores, indent=2))
    return 0


def cmd_predict(args: argparse.Namespace, settings: Settings) -> int:
    from .predict_cli import predict_command

    return predict_command(args, settings)


def cmd_predictors(args: argparse.Namespace, settings: Settings) -> int:
    from .predict_cli import list_predictors

    return list_predictors(args, settings)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import torch

    from server.app import StartupError, serve_forever

    torch.set_num_threads(args.torch_threads)
    token = args.token
    if args.token_file:
        try:
            token = Path(args.token_file).read_text().strip()
        except OSError as exc:
            print(f"error: cannot read --token-file {args.token_file}: {exc.strerror}", file=sys.stderr)
            return 2
    settings.apply_overrides(host=args.host, port=args.port, redis_url=args.redis, predictors=args.predictors,
                             default_predictor=args.default_predictor,
                             auth_token=token, tls_cert=args.tls_cert, tls_key=args.tls_key,
                             metrics_port=args.metrics_port, profile_uncertain_above=args.profile_uncertain_above,
                             processes=args.processes)
    from profiler_worker.device_info import cpu_identity

    try:
        return serve_forever(settings, cpu_identity(), args.torch_threads)
    except StartupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from seernet.evaluate import EvalConfig, check_methods, run_evaluation
    from seernet.report import write_report

    out = Path(args.out)
    if not args.report_only:
        try:
            check_methods(args.methods)
            guard = _guard_samples(args.guard) if args.guard else ()
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        metrics = tuple(args.metrics)
        dataset = open_dataset(args.dataset or settings.dataset, metrics)
        cfg = EvalConfig(metrics=metrics, out=out, methods=tuple(args.methods), train=_train_config(args),
                         hidden=args.hidden, layers=args.layers, additive=not args.no_additive, seed=args.seed,
                         save_multi_to=Path(args.save_predictor) if args.save_predictor else None,
                         multi_ensemble=args.multi_ensemble, guard=guard,
                         device_key=next(iter(dataset.device_keys), ""))
        for path in run_evaluation(dataset.samples, args.splits, cfg):
            print(f"wrote {path}")
    noise = Path(args.noise_floor)
    report = write_report(out, command=args.command_line or "perfseer " + " ".join(sys.argv[1:]),
                          noise_floor=json.loads(noise.read_text()) if noise.exists() else None)
    print(f"wrote {report}")
    return 0


def cmd_fit(args: argparse.Namespace, settings: Settings) -> int:
    from profiler_worker.auxiliary import check_auxiliary_use, other_device_samples
    from seernet.data import with_targets
    from seernet.fit import FIT_METHODS, FitRequest, run_fit
    from seernet.memory_line import METRIC as MEMORY_METRIC

    if args.gpu_spec:
        return _fit_gpu(args)
    if not args.target:
        print("error: --target is required (the column to predict, e.g. latency_ms)", file=sys.stderr)
        return 2
    if bool(args.measurements) == bool(args.dataset):
        print("error: give --measurements CSV or --dataset SQLITE (rows measured by dataset build or workers)",
              file=sys.stderr)
        return 2
    source = Path(args.measurements or args.dataset)
    request = FitRequest(source, args.target, Path(args.out), args.space,
                         Path(args.pretrained) if args.pretrained else None, _train_config(args),
                         base=Path(args.base) if args.base else None)
    methods = tuple(args.methods or FIT_METHODS)
    try:
        check_auxiliary_use(args.auxiliary_dataset or (), args.target, methods)  # before the dataset's graphs
        samples, device_key = None, None
        if args.dataset:
            if not source.is_file():
                raise ValueError(f"{source} is not a dataset file")
            dataset = open_dataset(source, (args.target, MEMORY_METRIC), progress=False)  # for the memory line
            samples = with_targets(dataset.samples, (args.target,))
            device_key = next(iter(dataset.device_keys), None)
        device_key = args.device_key or device_key
        if args.auxiliary_dataset:
            request.auxiliary = other_device_samples(args.auxiliary_dataset, device_key)
        selection = run_fit(request, methods, samples, device_key)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"out": args.out, "target": args.target, **selection}, indent=2))
    return 0


def _fit_gpu(args: argparse.Namespace) -> int:
    """``fit --gpu-spec SPEC.json --measurements runs.csv``: the GPU cost model calibrated by models timed on
    that GPU (seernet.gpu.calibration), written where the server finds it by the GPU's name."""
    from seernet.errors import GraphBuildError
    from seernet.gpu.calibration import GpuCalibrationError, calibrate_gpu, read_runs_csv, save_calibrated
    from seernet.gpu.predictor import GpuPredictor
    from seernet.gpu.specs import GpuSpec, GpuSpecError

    if bool(args.measurements) == bool(args.dataset):
        print("error: --gpu-spec takes --measurements CSV (onnx, batch_size, dims, infer_time_ms and/or "
              "train_time_ms) or --dataset SQLITE (rows GPU workers measured)", file=sys.stderr)
        return 2
    source = Path(args.gpu_predictor or REPO_ROOT / "predictors" / "gpu")
    try:
        base = GpuPredictor.load(source)
        gpu = GpuSpec.from_file(args.gpu_spec) if Path(args.gpu_spec).suffix == ".json" else base.spec(args.gpu_spec)
        runs = read_runs_csv(args.measurements) if args.measurements else _gpu_runs_of_dataset(Path(args.dataset), gpu)
        predictor, report = calibrate_gpu(base, gpu, runs)
        out = save_calibrated(predictor, source, args.out, Path(args.out).name)
    except (GpuSpecError, GpuCalibrationError, GraphBuildError, OSError, KeyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"out": str(out), "gpu": gpu.name, "calibration": report}, indent=2))
    return 0


def _gpu_runs_of_dataset(path: Path, gpu) -> list:
    """The rows a worker measured on ``gpu`` (``perfseer worker --device cuda:N``: NVML's name of the board) as
    runs to calibrate by: each config exported as the worker ran it, with its measured times."""
    from profiler_worker.store import DatasetStore
    from seernet.export import export_config
    from seernet.gpu.calibration import MAX_RUNS, GpuCalibrationError, MeasuredRun
    from seernet.gpu.specs import name_key
    from seernet.spaces import ModelConfig

    if not path.is_file():
        raise GpuCalibrationError(f"{path} is not a dataset file")
    rows = [row for row in DatasetStore(path).rows() if str(row.get("device", "")).startswith("cuda")
            and name_key(str(json.loads(row.get("device_json") or "{}").get("gpu_name", ""))) == name_key(gpu.name)]
    if not rows:
        raise GpuCalibrationError(f"{path} has no rows measured on a GPU named {gpu.name!r} (the spec's name must be "
                                  "NVML's name of the board the worker ran on)")
    runs = []
    for row in rows[::math.ceil(len(rows) / MAX_RUNS)]:  # evenly spread, at most MAX_RUNS, exported only then
        config = ModelConfig.from_json(row["config_json"])
        measured = {m: float(row[m]) for m in ("infer_time_ms", "train_time_ms") if row.get(m)}
        runs.append(MeasuredRun(export_config(config), config.batch_size, {}, measured))
    return runs


def cmd_calibrate(args: argparse.Namespace, settings: Settings) -> int:
    """Measure this machine for ``--budget-minutes`` and write a predictor for it (profiler_worker.calibrate)."""
    from profiler_worker.backend import resolve_device
    from profiler_worker.calibrate import CalibrationError, CalibrationRequest, calibrate

    try:
        cpus = tuple(int(c) for c in args.cpus.split(",")) if args.cpus else None
    except ValueError:
        print(f"error: --cpus wants comma-separated CPU ids, got {args.cpus!r}", file=sys.stderr)
        return 2
    if args.threads < 0:
        print(f"error: --threads must be ≥ 0 (0: the runtime's default), got {args.threads}", file=sys.stderr)
        return 2
    if args.threads != 1 and not args.auxiliary_dataset:
        count = f"{args.threads} threads" if args.threads else "the runtime's default thread count"
        print(f"note: calibrating at {count}; where this CPU's one-thread "
              "rows exist (an earlier calibrate's or `perfseer dataset build`'s), --auxiliary-dataset FILE lets 40-80 "
              "rows rank as 475 do (README, 'Thread count as a condition')", file=sys.stderr)
    request = CalibrationRequest(device=resolve_device(args.device), threads=args.threads,
                                 budget_minutes=args.budget_minutes, out=Path(args.out or settings.predictors),
                                 name=args.name or "", pretrained=Path(args.pretrained) if args.pretrained else None,
                                 target=args.target, seed=args.seed, cpus=cpus, time_cap_s=args.time_cap,
                                 max_gflops=args.max_gflops, max_models=args.max_models,
                                 graph_optimization=args.graph_opt,
                                 workdir=Path(args.workdir) if args.workdir else None,
                                 auxiliary=tuple(Path(p) for p in args.auxiliary_dataset or ()))
    try:
        result = calibrate(request)
    except (CalibrationError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = result.summary
    print(json.dumps({**summary, "pool": result.pool, "measured_now": result.counts,
                      "seconds": round(result.seconds, 1)}, indent=2, sort_keys=True, default=str))
    held = summary["held_out"]
    for who in ("calibrated", "shipped_scaled", "shipped"):
        if who in held:
            r = held[who]
            print(f"held-out ({summary['held_out_rows']} rows) {who:<15} MAPE {r['mape']:6.1f} %  "
                  f"Kendall {r['kendall']:.3f}  within ±10 % {r['acc10']:.0f} %")
    print(f"wrote {summary['out']} for device {summary['device_key']}: serve it with `perfseer serve` and ask "
          f"for device {summary['device_key']!r} (or {summary['name']!r})")
    return 0


def cmd_retrain(args: argparse.Namespace, settings: Settings) -> int:
    """Train a candidate for predictor NAME on the dataset and promote it if it is not worse."""
    from seernet.data import with_targets
    from seernet.nn import SeerNetConfig
    from seernet.predictor import Predictor
    from seernet.repository import retrain, rollback

    root = Path(args.predictors or settings.predictors)
    if args.rollback:
        rollback(root, args.name, args.rollback)
        print(f"{args.name}: now serving {args.rollback}")
        return 0
    guard_path = args.guard or settings.retrain_guard
    try:
        guard = _guard_samples(guard_path) if guard_path else []
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    live = root / args.name
    metrics = tuple(Predictor.load(live).metrics) if (live / "manifest.json").exists() else DEFAULT_METRICS
    dataset = open_dataset(args.dataset or settings.dataset, metrics, progress=False)
    net = SeerNetConfig(metrics=metrics, hidden=args.hidden, layers=args.layers, additive_readout=not args.no_additive)
    decision = retrain(root, args.name, with_targets(dataset.samples, metrics), net, _train_config(args),
                       next(iter(dataset.device_keys), ""), guard, args.seed,
                       source={"dataset": str(dataset.path), "devices_in_dataset": dataset.device_keys})
    print(json.dumps(decision.to_dict(), indent=2))
    return 0


def _guard_samples(path: str) -> list:
    """The guard set (real architectures measured on the device), or ValueError naming the file."""
    from seernet.zoo import measured_zoo_samples

    try:
        return measured_zoo_samples(path)
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"guard set {path}: {type(exc).__name__}: {exc}") from None


@dataclass
class OpenedDataset:
    path: Path
    samples: list
    device_keys: list[str]


def open_dataset(path: str | Path, metrics: tuple[str, ...], progress: bool = True) -> OpenedDataset:
    """The dataset store, opened once: its rows as samples, and the devices they were measured on."""
    from profiler_worker.store import DatasetStore
    from seernet.data import samples_from_rows

    store = DatasetStore(path)
    samples = samples_from_rows(store.rows(), metrics, progress=progress, kernels=store.operator_kernels())
    return OpenedDataset(Path(path), samples, store.device_keys())


BENCHMARKS = {"graph": "bench.graph_build", "serve": "bench.serve", "latbench": "bench.latbench", "zoo": "bench.zoo",
              "calibrate": "bench.calibrate",
              "fit": "bench.fit_tables", "gpu": "bench.gpu_eval", "trees": "bench.trees",
              "threads": "bench.threads"}


def cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    """Run a benchmark from ``bench/`` (figures are printed and written to bench/results/)."""
    import importlib

    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    names = list(BENCHMARKS) if args.name == "all" else [args.name]
    code = 0
    for name in names:
        module = importlib.import_module(BENCHMARKS[name])
        code = module.main(args.args) or code
    return code


def add_train_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--ensemble", type=int, default=3, help="members; their spread is the uncertainty")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--max-minutes", type=float, default=0.0, help="time budget per member (0: none)")
    p.add_argument("--no-pcgrad", action="store_true")
    p.add_argument("--operator-loss", type=float, default=1.0,
                   help="weight of the operator-level loss on rows with per-operator profiles (0: whole-model "
                        "labels only)")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--no-additive", action="store_true",
                   help="without the additive (per-operator sum) read-out: pooled heads only (ablation)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train SeerNet (one metric) or SeerNet-Multi (several) on a dataset")
    p.add_argument("--dataset")
    p.add_argument("--metrics", nargs="+", default=list(DEFAULT_METRICS))
    p.add_argument("--out", required=True)
    p.add_argument("--name")
    add_train_flags(p)
    p.set_defaults(handler=cmd_train)

    p = sub.add_parser("fit", help="train a predictor for a new device from your own measurements (a CSV, or "
                                   "the dataset rows dataset build, calibrate or the workers wrote)")
    p.add_argument("--measurements", help="CSV: 'onnx' or 'arch_str', optional 'batch_size', target")
    p.add_argument("--dataset", help="or a dataset store (SQLite of dataset build, calibrate or workers); "
                                     "--target is then one of its metrics, e.g. infer_time_ms")
    p.add_argument("--target", help="the column to predict, e.g. latency_ms (not with --gpu-spec)")
    p.add_argument("--gpu-spec", help="calibrate the GPU cost model for the GPU this spec describes (SPEC.json, "
                                      "or the name of a GPU the predictor knows, e.g. 'Tesla T4'), from "
                                      "--measurements of whole models timed on it (columns onnx, batch_size, "
                                      "dims, infer_time_ms and/or train_time_ms)")
    p.add_argument("--gpu-predictor", help="the GPU cost model to calibrate (default: predictors/gpu)")
    p.add_argument("--out", required=True)
    p.add_argument("--space", help="nasbench201 when rows are arch strings")
    p.add_argument("--pretrained", help="start from this predictor (transfer learning)")
    p.add_argument("--methods", nargs="+", default=None,
                   help="candidates scored on the validation rows; the best is shipped (default: all of "
                        "seernet seernet_pretrained pretrained_rescaled operator_trees gbt ridge gbt_edges "
                        "ridge_edges that apply; operator_trees needs infer_time_ms rows with operator profiles)")
    p.add_argument("--device-key", help="the device key the predictor serves (default: the rows' own; rows "
                                        "measured before keys named the ISA say cpu:<model>:<threads>t)")
    p.add_argument("--base", help="with operator_trees: a SeerNet predictor directory copied into the output to "
                                  "serve the metrics operator trees do not learn (train time, memory)")
    p.add_argument("--auxiliary-dataset", nargs="+", metavar="SQLITE",
                   help="with operator_trees: profiled rows of other devices (e.g. data/cpu_dataset_*.sqlite), "
                        "learned from beside this device's at half weight; their graphs are built (or read "
                        "from the cache) first, about a second a model the first time")
    add_train_flags(p)
    p.set_defaults(handler=cmd_fit, epochs=150, ensemble=2)

    p = sub.add_parser("calibrate", help="measure this machine for a few minutes and write a predictor for it")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, default=1, help="threads the models run with (0: the runtime's default)")
    p.add_argument("--graph-opt", default="all", choices=("disable", "basic", "extended", "all"),
                   help="onnxruntime graph optimisation level")
    p.add_argument("--budget-minutes", type=float, default=10.0, help="all of it: choosing, measuring, fitting")
    p.add_argument("--out", help="predictors directory to write into (default: ./predictors)")
    p.add_argument("--name", help="predictor name (default: from the device, e.g. cpu-intel-r-xeon-r-processor-1t)")
    p.add_argument("--pretrained", default=str(DEFAULT_PREDICTOR),
                   help="the predictor to fine-tune and to rank candidates by its uncertainty")
    p.add_argument("--target", default="infer_time_ms", choices=("infer_time_ms", "train_time_ms"))
    p.add_argument("--cpus", help="CPU ids to pin measurements to, e.g. 1 (default: none)")
    p.add_argument("--time-cap", type=float, default=0.25, help="seconds of timed repeats per model")
    p.add_argument("--max-gflops", type=float, default=CALIBRATE_MAX_GFLOPS,
                   help="largest candidate (forward GFLOPs; default %(default)s: real architectures run that large)")
    p.add_argument("--max-models", type=int, default=0,
                   help="stop measuring after this many models even if budget is left (0: the budget decides)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", help="where the pool and measurements are kept (default: the cache); a rerun "
                                     "with the same name resumes")
    p.add_argument("--auxiliary-dataset", nargs="+", metavar="SQLITE",
                   help="other devices' profiled datasets (e.g. data/cpu_dataset_intel-xeon-avx512.sqlite): "
                        "operator trees learn from them beside this machine's rows, at half weight; their "
                        "graphs are built first (a second a model, uncached), after the measuring budget")
    p.set_defaults(handler=cmd_calibrate)

    p = sub.add_parser("retrain", help="retrain a served predictor; promote it only if not worse (or --rollback)")
    p.add_argument("--dataset")
    p.add_argument("--predictors")
    p.add_argument("--name", default="cpu")
    p.add_argument("--rollback", metavar="VERSION", help="serve this version from history instead")
    p.add_argument("--guard", metavar="ZOO_JSON",
                   help="real architectures measured on this device (bench/results/zoo_measured.json): the "
                        "candidate must not be worse on them either (env: PERFSEER_RETRAIN_GUARD)")
    add_train_flags(p)
    p.set_defaults(handler=cmd_retrain, ensemble=2)

    p = sub.add_parser("evaluate", help="SeerNet vs baselines on random and leave-one-family-out splits")
    p.add_argument("--dataset")
    p.add_argument("--out", default=str(REPO_ROOT / "bench" / "results" / "evaluation"))
    p.add_argument("--metrics", nargs="+", default=list(DEFAULT_METRICS))
    p.add_argument("--splits", nargs="+", default=["random", "lofo"], help="random, lofo, lofo:<family>")
    p.add_argument("--methods", nargs="+", default=["seernet", "seernet_multi", "loglinear", "nnmeter_kernel_gbt",
                                                     "brpnas_gcn", "dippm_sage"])
    p.add_argument("--report-only", action="store_true", help="rebuild README.md and plots from existing JSON")
    p.add_argument("--save-predictor", help="save the random split's SeerNet-Multi here (the shipped predictor)")
    p.add_argument("--multi-ensemble", type=int, default=2, help="members of that saved SeerNet-Multi")
    p.add_argument("--guard", metavar="ZOO_JSON", help="save it there only if not worse on these measured real "
                                                        "architectures than the predictor already there")
    p.add_argument("--noise-floor", default=str(REPO_ROOT / "data" / "noise_floor.json"))
    p.add_argument("--command-line", help="the command to record in the report")
    add_train_flags(p)
    p.set_defaults(handler=cmd_evaluate, ensemble=1)

    p = sub.add_parser("bench", help=f"run a benchmark: {', '.join(BENCHMARKS)} or all")
    p.add_argument("name", choices=[*BENCHMARKS, "all"])
    p.add_argument("args", nargs=argparse.REMAINDER, help="passed to the benchmark (e.g. --repeats 10)")
    p.set_defaults(handler=cmd_bench)

    p = sub.add_parser("serve", help="run the gRPC prediction service")
    p.add_argument("--host", help="address to bind (default 127.0.0.1: loopback only)")
    p.add_argument("--port", type=int)
    p.add_argument("--redis", help="Redis URL for the shared prediction cache and profiling jobs")
    p.add_argument("--predictors", help="directory of predictor directories (default: ./predictors)")
    p.add_argument("--default-predictor", help="the predictor that answers requests naming no device "
                                               "(env PERFSEER_DEFAULT_PREDICTOR; default cpu)")
    p.add_argument("--token", help="require this bearer token (visible in ps: prefer --token-file or "
                                   "env PERFSEER_AUTH_TOKEN)")
    p.add_argument("--token-file", help="read the bearer token from this file")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    p.add_argument("--torch-threads", type=int, default=1)
    p.add_argument("--processes", type=int, help="serving processes sharing the port, e.g. one per core "
                                                 "(needs --redis when > 1; env PERFSEER_PROCESSES; default 1)")
    p.add_argument("--profile-uncertain-above", type=float,
                   help="queue a profiling job when a prediction's log-space uncertainty exceeds this (needs --redis)")
    p.set_defaults(handler=cmd_serve)

    p = sub.add_parser("predictors", help="list the predictors, the device each answers for, and which one "
                                          "perfseer predict uses on this machine")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_predictors)

    p = sub.add_parser("predict", help="predict metrics for ONNX files, or a CSV of models")
    p.add_argument("--gpu", help="predict on this GPU (a name from predictors/gpu, e.g. 'Tesla T4')")
    p.add_argument("--gpu-spec", help="predict on the GPU this spec describes (JSON: sms, fp32_gflops, …)")
    p.add_argument("--gpu-predictor", help="the GPU kernel cost model directory (default: predictors/gpu)")
    p.add_argument("--explain", action="store_true", help="also print where the time goes, per operator "
                                                         "(--json: under 'operators')")
    p.add_argument("--top", type=int, default=10, help="with --explain: how many operators")
    p.add_argument("--plot", help="with --explain: draw the operators' bar chart to this PNG")
    p.add_argument("--dim", action="append", metavar="NAME=N",
                   help="value for a symbolic input dimension, e.g. --dim seq=128 (repeatable)")
    p.add_argument("models", nargs="*", help="ONNX files")
    p.add_argument("--predictor", help="predictor directory (default: the one --device names)")
    p.add_argument("--device", help="predict for this device: a predictor name under predictors/, a device key "
                                    "or its prefix, or gpu:NAME, as in requests to the service (default: the "
                                    f"predictor measured on this machine's CPU, else {DEFAULT_PREDICTOR.name})")
    p.add_argument("--threads", type=int, default=None,
                   help="onnxruntime threads the model will run with: the predictor measured on this machine's CPU "
                        "at that count (default 1; 0: the runtime's default, as `calibrate --threads 0` measures; "
                        "`perfseer predictors` lists the counts measured)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="default: the model's own batch when it was exported with a fixed one, else 1")
    p.add_argument("--csv", help="CSV with an 'onnx' or 'arch_str' column (and optional 'batch_size')")
    p.add_argument("--output", help="where --csv predictions go (CSV)")
    p.add_argument("--server", help="HOST:PORT of a PerfSeer service: predict there instead of in-process")
    p.add_argument("--metrics", nargs="*", help="metrics to report (default: all the predictor has)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_predict)
