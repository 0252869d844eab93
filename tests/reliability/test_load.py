"""Load: 50 concurrent clients × 200 requests mixing cached, uncached and batch calls → 0 errors.
And Redis killed mid-load, then restarted → 0 failed RPCs, caching resumes."""
from __future__ import annotations

import statistics
import threading
import time

import grpc
import pytest

from perfseer_client.v1 import perfseer_pb2 as pb
from perfseer_client.v1 import perfseer_pb2_grpc as pb_grpc
from seernet.graph_cache import stripped_onnx
from seernet.spaces import SPACES
from server.app import build_server
from tests.server_fixtures import make_settings

CLIENTS, REQUESTS = 50, 200


@pytest.fixture(scope="module")
def models() -> list[bytes]:
    return [stripped_onnx(c) for c in SPACES["mlp"].sample_n(12, seed=21)]


def run_load(port: int, models: list[bytes], clients: int, requests: int, during=None) -> tuple[list, list[float]]:
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = pb_grpc.PerfSeerStub(channel)
    errors, latencies, lock = [], [], threading.Lock()

    def client(k: int) -> None:
        mine = []
        for i in range(requests):
            kind = (k + i) % 4
            t0 = time.perf_counter()
            try:
                if kind == 0:  # cached after the first time: the same model at batch 1
                    stub.PredictPerformance(pb.PredictRequest(onnx=models[0], batch_size=1), timeout=60)
                elif kind == 3:  # a small batch call
                    response = stub.PredictPerformanceBatch(pb.PredictBatchRequest(requests=[
                        pb.PredictRequest(onnx=models[(k + i + j) % len(models)], batch_size=1 + j) for j in range(3)]),
                        timeout=60)
                    assert all(item.code == 0 for item in response.items), [i.message for i in response.items]
                else:  # mostly uncached: many (model, batch) pairs
                    stub.PredictPerformance(pb.PredictRequest(onnx=models[(k * 7 + i) % len(models)],
                                                              batch_size=1 + (k * requests + i) % 64), timeout=60)
            except Exception as exc:
                with lock:
                    errors.append(repr(exc))
            mine.append((time.perf_counter() - t0) * 1000)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    if during is not None:
        during()
    for t in threads:
        t.join()
    channel.close()
    return errors, latencies


def report(name: str, latencies: list[float], errors: list) -> None:
    ordered = sorted(latencies)
    print(f"\n{name}: {len(ordered)} requests, {len(errors)} errors, p50 {statistics.median(ordered):.1f} ms, "
          f"p99 {ordered[int(0.99 * (len(ordered) - 1))]:.1f} ms")


def test_fifty_clients_mixed_load_has_no_errors(predictors_dir, models):
    running = build_server(make_settings(predictors_dir), watch_interval_s=1.0, max_workers=32)
    try:
        errors, latencies = run_load(running.port, models, CLIENTS, REQUESTS)
        report("load", latencies, errors)
        assert errors == [] and len(latencies) == CLIENTS * REQUESTS
        assert running.service.batcher.items > running.service.batcher.batches  # requests were coalesced
    finally:
        running.stop(1.0)


def test_redis_killed_mid_load_then_restarted(predictors_dir, redis_server, models):
    running = build_server(make_settings(predictors_dir, redis_server.url), watch_interval_s=1.0, max_workers=32)
    try:
        def chaos() -> None:
            time.sleep(1.0)
            redis_server.stop()
            time.sleep(2.0)
            redis_server.start()

        errors, latencies = run_load(running.port, models, 20, 150, during=chaos)
        report("redis chaos", latencies, errors)
        assert errors == []
        assert running.service.cache.errors > 0  # Redis really was down during the load
        time.sleep(1.5)
        stub = pb_grpc.PerfSeerStub(grpc.insecure_channel(f"127.0.0.1:{running.port}"))
        request = pb.PredictRequest(onnx=models[1], batch_size=77)
        stub.PredictPerformance(request, timeout=30)
        assert stub.PredictPerformance(request, timeout=30).cache_hit  # caching resumed in Redis
    finally:
        running.stop(1.0)
