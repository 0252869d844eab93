"""The gRPC service on loopback: every RPC, every error code, caching, health and reflection."""
from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from perfseer_client import PerfSeerClient, PerfSeerError
from perfseer_client.v1 import perfseer_pb2 as pb
from perfseer_client.v1 import perfseer_pb2_grpc as pb_grpc
from seernet.graph_cache import stripped_onnx
from seernet.spaces import SPACES
from server.app import build_server
from tests.server_fixtures import make_settings

ARCH = "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|nor_conv_1x1~1|skip_connect~2|"


@pytest.fixture(scope="module")
def model() -> bytes:
    return stripped_onnx(SPACES["cnn"].sample_n(1, seed=3, max_gflops=0.05)[0])


def stub(server) -> pb_grpc.PerfSeerStub:
    return pb_grpc.PerfSeerStub(grpc.insecure_channel(f"127.0.0.1:{server.port}"))


def code_of(call, request) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=30)
    return info.value.code(), info.value.details()


def test_predict_by_bytes_then_by_hash_then_cached(server, model):
    s = stub(server)
    first = s.PredictPerformance(pb.PredictRequest(request_id="r1", onnx=model, batch_size=4), timeout=30)
    assert first.request_id == "r1" and not first.cache_hit and first.predictor == "cpu"
    assert {m.name for m in first.metrics} == {"infer_time_ms", "train_time_ms", "infer_mem_mb", "train_mem_mb"}
    assert all(m.value > 0 for m in first.metrics) and len(first.model_sha256) == 64
    again = s.PredictPerformance(pb.PredictRequest(onnx=model, batch_size=4), timeout=30)
    assert again.cache_hit and [m.value for m in again.metrics] == [m.value for m in first.metrics]
    by_hash = s.PredictPerformance(pb.PredictRequest(model_sha256=first.model_sha256, batch_size=4,
                                                     metrics=["infer_time_ms"]), timeout=30)
    assert by_hash.cache_hit and [m.name for m in by_hash.metrics] == ["infer_time_ms"]
    other_batch = s.PredictPerformance(pb.PredictRequest(model_sha256=first.model_sha256, batch_size=8), timeout=30)
    assert not other_batch.cache_hit


def test_predict_by_config_and_batch_and_stream(server, model):
    s = stub(server)
    config = pb.ModelSpaceConfig(space="nasbench201", arch_json=json.dumps({"arch_str": ARCH}), input_size=32)
    response = s.PredictPerformance(pb.PredictRequest(config=config, batch_size=2), timeout=60)
    assert response.model_sha256.startswith("cfg-") and response.metrics[0].value > 0
    batch = s.PredictPerformanceBatch(pb.PredictBatchRequest(requests=[
        pb.PredictRequest(request_id="a", onnx=model, batch_size=1),
        pb.PredictRequest(request_id="b", onnx=b"not onnx", batch_size=1),
        pb.PredictRequest(request_id="c", config=config, batch_size=-1),
        pb.PredictRequest(request_id="d", config=config, batch_size=2)]), timeout=60)
    assert [i.request_id for i in batch.items] == ["a", "b", "c", "d"]
    assert [i.code for i in batch.items] == [0, grpc.StatusCode.INVALID_ARGUMENT.value[0],
                                             grpc.StatusCode.INVALID_ARGUMENT.value[0], 0]
    assert "not an ONNX model" in batch.items[1].message and "batch_size" in batch.items[2].message
    streamed = list(s.PredictPerformanceStream(iter([pb.PredictRequest(request_id=str(k), onnx=model, batch_size=k)
                                                     for k in (1, 2, 3)]), timeout=60))
    assert [i.request_id for i in streamed] == ["1", "2", "3"] and all(i.code == 0 for i in streamed)


def test_metadata_rpcs_health_and_reflection(server):
    s = stub(server)
    listed = s.ListPredictors(pb.ListPredictorsRequest(), timeout=10).predictors
    assert [p.name for p in listed] == ["cpu"] and listed[0].is_default and listed[0].members == 2
    assert listed[0].test_mape["infer_time_ms"] == 12.5 and listed[0].device_key == "cpu:test-cpu:1t"
    assert s.GetPredictor(pb.GetPredictorRequest(name="cpu"), timeout=10).version == listed[0].version
    assert s.GetPredictor(pb.GetPredictorRequest(name="cpu:test-cpu:1t"), timeout=10).name == "cpu"
    ready = s.ServerReady(pb.ServerReadyRequest(), timeout=10)
    assert ready.ready and list(ready.predictors) == ["cpu"]
    assert s.Ping(pb.PingRequest(), timeout=10).server_time_ns > 0
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "perfseer.v1.PerfSeer"):
        assert health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status == \
            health_pb2.HealthCheckResponse.SERVING
    reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = reflect.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names = {s.name for r in responses for s in r.list_services_response.service}
    assert {"perfseer.v1.PerfSeer", "grpc.health.v1.Health"} <= names


