"""The light client on its own: model bytes, stripping, the result type, errors and intervals."""
from __future__ import annotations

import math

import grpc
import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from perfseer_client import PerfSeerClient, PerfSeerError
from perfseer_client.client import PredictionResult, model_bytes, relative_interval
from perfseer_client.strip import strip_bytes
from perfseer_client.v1 import perfseer_pb2 as pb


def _model_with_weight(n: int = 64) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", n])
    w = numpy_helper.from_array(np.ones((n, n), dtype=np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g", [x],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_model_bytes_accepts_protos_bytes_and_paths(tmp_path):
    model = _model_with_weight()
    data = model.SerializeToString()
    path = tmp_path / "m.onnx"
    path.write_bytes(data)
    assert model_bytes(model) == model_bytes(data) == model_bytes(path)


def test_stripping_drops_float_weights_and_keeps_shapes():
    data = _model_with_weight(128).SerializeToString()
    stripped = strip_bytes(data)
    assert len(stripped) < len(data) / 10
    kept = onnx.ModelProto.FromString(stripped).graph.initializer[0]
    assert list(kept.dims) == [128, 128]


def test_result_reads_metrics_by_name():
    response = pb.PredictResponse(metrics=[pb.MetricValue(name="infer_time_ms", value=2.0, uncertainty=0.1)],
                                  predictor="cpu", cache_hit=True)
    result = PredictionResult.from_proto(response)
    assert result["infer_time_ms"] == 2.0 and result.cache_hit
    low, high = relative_interval(result, "infer_time_ms")
    assert low < 2.0 < high and math.isclose(low * high, 4.0, rel_tol=1e-6)


def test_an_unreachable_server_is_a_clear_error():
    with PerfSeerClient("127.0.0.1:1", retries=0, timeout_s=1.0) as client:
        with pytest.raises(PerfSeerError) as info:
            client.predict(_model_with_weight())
    assert info.value.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def test_predict_many_gives_the_next_chunk_to_whichever_connection_is_free(monkeypatch):
    """Connections pull chunks as they finish: a connection to a busy server process (here: one that answers
    slowly) takes fewer chunks, the others more, and results come back in the order of the models."""
    import threading
    import time

    client = PerfSeerClient("127.0.0.1:1", connections=2)
    served: dict[int, int] = {0: 0, 1: 0}
    lock = threading.Lock()

    def fake_rpc(method, request, connection=None):
        assert method == "PredictPerformanceBatch" and connection in (0, 1)
        time.sleep(0.2 if connection == 0 else 0.01)  # connection 0 reaches an overloaded process
        with lock:
            served[connection] += 1
        items = [pb.PredictBatchItem(request_id=r.request_id, code=0, response=pb.PredictResponse(
            metrics=[pb.MetricValue(name="infer_time_ms", value=float(r.config.input_size))])) for r in request.requests]
        return pb.PredictBatchResponse(items=items)

    monkeypatch.setattr(client, "_rpc", fake_rpc)
    models = [{"space": "nasbench201", "arch": {}, "input_size": k} for k in range(1, 21)]
    results = client.predict_many(models, chunk=2)
    assert [r["infer_time_ms"] for r in results] == [float(k) for k in range(1, 21)]
    assert served[0] + served[1] == 10 and served[1] >= 6 * served[0]
