"""Redis going away, auth, and the client's model inputs (torch modules exported lazily)."""
from __future__ import annotations

import grpc
import pytest
import torch

from perfseer_client import PerfSeerClient, PerfSeerError, PerfSeerProfiler, model_bytes
from seernet.graph_cache import stripped_onnx
from seernet.spaces import SPACES
from server.app import build_server
from tests.server_fixtures import make_settings


@pytest.fixture(scope="module")
def model() -> bytes:
    return stripped_onnx(SPACES["mlp"].sample_n(1, seed=3)[0])


def test_redis_down_still_answers_and_caching_resumes(predictors_dir, redis_server, model):
    running = build_server(make_settings(predictors_dir, redis_server.url), watch_interval_s=0.2)
    try:
        client = PerfSeerClient(f"127.0.0.1:{running.port}", retries=0)
        assert running.service.cache.kind == "redis"
        assert not client.predict(model, batch_size=2).cache_hit
        assert client.predict(model, batch_size=2).cache_hit
        redis_server.stop()
        for batch in (2, 3, 3):  # answered, uncached, while Redis is down
            assert not client.predict(model, batch_size=batch).cache_hit
        assert running.service.cache.errors >= 1
        redis_server.start()
        import time

        time.sleep(1.2)  # the cache retries Redis after its back-off
        client.predict(model, batch_size=4)
        assert client.predict(model, batch_size=4).cache_hit
    finally:
        running.stop(0.5)


def test_token_auth(predictors_dir, model):
    settings = make_settings(predictors_dir)
    settings.auth_token = "s3cret"
    running = build_server(settings, watch_interval_s=0.2)
    try:
        target = f"127.0.0.1:{running.port}"
        with pytest.raises(PerfSeerError) as info:
            PerfSeerClient(target, retries=0).predict(model)
        assert info.value.code == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(PerfSeerError) as info:
            PerfSeerClient(target, token="wrong", retries=0).predict(model)
        assert info.value.code == grpc.StatusCode.UNAUTHENTICATED
        assert PerfSeerClient(target, token="s3cret").predict(model).metrics["infer_time_ms"] > 0
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        health = health_pb2_grpc.HealthStub(grpc.insecure_channel(target))
        assert health.Check(health_pb2.HealthCheckRequest(), timeout=10).status == \
            health_pb2.HealthCheckResponse.SERVING
    finally:
        running.stop(0.5)


def test_client_accepts_torch_modules_paths_and_protos(server, tmp_path):
    import onnx

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), torch.nn.Linear(8, 10))
    client = PerfSeerClient(f"127.0.0.1:{server.port}")
    from_module = client.predict(net, batch_size=2, input_shape=(3, 32, 32))
    assert from_module.metrics["infer_time_ms"] > 0
    data = model_bytes(net, input_shape=(3, 32, 32))
    path = tmp_path / "net.onnx"
    path.write_bytes(data)
    assert client.predict(path, batch_size=2).metrics == from_module.metrics
    assert client.predict(onnx.load(str(path)), batch_size=2).cache_hit
    with pytest.raises(ValueError, match="input_shape"):
        client.predict(net)
    with pytest.raises(TypeError):
        client.predict(12345)
    profiler = PerfSeerProfiler(client, input_shape=(3, 32, 32), batch_size=2)
    assert profiler(net) == pytest.approx(from_module.metrics["infer_time_ms"])
    assert profiler.profile_many([path, b"junk"])[0] > 0


def test_client_retries_unavailable_then_gives_up():
    client = PerfSeerClient("127.0.0.1:1", retries=2, backoff_s=0.01, timeout_s=2)
    with pytest.raises(PerfSeerError) as info:
        client.ready()
    assert info.value.code == grpc.StatusCode.UNAVAILABLE