def test_invalid_argument_errors_name_the_problem(server, model):
    s = stub(server)
    cases = [
        (pb.PredictRequest(onnx=b"\x00garbage", batch_size=1), "not an ONNX model"),
        (pb.PredictRequest(onnx=model, batch_size=1, metrics=["latency"]), "unknown metric"),
        (pb.PredictRequest(onnx=model, batch_size=1, metrics=["infer_sm_util"]), "does not predict"),
        (pb.PredictRequest(onnx=model, batch_size=-1), "batch_size"),  # 0: the model's own batch (valid)
        (pb.PredictRequest(onnx=model, batch_size=5000), "batch_size"),
        (pb.PredictRequest(batch_size=1), "names no model"),
        (pb.PredictRequest(config=pb.ModelSpaceConfig(space="nasbench201", arch_json="{oops"), batch_size=1), "JSON"),
        (pb.PredictRequest(config=pb.ModelSpaceConfig(space="resnet", arch_json="{}"), batch_size=1), "unknown model space"),
        (pb.PredictRequest(config=pb.ModelSpaceConfig(space="nasbench201", arch_json='{"arch_str": "|x|"}'),
                           batch_size=1), "arch string"),
    ]
    for request, words in cases:
        code, details = code_of(s.PredictPerformance, request)
        assert code == grpc.StatusCode.INVALID_ARGUMENT, (request, details)
        assert words in details, details


def test_not_found_errors(server, model):
    s = stub(server)
    code, details = code_of(s.PredictPerformance, pb.PredictRequest(onnx=model, batch_size=1, device="tpu-v9"))
    assert code == grpc.StatusCode.NOT_FOUND and "tpu-v9" in details
    code, details = code_of(s.PredictPerformance, pb.PredictRequest(model_sha256="ab" * 32, batch_size=1))
    assert code == grpc.StatusCode.NOT_FOUND and "sha256" in details
    code, details = code_of(s.PredictPerformance, pb.PredictRequest(onnx=model, batch_size=1, predictor_version="nope"))
    assert code == grpc.StatusCode.NOT_FOUND and "version" in details
    code, _ = code_of(s.GetPredictor, pb.GetPredictorRequest(name="gpu"))
    assert code == grpc.StatusCode.NOT_FOUND


def test_resource_exhausted_errors(server, model):
    s = stub(server)
    code, details = code_of(s.PredictPerformance, pb.PredictRequest(onnx=model + b"\x00" * (9 * 2**20), batch_size=1))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "limit" in details
    code, _ = code_of(s.PredictPerformance, pb.PredictRequest(onnx=b"\x00" * (17 * 2**20), batch_size=1))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED  # over the gRPC message limit
    many = pb.PredictBatchRequest(requests=[pb.PredictRequest(onnx=model, batch_size=1)] * 65)
    code, details = code_of(s.PredictPerformanceBatch, many)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "64" in details


def test_unavailable_without_predictors_and_without_redis(tmp_path, model):
    (tmp_path / "empty").mkdir()  # an empty directory serves once a predictor appears; a missing one is refused
    running = build_server(make_settings(tmp_path / "empty"), watch_interval_s=0.2)
    try:
        s = stub(running)
        code, details = code_of(s.PredictPerformance, pb.PredictRequest(onnx=model, batch_size=1))
        assert code == grpc.StatusCode.UNAVAILABLE and "no predictor" in details
        health = health_pb2_grpc.HealthStub(grpc.insecure_channel(f"127.0.0.1:{running.port}"))
        assert health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10).status == \
            health_pb2.HealthCheckResponse.NOT_SERVING
        code, details = code_of(s.SubmitProfilingJob, pb.SubmitProfilingJobRequest(onnx=model, batch_size=1))
        assert code == grpc.StatusCode.UNAVAILABLE and "Redis" in details
    finally:
        running.stop(0.5)


