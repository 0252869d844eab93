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


def test_a_batch_request_reads_and_writes_redis_once_for_all_its_items(predictors_dir, redis_server, model):
    """Batch requests look their items up with one MGET and store the new answers with one pipeline (a
    round trip per item cost more than a NAS-Bench-201 graph): every item is answered and cached, repeats
    hit, and with Redis gone the same batch is still answered, uncached."""
    import redis

    configs = [{"space": "nasbench201", "arch": {"arch_str": a}, "input_size": 32} for a in (
        "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|",
        "|avg_pool_3x3~0|+|nor_conv_3x3~0|none~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|")]
    running = build_server(make_settings(predictors_dir, redis_server.url), watch_interval_s=0.2)
    try:
        client = PerfSeerClient(f"127.0.0.1:{running.port}", retries=0)
        items = [model, *configs]
        first = client.predict_many(items, batch_size=2)
        assert [r.cache_hit for r in first] == [False, False, False]
        store = redis.Redis.from_url(redis_server.url)
        assert len(store.keys("perfseer:pred:*")) == 3
        second = client.predict_many(items, batch_size=2)
        assert [r.cache_hit for r in second] == [True, True, True]
        calls = {name: stats["calls"] for name, stats in store.info("commandstats").items()}
        # one look-up per batch request (the one GET: the model store's, for the ONNX item's hash), and the first
        # batch's three answers written together (the fourth SET: the model store keeping the ONNX model)
        assert calls.get("cmdstat_mget") == 2 and calls.get("cmdstat_get", 0) <= 1
        assert calls.get("cmdstat_set") == 4
        assert [r.metrics for r in second] == [r.metrics for r in first]
        redis_server.stop()
        third = client.predict_many(items, batch_size=2)
        assert [r.cache_hit for r in third] == [False, False, False]
        assert [r.metrics for r in third] == [r.metrics for r in first]
    finally:
        running.stop(0.5)
