"""Hostile input: external-data paths refused and never opened, oversized messages refused,
bad tokens rejected, checkpoints never unpickled."""
from __future__ import annotations

import builtins

import grpc
import onnx
import pytest

from perfseer_client.v1 import perfseer_pb2 as pb
from perfseer_client.v1 import perfseer_pb2_grpc as pb_grpc
from seernet.predictor import Predictor, PredictorLoadError
from server.app import build_server
from tests.onnx_builders import single_op, weight
from tests.server_fixtures import make_settings


def external_model(location: str) -> bytes:
    model = single_op("MatMul", {"x": (1, 16)}, initializers=[weight("w", (16, 16))])
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "1024")):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return model.SerializeToString()


def test_external_data_paths_are_refused_and_never_opened(server, tmp_path, monkeypatch):
    secret = tmp_path / "secret-weights.bin"
    secret.write_bytes(b"\0" * 1024)
    opened = []
    real_open = builtins.open

    def spy(file, *args, **kwargs):
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy)
    stub = pb_grpc.PerfSeerStub(grpc.insecure_channel(f"127.0.0.1:{server.port}"))
    for location in (str(secret), "../../etc/passwd", "/etc/shadow", "secret-weights.bin"):
        with pytest.raises(grpc.RpcError) as info:
            stub.PredictPerformance(pb.PredictRequest(onnx=external_model(location), batch_size=1), timeout=30)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "external" in info.value.details()
    assert not any("secret" in p or "passwd" in p or "shadow" in p for p in opened)


def test_oversized_messages_are_refused(server):
    stub = pb_grpc.PerfSeerStub(grpc.insecure_channel(f"127.0.0.1:{server.port}",
                                                      options=[("grpc.max_send_message_length", 64 * 2**20)]))
    with pytest.raises(grpc.RpcError) as info:
        stub.PredictPerformance(pb.PredictRequest(onnx=b"\x01" * (20 * 2**20), batch_size=1), timeout=30)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert stub.Ping(pb.PingRequest(), timeout=10).server_time_ns > 0  # and the server is fine


def test_bad_token_rejected_when_auth_is_on(predictors_dir):
    settings = make_settings(predictors_dir)
    settings.auth_token = "correct horse"
    running = build_server(settings, watch_interval_s=1.0)
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
        stub = pb_grpc.PerfSeerStub(channel)
        for metadata in ((), (("authorization", "Bearer wrong"),), (("authorization", "correct horse"),)):
            with pytest.raises(grpc.RpcError) as info:
                stub.ListPredictors(pb.ListPredictorsRequest(), timeout=10, metadata=metadata)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        ok = stub.ListPredictors(pb.ListPredictorsRequest(), timeout=10,
                                 metadata=(("authorization", "Bearer correct horse"),))
        assert ok.predictors[0].name == "cpu"
    finally:
        running.stop(0.5)


def test_checkpoints_never_unpickle(tmp_path, trained_predictor):
    import pickle
    import shutil

    target = tmp_path / "evil"
    shutil.copytree(trained_predictor, target)
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (target / "member-0.safetensors").write_bytes(pickle.dumps({"weights": Exploit()}))
    with pytest.raises(PredictorLoadError):
        Predictor.load(target)
    assert not marker.exists()
