"""An operator-tree predictor served like any other: predictions, and an explained breakdown of real kernels."""
from __future__ import annotations

import grpc

from perfseer_client import PerfSeerClient
from perfseer_client.v1 import perfseer_pb2 as pb
from perfseer_client.v1 import perfseer_pb2_grpc as pb_grpc
from seernet.graph_cache import stripped_onnx
from seernet.operator_trees import fit_operator_model, save_operator_model
from seernet.spaces import ModelConfig
from server.app import build_server
from tests.operator_fixtures import profiled_mlps
from tests.server_fixtures import make_settings


def test_the_service_serves_an_operator_predictor_and_explains_fused_kernels(tmp_path):
    samples = profiled_mlps()
    save_operator_model(fit_operator_model(samples), tmp_path / "predictors" / "ops",
                        {"name": "ops", "device_key": "cpu:test:1t"})
    running = build_server(make_settings(tmp_path / "predictors"), watch_interval_s=0.2, max_workers=4)
    try:
        onnx = stripped_onnx(ModelConfig("mlp", {"widths": [64, 32, 16], "activation": "relu", "norm": "none"},
                                         batch_size=2, input_size=64))
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = pb_grpc.PerfSeerStub(channel)
            listed = stub.ListPredictors(pb.ListPredictorsRequest(), timeout=10)
            assert "ops" in [p.name for p in listed.predictors]
            response = stub.PredictPerformance(pb.PredictRequest(onnx=onnx, batch_size=2, explain=True,
                                                                 device="ops"), timeout=30)
        total = {m.name: m.value for m in response.metrics}["infer_time_ms"]
        assert response.predictor == "ops" and total > 0
        kernels = list(response.operators)
        assert kernels and all(a.infer_time_ms >= b.infer_time_ms for a, b in zip(kernels, kernels[1:]))
        assert any(k.op_type == "Gemm" and len(k.fused) == 2 for k in kernels)  # Gemm + its Relu, one kernel
        assert not any(k.op_type == "Relu" for k in kernels)
        with PerfSeerClient(f"127.0.0.1:{running.port}") as client:
            result = client.predict(onnx, batch_size=2, device="ops", explain=3)
        assert result.metrics["infer_time_ms"] == total and len(result.operators) <= 3
    finally:
        running.stop(0.5)
