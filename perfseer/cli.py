"""The ``perfseer`` command: one entry point, one subcommand per job.

Subcommand modules are imported lazily so ``perfseer --help`` and light
commands start fast even though training pulls in torch.
"""
from __future__ import annotations

import argparse
import calendar
import json
import logging
import sys
import time
from pathlib import Path
from typing import Callable

from .config import Settings

Handler = Callable[[argparse.Namespace, Settings], int]


def _print_json(obj: object) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True, default=str))


# --------------------------------------------------------------------------- dataset
def _profile_settings(args: argparse.Namespace):
    from profiler_worker.backend import resolve_device
    from profiler_worker.settings import ProfileSettings

    affinity = tuple(int(c) for c in args.cpus.split(",")) if getattr(args, "cpus", None) else None
    settings = ProfileSettings(device=resolve_device(args.device), cpu_affinity=affinity)
    if getattr(args, "threads", None):
        settings.threads = args.threads
    if getattr(args, "time_cap", None):
        settings.time_cap_s = args.time_cap
    if getattr(args, "graph_opt", None):
        settings.graph_optimization = args.graph_opt
    if getattr(args, "modes", None):
        settings.modes = tuple(args.modes)
    return settings


TIMM_ARCHS_HELP = ("comma-separated globs: the timm space draws only training architectures matching them, "
                   "e.g. 'regnet*,*resnext*' (a build aimed at the families you search over)")


BATCH_SIZES_HELP = ("comma-separated batch sizes to draw from instead of each space's own, e.g. 4,8 (a build aimed "
                    "at the batches you run)")


def _build_plan(args: argparse.Namespace):
    """The plan ``--space``, ``--n``, ``--seed``, ``--max-gflops``, ``--timm-archs`` and ``--batch-sizes``
    describe; None (after saying why on stderr) when ``--space`` names no known space or a bad share, a glob
    matches nothing, or a batch size is one the spaces never draw."""
    from profiler_worker.dataset_build import BatchSizeError, BuildPlan
    from seernet.spaces.timm_space import ArchPatternError

    archs = tuple(p.strip() for p in (args.timm_archs or "").split(",") if p.strip())
    try:
        batches = tuple(int(b) for b in (args.batch_sizes or "").split(",") if b.strip())
    except ValueError:
        print(f"error: --batch-sizes: expected comma-separated integers such as 4,8, got {args.batch_sizes!r}",
              file=sys.stderr)
        return None
    try:
        return BuildPlan.for_space(args.space, args.n, args.seed, args.max_gflops or None, archs, batches)
    except BatchSizeError as exc:
        print(f"error: --batch-sizes: {exc}", file=sys.stderr)
    except ArchPatternError as exc:
        print(f"error: --timm-archs: {exc}", file=sys.stderr)
    except ValueError as exc:
        print(f"error: --space: {exc}", file=sys.stderr)
    return None


def cmd_dataset_build(args: argparse.Namespace, settings: Settings) -> int:
    from profiler_worker.dataset_build import build_dataset, remeasure_sample
    from profiler_worker.store import DatasetStore

    if not args.remeasure and not args.n:
        print("error: --n is required (or --remeasure N)", file=sys.stderr)
        return 2
    plan = None
    if not args.remeasure:
        plan = _build_plan(args)  # checked before the store exists: a mistyped flag leaves no empty dataset behind
        if plan is None:
            return 2
    store = DatasetStore(args.out or settings.dataset)
    profile = _profile_settings(args)
    if args.remeasure:
        counts = remeasure_sample(store, args.remeasure, profile, seed=args.seed)
    else:
        index, _, total = args.shard.partition("/")
        prefetch = tuple(int(c) for c in args.prefetch_cpus.split(",")) if args.prefetch_cpus else None
        counts = build_dataset(store, plan, profile, shard=(int(index), int(total or 1)), prefetch_affinity=prefetch)
    _print_json({"store": str(store.path), **counts})
    return 0


def cmd_dataset_stats(args: argparse.Namespace, settings: Settings) -> int:
    from profiler_worker.store import DatasetStore

    path = Path(args.dataset or settings.dataset)
    if not path.exists():
        print(f"error: no dataset at {path}", file=sys.stderr)
        return 2
    stats = DatasetStore(path).stats()
    if args.json:
        _print_json(stats)
        return 0
    print(f"{stats['rows']} measured rows in {stats['path']}")
    profiled = stats["operator_profiles"]
    for family, count in stats["families"].items():
        p = profiled.get(family)
        extra = (f"   {p['rows']:>6} with operator profiles ({p['kernels_per_row']:g} kernels a row, "
                 f"{100 * p['kernel_share']:.1f} % of end-to-end time)") if p else ""
        print(f"  {family:<12} {count:>6}{extra}")
    print("status:", ", ".join(f"{k}={v}" for k, v in stats["status"].items()))
    print(f"re-measured: {stats['remeasured']}, quarantined: {stats['quarantined']}")
    print("devices:", ", ".join(f"{k} ({v})" for k, v in stats["devices"].items()))
    return 0