def test_profiling_jobs_through_redis(predictors_dir, redis_server, model):
    running = build_server(make_settings(predictors_dir, redis_server.url), watch_interval_s=0.2)
    try:
        s = stub(running)
        job_id = s.SubmitProfilingJob(pb.SubmitProfilingJobRequest(onnx=model, batch_size=2), timeout=30).job_id
        status = s.GetJob(pb.GetJobRequest(job_id=job_id), timeout=10)
        assert status.status == "queued" and status.attempts == 0
        config = pb.ModelSpaceConfig(space="nasbench201", arch_json=json.dumps({"arch_str": ARCH}))
        assert s.SubmitProfilingJob(pb.SubmitProfilingJobRequest(config=config, batch_size=4), timeout=30).job_id
        code, _ = code_of(s.GetJob, pb.GetJobRequest(job_id="missing"))
        assert code == grpc.StatusCode.NOT_FOUND
        code, details = code_of(s.SubmitProfilingJob, pb.SubmitProfilingJobRequest(onnx=b"junk", batch_size=1))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        code, details = code_of(s.SubmitProfilingJob, pb.SubmitProfilingJobRequest(onnx=model, batch_size=1,
                                                                                     device="tpu"))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "tpu" in details
    finally:
        running.stop(0.5)


def test_new_predictor_version_misses_the_cache_and_swaps_live(server, predictors_dir, second_version, model):
    client = PerfSeerClient(f"127.0.0.1:{server.port}")
    first = client.predict(model, batch_size=2)
    assert client.predict(model, batch_size=2).cache_hit
    failures, stop = [], threading.Event()

    def hammer() -> None:
        local = PerfSeerClient(f"127.0.0.1:{server.port}", retries=0)
        while not stop.is_set():
            try:
                local.predict(model, batch_size=3)
            except PerfSeerError as exc:
                failures.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    staging = predictors_dir / ".staging-cpu"
    shutil.copytree(second_version, staging)
    live = predictors_dir / "cpu"
    old = predictors_dir / ".old-cpu"
    live.rename(old)
    staging.rename(live)
    deadline = time.time() + 15
    while time.time() < deadline and client.predict(model, batch_size=2).predictor_version == first.predictor_version:
        time.sleep(0.1)
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join()
    swapped = client.predict(model, batch_size=2)
    assert swapped.predictor_version != first.predictor_version
    assert failures == []
    second = client.predict(model, batch_size=5)
    assert not second.cache_hit and client.predict(model, batch_size=5).cache_hit


def test_codegen_reproduces_the_checked_in_code(tmp_path):
    from perfseer_client import codegen

    for path in codegen.generate(tmp_path):
        assert path.read_text() == (codegen.OUT / path.name).read_text(), f"{path.name} is stale: run `make proto`"


def test_batch_zero_predicts_a_fixed_batch_model_at_its_own_batch(server):
    from tests.seernet.test_static_batch import Net, export

    s = stub(server)
    model = export(Net(), 8)
    response = s.PredictPerformance(pb.PredictRequest(onnx=model), timeout=30)
    assert response.batch_size == 8
    again = s.PredictPerformance(pb.PredictRequest(onnx=model), timeout=30)
    assert again.cache_hit and again.batch_size == 8
    assert s.PredictPerformance(pb.PredictRequest(onnx=model, batch_size=2), timeout=30).batch_size == 2


def test_predictions_on_a_gpu_by_name_and_by_spec(tmp_path, predictors_dir, model):
    """The GPU kernel cost model through the service: device 'gpu:NAME', or any GPU by its spec."""
    shipped = Path(__file__).resolve().parents[2] / "predictors" / "gpu"
    if not (shipped / "manifest.json").exists():
        pytest.skip("no shipped GPU predictor")
    shutil.copytree(shipped, predictors_dir / "gpu")
    running = build_server(make_settings(predictors_dir), watch_interval_s=0.2)
    try:
        s = stub(running)
        by_name = s.PredictPerformance(pb.PredictRequest(onnx=model, batch_size=8, device="gpu:Tesla T4"), timeout=30)
        values = {m.name: m.value for m in by_name.metrics}
        assert set(values) == {"infer_time_ms", "train_time_ms"} and values["train_time_ms"] > values["infer_time_ms"]
        spec = pb.GpuSpec(name="Future GPU", memory_gb=192, bandwidth_gbs=8000, sms=160, cores_per_sm=128,
                          clock_mhz=2000, fp32_gflops=80000, l2_mb=96)
        fast = s.PredictPerformance(pb.PredictRequest(onnx=model, batch_size=8, gpu_spec=spec), timeout=30)
        assert fast.metrics[0].value < by_name.metrics[0].value and fast.predictor == "gpu"
        assert s.PredictPerformance(pb.PredictRequest(onnx=model, batch_size=8, gpu_spec=spec), timeout=30).cache_hit
        code, details = code_of(s.PredictPerformance, pb.PredictRequest(onnx=model, device="gpu:RTX 9090"))
        assert code == grpc.StatusCode.NOT_FOUND and "unknown GPU" in details
        code, details = code_of(s.PredictPerformance, pb.PredictRequest(onnx=model, gpu_spec=pb.GpuSpec(name="x")))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "gpu_spec" in details
        listed = {p.name: p for p in s.ListPredictors(pb.ListPredictorsRequest(), timeout=10).predictors}
        assert listed["gpu"].device_key.startswith("gpu:") and "Tesla_T4" in listed["gpu"].device_key
        assert "infer_time_ms" in listed["gpu"].metrics and listed["cpu"].is_default
    finally:
        running.stop(0.5)


