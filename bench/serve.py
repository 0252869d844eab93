"""Serving benchmark: cached / uncached latency against a no-op RPC on the same server, uncached
NAS-Bench-201 throughput, and predicting vs profiling the same models.

Goals: cached p99 ≤ 2× the no-op p99; ≥ 1,000 uncached NAS-Bench-201 predictions/s on 2 cores;
prediction ≥ 1,000× faster than profiling.  Run: ``make bench`` or ``python -m bench.serve``.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc  # noqa: E402

from bench.common import save  # noqa: E402
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
    done, started = [0], time.perf_counter()
    lock = threading.Lock()

    def run(requests) -> None:
        for request in requests:
            n = call(request, timeout=120)
            with lock:
                done[0] += n

    workers = [threading.Thread(target=run, args=(make_requests(k),)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return done[0] / (time.perf_counter() - started)


def nb201_models(n: int) -> list[bytes]:
    from seernet.graph_cache import stripped_onnx
    from seernet.spaces.nasbench201 import NasBench201Space

    seen, models = set(), []
    for config in NasBench201Space().sample_n(2 * n, seed=99):  # distinct architectures: every request misses
        if config.arch_id not in seen and len(models) < n:
            seen.add(config.arch_id)
            models.append(stripped_onnx(config.with_batch(1)))
    return models


def stage_costs(models: list[bytes], predictor_dir: Path, batch: int = 50, repeats: int = 5) -> dict:
    """CPU milliseconds per uncached model for each step of the server's miss path, in this process
    on one thread: what bounds uncached throughput before any RPC overhead.

    Medians over ``repeats`` passes over the same models (the spread is reported beside them).
    """
    import torch

    from seernet.graph import build_graph
    from seernet.predictor import Predictor
    from seernet.strip import strip_bytes

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        predictor = Predictor.load(predictor_dir)
        graphs = [build_graph(m, batch_size=4) for m in models[:batch]]
        steps = {
            "graph_build": lambda: [build_graph(m, batch_size=4) for m in models[:batch]],
            "strip_and_hash": lambda: [(hashlib.sha256(m).hexdigest(), strip_bytes(m)) for m in models[:batch]],
            "gnn_forward_all_members": lambda: predictor.predict_graphs(graphs),
        }
        out: dict = {"models": len(graphs), "members": len(predictor.members),
                     "nodes_median": statistics.median(g.num_nodes for g in graphs)}
        for name, step in steps.items():
            step()  # warm-up
            per_model = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                step()
                per_model.append((time.perf_counter() - t0) * 1000 / len(graphs))
            out[name] = {"median_ms": statistics.median(per_model), "min_ms": min(per_model), "max_ms": max(per_model)}
        total = sum(out[name]["median_ms"] for name in steps)
        out["total_ms"] = total
        out["ceiling_per_core_per_s"] = 1000.0 / total
        return out
    finally:
        torch.set_num_threads(threads)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=50199)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--uncached", type=int, default=1000)
    parser.add_argument("--profile", type=int, default=5, help="models to profile for the comparison")
    args = parser.parse_args(argv)

    print("preparing models…", flush=True)
    models = nb201_models(args.uncached + 50)
    print("timing the uncached path's steps in-process…", flush=True)
    stages = stage_costs(models, ROOT / "predictors" / "cpu")
    server = subprocess.Popen([sys.executable, "-m", "perfseer.cli", "serve", "--port", str(args.port)], cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{args.port}", options=[("grpc.max_send_message_length", 2**26)])
        grpc.channel_ready_future(channel).result(timeout=60)
        stub = pb_grpc.PerfSeerStub(channel)
        deadline = time.time() + 60
        while not stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready:
            if time.time() > deadline:
                raise SystemExit("the server loaded no predictor from ./predictors in 60 s "
                                 "(missing, or trained on another feature schema: run `perfseer train`)")
            time.sleep(0.2)
        results: dict = {}

        ping = timed(stub.Ping, [pb.PingRequest()] * args.requests)
        results["noop"] = percentiles(ping)

        warm = stub.PredictPerformance(pb.PredictRequest(onnx=models[0], batch_size=1), timeout=30)
        cached_req = pb.PredictRequest(model_sha256=warm.model_sha256, batch_size=1)
        results["cached"] = percentiles(timed(stub.PredictPerformance, [cached_req] * args.requests))
        results["cached_bytes"] = percentiles(timed(stub.PredictPerformance,
                                                    [pb.PredictRequest(onnx=models[0], batch_size=1)] * args.requests))

        single = [pb.PredictRequest(onnx=m, batch_size=2) for m in models[1:51]]
        results["uncached_single"] = percentiles(timed(stub.PredictPerformance, single))

        rest = models[51:]
        half = len(rest) // 2

        def batches(k: int) -> list[pb.PredictBatchRequest]:
            mine = rest[k * half:(k + 1) * half]
            return [pb.PredictBatchRequest(requests=[pb.PredictRequest(onnx=m, batch_size=4) for m in mine[i:i + 50]])
                    for i in range(0, len(mine), 50)]

        misses = [0]

        def batch_call(request, timeout):
            response = stub.PredictPerformanceBatch(request, timeout=timeout)
            if any(item.code != 0 for item in response.items):
                raise RuntimeError([item.message for item in response.items if item.code != 0][:3])
            misses[0] += sum(not item.response.cache_hit for item in response.items)
            return len(response.items)

        results["uncached_nb201_per_s"] = throughput(batch_call, batches, threads=2)
        results["uncached_nb201_misses"] = misses[0]
        results["cached_per_s"] = throughput(lambda r, timeout: (stub.PredictPerformance(r, timeout=timeout), 1)[1],
                                             lambda k: [cached_req] * (args.requests // 2), threads=4)
        results["noop_per_s"] = throughput(lambda r, timeout: (stub.Ping(r, timeout=timeout), 1)[1],
                                           lambda k: [pb.PingRequest()] * (args.requests // 2), threads=4)
    finally:
        server.terminate()
        server.wait(timeout=30)

    print("profiling the same kind of models…", flush=True)
    from profiler_worker.job import ProfileJob
    from profiler_worker.measure import measure_job
    from profiler_worker.settings import ProfileSettings
    from seernet.spaces.nasbench201 import NasBench201Space

    profile_s = []
    for config in NasBench201Space().sample_n(args.profile, seed=99):
        t0 = time.perf_counter()
        measure_job(ProfileJob.for_config(config.with_batch(2)), ProfileSettings(time_cap_s=0.5))
        profile_s.append(time.perf_counter() - t0)
    results["profile_seconds_median"] = statistics.median(profile_s)
    results["speedup_vs_uncached_single_p50"] = results["profile_seconds_median"] * 1000 / results["uncached_single"]["p50_ms"]
    results["speedup_vs_uncached_throughput"] = results["profile_seconds_median"] * results["uncached_nb201_per_s"]
    results["speedup_vs_cached_p50"] = results["profile_seconds_median"] * 1000 / results["cached"]["p50_ms"]
    results["cached_p99_over_noop_p99"] = results["cached"]["p99_ms"] / results["noop"]["p99_ms"]
    results["uncached_steps_in_process"] = stages
    results["goals"] = {"cached_p99_le_2x_noop": results["cached_p99_over_noop_p99"] <= 2.0,
                        "uncached_nb201_ge_1000_per_s": results["uncached_nb201_per_s"] >= 1000,
                        "prediction_ge_1000x_faster_than_profiling": results["speedup_vs_uncached_single_p50"] >= 1000}
    path = save("serve", {"note": "server and clients on the same 2-core machine; timings vary 20-50 % with load",
                          **results})
    for key in ("noop", "cached", "cached_bytes", "uncached_single"):
        r = results[key]
        print(f"{key:<16} p50 {r['p50_ms']:.3f} ms  p99 {r['p99_ms']:.3f} ms")
    print(f"cached p99 / no-op p99 = {results['cached_p99_over_noop_p99']:.2f} (goal ≤ 2)")
    print(f"throughput: no-op {results['noop_per_s']:.0f}/s, cached {results['cached_per_s']:.0f}/s, "
          f"uncached NAS-Bench-201 {results['uncached_nb201_per_s']:.0f}/s (goal ≥ 1000)")
    print(f"uncached path, CPU ms per model on one thread: graph build {stages['graph_build']['median_ms']:.2f}, "
          f"strip+hash {stages['strip_and_hash']['median_ms']:.2f}, GNN forward ({stages['members']} members, "
          f"batches of {stages['models']}) {stages['gnn_forward_all_members']['median_ms']:.2f} → at most "
          f"{stages['ceiling_per_core_per_s']:.0f}/s per core before any RPC cost")
    print(f"profiling one model: {results['profile_seconds_median']:.2f} s median → prediction is "
          f"{results['speedup_vs_uncached_single_p50']:.0f}× faster uncached (single request), "
          f"{results['speedup_vs_cached_p50']:.0f}× cached (goal ≥ 1000×)")
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