def cmd_dataset_submit(args: argparse.Namespace, settings: Settings) -> int:
    from profiler_worker.job import ProfileJob
    from profiler_worker.queue import JobQueue

    plan = _build_plan(args)
    if plan is None:
        return 2
    queue = JobQueue.from_url(args.redis or settings.redis_url)
    ids = [queue.submit(ProfileJob.for_config(plan.config_at(i), args.device)) for i in range(args.n)]
    _print_json({"submitted": len(ids), "stream": queue.jobs_stream})
    return 0


def cmd_dataset_noise(args: argparse.Namespace, settings: Settings) -> int:
    from profiler_worker.noise import noise_floor_report
    from profiler_worker.store import DatasetStore

    since = None
    if args.since:
        try:
            since = calendar.timegm(time.strptime(args.since, "%Y-%m-%dT%H:%M:%SZ"))
        except ValueError:
            print(f"error: --since wants a UTC time like 2026-11-22T08:00:00Z, got {args.since!r}", file=sys.stderr)
            return 2
    report = noise_floor_report(DatasetStore(args.dataset or settings.dataset), since)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    _print_json(report)
    return 0


def cmd_dataset_quarantine(args: argparse.Namespace, settings: Settings) -> int:
    from profiler_worker.store import DatasetStore

    path = Path(args.dataset or settings.dataset)
    if not path.exists():
        print(f"error: no dataset at {path}", file=sys.stderr)
        return 2
    if not args.reason.strip():
        print("error: --reason is required: say why these rows are not to be trusted", file=sys.stderr)
        return 2
    if args.job_ids != "-" and not Path(args.job_ids).is_file():
        print(f"error: no job-id file at {args.job_ids}", file=sys.stderr)
        return 2
    text = sys.stdin.read() if args.job_ids == "-" else Path(args.job_ids).read_text()
    ids = [line.strip() for line in text.splitlines() if line.strip()]
    store = DatasetStore(path)
    moved = store.quarantine(ids, args.reason)
    _print_json({"asked": len(ids), "moved": moved, "quarantined": store.quarantined_count(),
                 "rows": store.count(status="ok")})
    return 0


# --------------------------------------------------------------------------- worker
def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from profiler_worker.worker import run_worker

    return run_worker(redis_url=args.redis or settings.redis_url, device=args.device,
                      dataset=Path(args.dataset or settings.dataset), settings=_profile_settings(args),
                      max_jobs=args.max_jobs, idle_exit_s=args.idle_exit, write_results=args.write_results,
                      claim_idle_ms=args.claim_idle_ms, max_attempts=args.max_attempts,
                      retrain_after=args.retrain_after if args.retrain_after is not None else settings.retrain_after,
                      predictors=Path(args.predictors or settings.predictors))