def test_a_gpu_calibrated_by_measured_runs_is_served_by_its_name(tmp_path, predictors_dir, model):
    """``perfseer fit --gpu-spec`` writes a calibrated copy of the GPU predictor; the service answers that GPU,
    by name or by spec, from the calibrated copy, and every other GPU as before."""
    from seernet.gpu.calibration import MeasuredRun, calibrate_gpu, save_calibrated
    from seernet.gpu.predictor import GpuPredictor
    from seernet.gpu.specs import GpuSpec

    shipped = Path(__file__).resolve().parents[2] / "predictors" / "gpu"
    if not (shipped / "manifest.json").exists():
        pytest.skip("no shipped GPU predictor")
    shutil.copytree(shipped, predictors_dir / "gpu")
    fields = dict(name="Lab GPU", memory_gb=24, bandwidth_gbs=600, sms=60, cores_per_sm=128, clock_mhz=1800,
                  fp32_gflops=27000, l2_mb=32)
    gpu = GpuSpec.from_dict(fields)
    base = GpuPredictor.load(shipped)
    plain = base.predict(model, gpu, 8)
    calibrated, report = calibrate_gpu(base, gpu, [MeasuredRun(model, 8, {}, {"infer_time_ms": 3 * plain["infer_time_ms"]})])
    assert report["infer_time_ms"]["scale"] == pytest.approx(3.0) and report["train_time_ms"]["runs"] == 0
    save_calibrated(calibrated, shipped, predictors_dir / "gpu-lab", "gpu-lab")
    running = build_server(make_settings(predictors_dir), watch_interval_s=0.2)
    try:
        s = stub(running)
        for request in (pb.PredictRequest(onnx=model, batch_size=8, device="gpu:Lab GPU"),
                        pb.PredictRequest(onnx=model, batch_size=8, gpu_spec=pb.GpuSpec(**fields))):
            answer = s.PredictPerformance(request, timeout=30)
            values = {m.name: m.value for m in answer.metrics}
            assert answer.predictor == "gpu-lab"
            assert values["infer_time_ms"] == pytest.approx(3 * plain["infer_time_ms"], rel=1e-4)
            assert values["train_time_ms"] == pytest.approx(3 * plain["train_time_ms"], rel=1e-4)
        other = s.PredictPerformance(pb.PredictRequest(onnx=model, batch_size=8, device="gpu:Tesla T4"), timeout=30)
        assert other.predictor == "gpu"
    finally:
        running.stop(0.5)


def test_explain_says_where_the_time_goes(server, model):
    s = stub(server)
    response = s.PredictPerformance(pb.PredictRequest(onnx=model, batch_size=2, explain=True, explain_top_k=3),
                                    timeout=30)
    ops = list(response.operators)
    assert 1 <= len(ops) <= 3 and ops[0].node and ops[0].op_type
    assert all(a.infer_time_ms >= b.infer_time_ms for a, b in zip(ops, ops[1:]))
    total = {m.name: m.value for m in response.metrics}["infer_time_ms"]
    assert sum(o.infer_time_ms for o in ops) <= total * 1.0001 and all(0 <= o.share <= 1 for o in ops)
    cached = s.PredictPerformance(pb.PredictRequest(onnx=model, batch_size=2, explain=True), timeout=30)
    assert cached.cache_hit and len(cached.operators) >= len(ops)  # a cached answer is still explained
    plain = s.PredictPerformance(pb.PredictRequest(onnx=model, batch_size=2), timeout=30)
    assert not plain.operators
    code, details = code_of(s.PredictPerformance, pb.PredictRequest(onnx=model, explain=True, explain_top_k=-1))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "explain_top_k" in details
    with PerfSeerClient(f"127.0.0.1:{server.port}") as client:
        result = client.predict(model, batch_size=2, explain=2)
    assert len(result.operators) == 2 and set(result.operators[0]) == {"node", "op_type", "infer_time_ms", "share",
                                                                        "fused"}
