"""Serving benchmark: cached / uncached latency against a no-op RPC on the same server, uncached
throughput for NAS-Bench-201 cells (sent as ONNX and as configs) and for real-architecture-sized
models, single-request p50/p99, predicting vs profiling the same models, and the uncached path's
cost per step.  The server runs pinned to ``--server-cpus`` (default: every CPU this process may use).

Goals: cached p99 ≤ 2× the no-op p99; ≥ 1,000 uncached NAS-Bench-201 predictions/s on 2 cores;
prediction ≥ 1,000× faster than profiling.  Run: ``make bench`` or ``perfseer bench serve``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc  # noqa: E402

from bench.common import repeat_ms, save  # noqa: E402
from perfseer_client import PerfSeerClient  # noqa: E402
from perfseer_client.v1 import perfseer_pb2 as pb  # noqa: E402
from perfseer_client.v1 import perfseer_pb2_grpc as pb_grpc  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def percentiles(samples_ms: list[float]) -> dict:
    ordered = sorted(samples_ms)
    return {"p50_ms": statistics.median(ordered), "p99_ms": ordered[int(0.99 * (len(ordered) - 1))],
            "mean_ms": statistics.fmean(ordered), "n": len(ordered)}


def timed(call, requests) -> list[float]:
    out = []
    for request in requests:
        t0 = time.perf_counter()
        call(request, timeout=30)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def throughput(call, make_requests, threads: int) -> float:
    """Items answered per second by ``threads`` client threads; ``call(k, request, timeout)`` is thread k's call
    (each thread has a connection of its own) and returns how many items it answered."""
    done, started = [0], time.perf_counter()
    lock = threading.Lock()

    def run(k: int, requests) -> None:
        for request in requests:
            n = call(k, request, timeout=120)
            with lock:
                done[0] += n

    workers = [threading.Thread(target=run, args=(k, make_requests(k))) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return done[0] / (time.perf_counter() - started)


def nb201_configs(n: int, seed: int) -> list:
    """``n`` distinct NAS-Bench-201 configs (distinct architectures: every request misses)."""
    from seernet.spaces.nasbench201 import NasBench201Space, is_connected

    seen, configs = set(), []
    for config in NasBench201Space().sample_n(3 * n, seed=seed):
        arch = config.arch["arch_str"]
        if arch not in seen and is_connected(arch) and len(configs) < n:
            seen.add(arch)
            configs.append(config.with_batch(1))
    return configs


def nb201_models(configs: list) -> list[bytes]:
    from seernet.graph_cache import stripped_onnx

    return [stripped_onnx(c) for c in configs]


def zoo_models() -> dict[str, bytes]:
    """Real-architecture-sized models (ResNet-18/50/152, MobileNetV2, VGG-11, ViT-Ti, BERT-mini), stripped as a
    client sends them."""
    from seernet.strip import strip_bytes
    from seernet.zoo import ZOO, zoo_onnx

    return {name: strip_bytes(zoo_onnx(name)) for name in ZOO}


def _per_model_ms(step, n: int, repeats: int) -> dict:
    """:func:`bench.common.repeat_ms` of a step over ``n`` models, per model."""
    return {k: v / n for k, v in repeat_ms(step, repeats, warmup=1).items() if k.endswith("_ms")}


def stage_costs(models: list[bytes], configs: list, zoo: dict[str, bytes], predictor_dir: Path, batch: int = 50,
                repeats: int = 5) -> dict:
    """CPU milliseconds per uncached model for each step of the server's miss path, in this process on one
    thread (medians over ``repeats`` passes, min and max beside them): what bounds uncached throughput
    before any RPC cost."""
    import onnx
    import torch

    from seernet.allocator import keep_freed_memory
    from seernet.graph import build_graph, reference_graph
    from seernet.inference_batch import InferenceBatch
    from seernet.predictor import Predictor, inference_plan
    from seernet.spaces import get_space
    from seernet.strip import strip_weights

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    keep_freed_memory()  # as every serving process does
    try:
        predictor = Predictor.load(predictor_dir)
        all_models, models, configs = models, models[:batch], configs[:batch]
        space = get_space("nasbench201")
        graphs = [build_graph(m, batch_size=4) for m in models]
        layers = predictor.members[0].config.layers
        passes = predictor.passes(graphs)  # the service's passes: the exported ensemble over each
        batches = [InferenceBatch.from_graphs(p, predictor.features) for p in passes]
        plans = [inference_plan(b, layers) for b in batches]
        exported = predictor.exported()

        def parse_hash_strip() -> None:
            for m in models:
                hashlib.sha256(m).hexdigest()
                strip_weights(onnx.load_from_string(m), in_place=True)

        unseen = iter(range(len(models), len(all_models) - len(models) + 1, len(models)))

        def build_unseen() -> None:  # cells never built before, after others warmed the fast lane's memo
            start = next(unseen)
            for m in all_models[start:start + len(models)]:
                build_graph(m, batch_size=4)

        nb201 = {
            "graph_from_onnx": _per_model_ms(lambda: [build_graph(m, batch_size=4) for m in models], len(models),
                                             repeats),
            "graph_from_onnx_unseen_cells": _per_model_ms(build_unseen, len(models), repeats),
            "graph_from_onnx_whole_model_path": _per_model_ms(
                lambda: [reference_graph(m, batch_size=4) for m in models], len(models), repeats),
            "graph_from_config": _per_model_ms(lambda: [space.direct_graph(c.with_batch(4)) for c in configs],
                                               len(configs), repeats),
            "parse_hash_strip": _per_model_ms(parse_hash_strip, len(models), repeats),
            "scale": _per_model_ms(lambda: [InferenceBatch.from_graphs(p, predictor.features) for p in passes],
                                   len(graphs), repeats),
            "plan": _per_model_ms(lambda: [inference_plan(b, layers) for b in batches], len(graphs), repeats),
            "gnn_forward_all_members": _per_model_ms(lambda: [exported(b, p) for b, p in zip(batches, plans)],
                                                     len(graphs), repeats),
            "predict_all_steps": _per_model_ms(lambda: predictor.predict_encoded(graphs), len(graphs), repeats),
        }
        onnx_total = sum(nb201[k]["median_ms"] for k in ("graph_from_onnx", "parse_hash_strip", "predict_all_steps"))
        config_total = sum(nb201[k]["median_ms"] for k in ("graph_from_config", "predict_all_steps"))
        zoo_rows = {}
        for name, model in zoo.items():  # first sight and the whole-model path per model: `perfseer bench graph`
            graph = build_graph(model, batch_size=4)
            zoo_rows[name] = {"nodes": graph.num_nodes,
                              "graph_from_onnx": _per_model_ms(lambda: build_graph(model, batch_size=4), 1, repeats),
                              "predict": _per_model_ms(lambda: predictor.predict_graphs([graph]), 1, repeats)}
        return {"models": len(graphs), "members": len(predictor.members), "graphs_per_pass": len(passes[0]),
                "nodes_median": statistics.median(g.num_nodes for g in graphs), "nb201": nb201,
                "onnx_total_ms": onnx_total, "config_total_ms": config_total,
                "onnx_ceiling_per_core_per_s": 1000.0 / onnx_total,
                "config_ceiling_per_core_per_s": 1000.0 / config_total, "zoo": zoo_rows}
    finally:
        torch.set_num_threads(threads)


def config_dict(config) -> dict:
    """A config as the client takes it."""
    return {"space": config.space, "arch": config.arch, "input_size": config.input_size}


def config_message(config) -> pb.ModelSpaceConfig:
    return pb.ModelSpaceConfig(space=config.space, arch_json=json.dumps(config.arch), input_size=config.input_size)


def start_server(port: int, cpus: set[int], processes: int, redis_port: int, repo: Path = ROOT
                 ) -> list[subprocess.Popen]:
    """The server of checkout ``repo`` pinned to ``cpus`` (with a private redis-server beside it when it runs
    several processes)."""
    def pinned() -> None:
        os.sched_setaffinity(0, cpus)

    started = []
    command = [sys.executable, "-m", "perfseer.cli", "serve", "--port", str(port), "--processes", str(processes)]
    if processes > 1:
        if not shutil.which("redis-server"):
            raise SystemExit("--processes > 1 needs redis-server on PATH (make setup installs it), or --processes 1")
        started.append(subprocess.Popen(["redis-server", "--port", str(redis_port), "--save", "", "--appendonly",
                                         "no"], stdout=subprocess.DEVNULL, preexec_fn=pinned))
        command += ["--redis", f"redis://127.0.0.1:{redis_port}/0"]
    started.append(subprocess.Popen(command, cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)},
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=pinned))
    return started


def wait_ready(stub) -> None:
    deadline = time.time() + 60
    while not stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready:
        if time.time() > deadline:
            raise SystemExit("the server loaded no predictor from ./predictors in 60 s "
                             "(missing, or trained on another feature schema: run `perfseer train`)")
        time.sleep(0.2)


def wait_listening(port: int, processes: int, timeout_s: float = 120.0) -> None:
    """Until every server process listens on ``port``: the kernel hands each new connection to one of the
    processes listening then, so a client that connects while the others still start talks to one process."""
    import psutil

    deadline = time.time() + timeout_s
    while sum(1 for c in psutil.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN
              and c.laddr.port == port) < processes:
        if time.time() > deadline:
            raise SystemExit(f"fewer than {processes} server processes listen on port {port} after {timeout_s:.0f} s")
        time.sleep(0.2)


def uncached_throughput(client, models: list, batch_size: int | None, chunk: int, device: str = "") -> dict:
    """Predictions per second for ``models`` (all distinct) through ``client.predict_many`` (what a NAS loop
    calls: chunks of ``chunk`` on all of its connections, each taking the next chunk when answered); every
    item must succeed and miss the cache.  ``batch_size`` None: ``models`` are (model, batch) pairs."""
    started = time.perf_counter()
    if batch_size is None:
        results = [r for b in sorted({b for _, b in models}) for r in client.predict_many(
            [m for m, mb in models if mb == b], batch_size=b, chunk=chunk, device=device)]
    else:
        results = client.predict_many(models, batch_size=batch_size, chunk=chunk, device=device)
    elapsed = time.perf_counter() - started
    failed = [str(r)[:200] for r in results if isinstance(r, Exception)]
    if failed:
        raise RuntimeError(failed[:3])
    return {"per_s": len(results) / elapsed, "requests": len(results), "chunk": chunk,
            "connections": len(client._stubs), "misses": sum(not r.cache_hit for r in results)}


def profile_seconds(configs: list, n: int) -> list[float]:
    from profiler_worker.job import ProfileJob
    from profiler_worker.measure import measure_job
    from profiler_worker.settings import ProfileSettings

    out = []
    for config in configs[:n]:
        t0 = time.perf_counter()
        measure_job(ProfileJob.for_config(config.with_batch(2)), ProfileSettings(time_cap_s=0.5))
        out.append(time.perf_counter() - t0)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=50199)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--uncached", type=int, default=1000, help="NAS-Bench-201 cells sent as ONNX (exported first)")
    parser.add_argument("--uncached-configs", type=int, default=3000,
                        help="NAS-Bench-201 cells sent as configs per round: a run long enough that the last "
                             "chunks' unequal spread over the processes does not decide the figure (1,000 took ~1 s)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of uncached configs (new ones each round): the median is the figure")
    parser.add_argument("--profile", type=int, default=5, help="models to profile for the comparison")
    parser.add_argument("--zoo-batches", type=int, default=8, help="batch sizes 1..N of each real-sized model")
    parser.add_argument("--server-cpus", help="CPU ids the server is pinned to, e.g. 0,1 (default: all allowed)")
    parser.add_argument("--processes", type=int, help="server processes (default: one per server CPU; > 1 "
                                                      "shares a private redis-server)")
    parser.add_argument("--redis-port", type=int, default=6479)
    parser.add_argument("--connections", type=int, default=8, help="client connections for the throughput runs")
    parser.add_argument("--server-repo", type=Path, default=ROOT,
                        help="serve from this checkout (a `git worktree` of an earlier commit): the same client and "
                             "models against another server, for before/after figures from one session")
    parser.add_argument("--device", default="",
                        help="requests name this device (a predictor name or device key, e.g. cpu-intel-xeon-avx512: "
                             "an operator predictor); default: the server's default predictor. The in-process "
                             "step timings are always predictors/cpu's")
    parser.add_argument("--out-name", default="serve", help="bench/results/<name>.json")
    args = parser.parse_args(argv)
    device = args.device
    cpus = {int(c) for c in args.server_cpus.split(",")} if args.server_cpus else os.sched_getaffinity(0)
    processes = args.processes or len(cpus)

    print("preparing models…", flush=True)
    configs = nb201_configs(args.uncached + 100 + args.rounds * args.uncached_configs, seed=99)
    onnx_configs, config_only = configs[:args.uncached + 50], configs[args.uncached + 50:]
    models = nb201_models(onnx_configs)
    zoo = zoo_models()
    print("timing the uncached path's steps in-process…", flush=True)
    stages = stage_costs(models, config_only, zoo, ROOT / "predictors" / "cpu")
    started = start_server(args.port, cpus, processes, args.redis_port, args.server_repo.resolve())
    try:
        wait_listening(args.port, processes)
        options = [("grpc.max_send_message_length", 2**26), ("grpc.use_local_subchannel_pool", 1)]
        channels = [grpc.insecure_channel(f"127.0.0.1:{args.port}", options=options) for _ in range(4)]
        for channel in channels:
            grpc.channel_ready_future(channel).result(timeout=60)
        stubs = [pb_grpc.PerfSeerStub(c) for c in channels]  # a connection each: the kernel spreads them
        stub = stubs[0]
        for each in stubs:
            wait_ready(each)
        results: dict = {"server_cpus": sorted(cpus), "server_processes": processes,
                         "cache": "redis" if processes > 1 else "in-process"}

        results["noop"] = percentiles(timed(stub.Ping, [pb.PingRequest()] * args.requests))
        warm = stub.PredictPerformance(pb.PredictRequest(onnx=models[0], batch_size=1, device=device), timeout=30)
        results["predictor"] = warm.predictor
        cached_req = pb.PredictRequest(model_sha256=warm.model_sha256, batch_size=1, device=device)
        results["cached"] = percentiles(timed(stub.PredictPerformance, [cached_req] * args.requests))
        results["cached_bytes"] = percentiles(timed(stub.PredictPerformance,
                                                    [pb.PredictRequest(onnx=models[0], batch_size=1, device=device)]
                                                    * args.requests))

        results["uncached_single_onnx"] = percentiles(timed(
            stub.PredictPerformance, [pb.PredictRequest(onnx=m, batch_size=2, device=device) for m in models[1:51]]))
        results["uncached_single_config"] = percentiles(timed(
            stub.PredictPerformance, [pb.PredictRequest(config=config_message(c), batch_size=2, device=device)
                                      for c in config_only[:50]]))
        zoo_single = [pb.PredictRequest(onnx=m, batch_size=args.zoo_batches + 1, device=device) for m in zoo.values()]
        results["uncached_single_zoo"] = percentiles(timed(stub.PredictPerformance, zoo_single))

        with PerfSeerClient(f"127.0.0.1:{args.port}", connections=args.connections) as client:
            results["uncached_nb201_onnx"] = uncached_throughput(client, models[51:], 4, chunk=50, device=device)
            rounds = [uncached_throughput(client, [config_dict(c) for c in config_only[50 + k * args.uncached_configs:
                                                                               50 + (k + 1) * args.uncached_configs]],
                                          4, chunk=50, device=device) for k in range(args.rounds)]
            per_s = [r["per_s"] for r in rounds]
            results["uncached_nb201_config"] = {**rounds[0], "per_s": statistics.median(per_s), "min_per_s": min(per_s),
                                                "max_per_s": max(per_s), "rounds": len(rounds),
                                                "misses": sum(r["misses"] for r in rounds),
                                                "requests": sum(r["requests"] for r in rounds)}
            results["uncached_zoo"] = uncached_throughput(
                client, [(m, b) for b in range(1, args.zoo_batches + 1) for m in zoo.values()], None, chunk=1,
                device=device)
        results["cached_per_s"] = throughput(
            lambda k, r, timeout: (stubs[k].PredictPerformance(r, timeout=timeout), 1)[1],
            lambda k: [cached_req] * (args.requests // 2), threads=4)
        results["noop_per_s"] = throughput(lambda k, r, timeout: (stubs[k].Ping(r, timeout=timeout), 1)[1],
                                           lambda k: [pb.PingRequest()] * (args.requests // 2), threads=4)
    finally:
        for process in reversed(started):
            process.terminate()
            process.wait(timeout=30)

    print("profiling the same kind of models…", flush=True)
    profile_s = profile_seconds(configs, args.profile)
    results["profile_seconds"] = {"median": statistics.median(profile_s), "min": min(profile_s),
                                  "max": max(profile_s), "n": len(profile_s)}
    profile_ms = results["profile_seconds"]["median"] * 1000
    results["speedup_vs_profiling"] = {
        "uncached_single_onnx_p50": profile_ms / results["uncached_single_onnx"]["p50_ms"],
        "uncached_single_config_p50": profile_ms / results["uncached_single_config"]["p50_ms"],
        "uncached_onnx_throughput": profile_ms / 1000 * results["uncached_nb201_onnx"]["per_s"],
        "uncached_config_throughput": profile_ms / 1000 * results["uncached_nb201_config"]["per_s"],
        "cached_p50": profile_ms / results["cached"]["p50_ms"]}
    results["cached_p99_over_noop_p99"] = results["cached"]["p99_ms"] / results["noop"]["p99_ms"]
    results["uncached_steps_in_process"] = stages
    best_uncached = max(results["uncached_nb201_onnx"]["per_s"], results["uncached_nb201_config"]["per_s"])
    results["goals"] = {"cached_p99_le_2x_noop": results["cached_p99_over_noop_p99"] <= 2.0,
                        "uncached_nb201_ge_1000_per_s": best_uncached >= 1000,
                        "prediction_ge_1000x_faster_than_profiling":  # one request's latency, as the issue measured
                            results["speedup_vs_profiling"]["uncached_single_config_p50"] >= 1000,
                        "prediction_ge_1000x_faster_than_profiling_amortised":  # a NAS loop's batches
                            results["speedup_vs_profiling"]["uncached_config_throughput"] >= 1000}
    path = save(args.out_name, {"note": "server and clients on the same 2-core machine; timings vary 20-50 % with load",
                                "server_repo": str(args.server_repo.resolve()),
                                "steps_measured_in": str(ROOT),  # the in-process steps are always this checkout's
                          **results})
    report(results, stages)
    print(f"written to {path}")
    return 0


def report(results: dict, stages: dict) -> None:
    print(f"predictions by {results['predictor']}")
    for key in ("noop", "cached", "cached_bytes", "uncached_single_onnx", "uncached_single_config",
                "uncached_single_zoo"):
        r = results[key]
        print(f"{key:<24} p50 {r['p50_ms']:8.3f} ms  p99 {r['p99_ms']:8.3f} ms")
    print(f"cached p99 / no-op p99 = {results['cached_p99_over_noop_p99']:.2f} (goal ≤ 2)")
    print(f"throughput (server: {results['server_processes']} process(es) on CPUs {results['server_cpus']}, "
          f"{results['cache']} cache): no-op {results['noop_per_s']:.0f}/s, cached "
          f"{results['cached_per_s']:.0f}/s, uncached NAS-Bench-201 as ONNX {results['uncached_nb201_onnx']['per_s']:.0f}/s, "
          f"as configs {results['uncached_nb201_config']['per_s']:.0f}/s (median of {results['uncached_nb201_config']['rounds']}"
          f" rounds, {results['uncached_nb201_config']['min_per_s']:.0f}–{results['uncached_nb201_config']['max_per_s']:.0f};"
          f" goal ≥ 1000), real-sized models "
          f"{results['uncached_zoo']['per_s']:.1f}/s")
    nb = stages["nb201"]
    print(f"uncached NAS-Bench-201, CPU ms per model on one thread ({stages['models']} models, "
          f"{stages['members']} members in one onnxruntime graph, passes of {stages['graphs_per_pass']}): " + ", ".join(f"{k} {v['median_ms']:.2f}" for k, v in nb.items()))
    print(f"  → ONNX requests ≤ {stages['onnx_ceiling_per_core_per_s']:.0f}/s per core, config requests ≤ "
          f"{stages['config_ceiling_per_core_per_s']:.0f}/s per core, before any RPC cost")
    print(f"  graph from ONNX: whole-model path / fast lane = "
          f"{nb['graph_from_onnx_whole_model_path']['median_ms'] / nb['graph_from_onnx']['median_ms']:.1f}× "
          f"(cells seen before), {nb['graph_from_onnx_whole_model_path']['median_ms'] / nb['graph_from_onnx_unseen_cells']['median_ms']:.1f}× (cells never built before)")
    for name, row in stages["zoo"].items():
        print(f"  {name:<22} {row['nodes']:>4} nodes: graph {row['graph_from_onnx']['median_ms']:.2f} ms, "
              f"predict {row['predict']['median_ms']:.2f} ms")
    speed = results["speedup_vs_profiling"]
    print(f"profiling one model: {results['profile_seconds']['median']:.2f} s median → prediction is "
          f"{speed['uncached_single_onnx_p50']:.0f}× (ONNX) / {speed['uncached_single_config_p50']:.0f}× (config) "
          f"faster uncached (single request), {speed['uncached_config_throughput']:.0f}× (config, batches: time per "
          f"prediction at the throughput above), {speed['cached_p50']:.0f}× cached (goal ≥ 1000×)")


if __name__ == "__main__":
    sys.exit(main())