# --------------------------------------------------------------------------- graph
def cmd_graph(args: argparse.Namespace, settings: Settings) -> int:
    from seernet.errors import GraphBuildError
    from seernet.graph import build_graph
    from seernet.loader import local_model

    try:
        dims = dict(_parse_dim(d) for d in args.dim or [])
        graph = build_graph(local_model(args.model, settings.limits), batch_size=args.batch_size,
                            training=args.training, dims=dims, limits=settings.limits)
    except (GraphBuildError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = graph.summary()
    if args.json:
        _print_json(summary)
        return 0
    print(f"{args.model}: {summary['nodes']} operators, {summary['edges']} tensors, batch {graph.batch_size}")
    print(f"  FLOPs {summary['flops']:.4g}  MACs {summary['macs']:.4g}  params {summary['params']:,}")
    print(f"  memory traffic {summary['memory_bytes'] / 2**20:.1f} MiB  built in {summary['build_ms']:.2f} ms")
    if summary["folded_at_load"]:
        print(f"  {summary['folded_at_load']} more operators read only weights: the runtime computes them once at "
              f"load ({summary['folded_at_load_mb']:.1f} MB held while it does), so an inference leaves them out "
              "(--training keeps them)")
    for op, count in sorted(summary["op_counts"].items(), key=lambda kv: -kv[1])[:12]:
        print(f"    {op:<24} {count}")
    return 0


def _parse_dim(text: str) -> tuple[str, int]:
    from seernet.errors import GraphBuildError

    name, sep, value = text.partition("=")
    if not sep or not value.strip().isdigit():
        raise GraphBuildError(f"--dim expects NAME=N, got {text!r}")
    return name.strip(), int(value)


# --------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="perfseer", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("graph", help="build the performance graph of an ONNX model and summarise it")
    p.add_argument("model")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--training", action="store_true", help="describe a training iteration instead of inference")
    p.add_argument("--dim", action="append", metavar="NAME=N", help="value for a symbolic input dimension (repeatable)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_graph)

    dataset = sub.add_parser("dataset", help="build, extend and summarise the measurement dataset")
    dsub = dataset.add_subparsers(dest="dataset_command", required=True)

    def profile_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (falls back to cpu with a warning)")
        p.add_argument("--threads", type=int, help="threads the profiled model may use (default 1; 0: the runtime's "
                                                   "default, all cores)")
        p.add_argument("--graph-opt", choices=("disable", "basic", "extended", "all"),
                       help="onnxruntime graph optimisation level (default all, the runtime's default)")
        p.add_argument("--cpus", help="comma-separated CPU ids to pin measurements to, e.g. 1")
        p.add_argument("--time-cap", type=float, help="seconds of timed repeats per metric")
        p.add_argument("--modes", nargs="+", choices=("infer", "train"),
                       help="what to measure (default both; infer alone, with operator profiles, takes about half "
                            "the time a row)")

    p = dsub.add_parser("build", help="measure N sampled configs locally (no Redis), resuming where stopped")
    p.add_argument("--space", default="all", help="cnn, nasbench201, vit, bert, mlp, timm, hf, all, or weighted "
                                                 "shares such as timm=0.6,hf=0.2,cnn=0.2")
    p.add_argument("--n", type=int, help="configs to plan (required unless --remeasure)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-gflops", type=float, default=2.0, help="redraw configs whose forward pass costs more (0: no cap)")
    p.add_argument("--timm-archs", help=TIMM_ARCHS_HELP)
    p.add_argument("--batch-sizes", help=BATCH_SIZES_HELP)
    p.add_argument("--prefetch-cpus", help="CPU ids for sampling/export ahead of measurement, e.g. 0 (default: --cpus; on a measuring core, export waits while a measurement runs)")
    p.add_argument("--shard", default="0/1", help="k/K: measure every K-th config from k (parallel builds)")
    p.add_argument("--remeasure", type=int, default=0, help="instead, re-measure this many random stored configs")
    p.add_argument("--out", help="dataset file (default: the configured dataset)")
    profile_flags(p)
    p.set_defaults(handler=cmd_dataset_build)

    p = dsub.add_parser("submit", help="put N sampled configs on the Redis job stream for workers")
    p.add_argument("--space", default="all")
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-gflops", type=float, default=2.0)
    p.add_argument("--timm-archs", help=TIMM_ARCHS_HELP)
    p.add_argument("--batch-sizes", help=BATCH_SIZES_HELP)
    p.add_argument("--device", default="cpu")
    p.add_argument("--redis")
    p.set_defaults(handler=cmd_dataset_submit)

    p = dsub.add_parser("stats", help="summarise a dataset")
    p.add_argument("--dataset")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_dataset_stats)

    p = dsub.add_parser("noise", help="noise floor: compare re-measured configs with their first measurement")
    p.add_argument("--dataset")
    p.add_argument("--out")
    p.add_argument("--since", help="headline figures from re-measurements taken at or after this UTC time "
                                   "(e.g. 2026-11-22T08:00:00Z); every round is listed either way")
    p.set_defaults(handler=cmd_dataset_noise)

    p = dsub.add_parser("quarantine", help="move rows found to be wrong out of training into table `quarantined`")
    p.add_argument("--dataset")
    p.add_argument("--job-ids", required=True, help="file with one job id per line, or - for standard input")
    p.add_argument("--reason", required=True, help="why (kept with every row)")
    p.set_defaults(handler=cmd_dataset_quarantine)

    p = sub.add_parser("worker", help="consume profiling jobs from Redis and measure them")
    p.add_argument("--redis")
    p.add_argument("--dataset", help="dataset the result writer appends to")
    p.add_argument("--max-jobs", type=int, default=0, help="stop after this many jobs (0: run until stopped)")
    p.add_argument("--idle-exit", type=float, default=0.0, help="stop after this many idle seconds (0: never)")
    p.add_argument("--write-results", action="store_true",
                   help="also append results to --dataset (run exactly one writer per dataset)")
    p.add_argument("--claim-idle-ms", type=int, help="take over jobs idle this long (dead workers); default 300000")
    p.add_argument("--max-attempts", type=int, help="dead-letter a job after this many failures; default 3")
    p.add_argument("--retrain-after", type=int, help="writer: retrain after this many new rows (0: never; default "
                                                     "PERFSEER_RETRAIN_AFTER or 500)")
    p.add_argument("--predictors", help="writer: predictors directory the retrain promotes into")
    profile_flags(p)
    p.set_defaults(handler=cmd_worker)

    _register_optional(sub)
    return parser


def _register_optional(sub: argparse._SubParsersAction) -> None:
    """Subcommands whose modules register themselves (train, evaluate, fit, predict, serve, bench)."""
    from . import commands

    commands.register(sub)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler: Handler = args.handler
    return handler(args, Settings.from_env())


if __name__ == "__main__":
    sys.exit(main())
