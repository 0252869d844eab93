"""≥ 1,000 malformed or mutated ONNX inputs: each gets INVALID_ARGUMENT or RESOURCE_EXHAUSTED (or, for a
mutation that is still a valid model, an answer); no crash, no hang, server memory stable."""
from __future__ import annotations

import random

import grpc
import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perfseer_client.v1 import perfseer_pb2 as pb
from perfseer_client.v1 import perfseer_pb2_grpc as pb_grpc
from seernet.graph_cache import stripped_onnx
from seernet.spaces import SPACES
from server.app import build_server
from tests.server_fixtures import make_settings

ALLOWED = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED}


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory, trained_predictor):
    import shutil

    root = tmp_path_factory.mktemp("fuzz") / "predictors"
    shutil.copytree(trained_predictor, root / "cpu")
    running = build_server(make_settings(root, max_nodes=500), watch_interval_s=5.0)
    yield running
    running.stop(0.5)


@pytest.fixture(scope="module")
def seeds() -> list[bytes]:
    return [stripped_onnx(c) for c in (SPACES["mlp"].sample_n(1, seed=1)[0], SPACES["nasbench201"].sample_n(1, seed=1)[0],
                                       SPACES["vit"].sample_n(1, seed=1)[0])]


def mutate(data: bytes, rng: random.Random) -> bytes:
    data = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        kind = rng.random()
        pos = rng.randrange(len(data))
        if kind < 0.4:
            data[pos] = rng.randrange(256)
        elif kind < 0.6:
            del data[pos:pos + rng.randint(1, 64)]
        elif kind < 0.8:
            data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        else:
            data = data[:pos]
        if not data:
            break
    return bytes(data)


def check(stub, payload: bytes, outcomes: dict) -> None:
    try:
        stub.PredictPerformance(pb.PredictRequest(onnx=payload, batch_size=2), timeout=30)
        outcomes["answered"] = outcomes.get("answered", 0) + 1
    except grpc.RpcError as exc:
        assert exc.code() in ALLOWED, (exc.code(), exc.details())
        outcomes[exc.code().name] = outcomes.get(exc.code().name, 0) + 1


def test_mutated_models(fuzz_server, seeds):
    stub = pb_grpc.PerfSeerStub(grpc.insecure_channel(f"127.0.0.1:{fuzz_server.port}"))
    rng = random.Random(1234)
    process = psutil.Process()
    outcomes: dict = {}
    for k in range(200):  # warm-up: caches and allocator reach steady state
        check(stub, mutate(seeds[k % 3], rng), outcomes)
    before = process.memory_info().rss
    for k in range(1000):
        check(stub, mutate(seeds[k % 3], rng), outcomes)
    growth_mb = (process.memory_info().rss - before) / 2**20
    print(f"\nfuzz outcomes over 1,200 mutated models: {outcomes}; RSS growth over the last 1,000: {growth_mb:.1f} MB")
    assert sum(outcomes.values()) == 1200
    assert outcomes.get("INVALID_ARGUMENT", 0) > 500
    assert growth_mb < 150
    assert stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.binary(min_size=0, max_size=4096))
def test_arbitrary_bytes(fuzz_server, payload):
    stub = pb_grpc.PerfSeerStub(grpc.insecure_channel(f"127.0.0.1:{fuzz_server.port}"))
    outcomes: dict = {}
    check(stub, payload, outcomes)
    assert "answered" not in outcomes or len(payload) > 100
