"""The micro-batcher: a batch request's graphs share forward passes, within the graph and operator caps."""
from __future__ import annotations

import threading

from seernet.predictor import Prediction
from seernet.spaces import SPACES
from server.batcher import MicroBatcher
from server.core import PredictQuery


class RecordingPredictor:
    """Answers each encoded item with its own value and records the size of every pass it was asked for."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.passes: list[int] = []
        self.gate = gate

    def predict_encoded(self, items):
        if self.gate is not None:
            self.gate.wait(5)
        self.passes.append(len(items))
        return [Prediction({"infer_time_ms": float(x)}, {}) for x in items]


def test_items_submitted_together_share_one_pass_in_order():
    batcher, predictor = MicroBatcher(), RecordingPredictor()
    try:
        futures = batcher.submit_many([(predictor, k, 10) for k in range(10)])
        assert [f.result(5).values["infer_time_ms"] for f in futures] == [float(k) for k in range(10)]
        assert predictor.passes == [10]
    finally:
        batcher.close()


def test_the_caps_split_a_large_submission():
    gate = threading.Event()
    batcher, predictor = MicroBatcher(max_batch=4, max_nodes=250), RecordingPredictor(gate)
    try:
        futures = batcher.submit_many([(predictor, k, 100) for k in range(10)])
        gate.set()
        assert [f.result(5).values["infer_time_ms"] for f in futures] == [float(k) for k in range(10)]
        assert sum(predictor.passes) == 10 and max(predictor.passes) == 2  # 250 operators: two graphs a pass
    finally:
        batcher.close()


def test_a_graph_over_the_operator_cap_still_runs_alone():
    batcher, predictor = MicroBatcher(max_nodes=50), RecordingPredictor()
    try:
        futures = batcher.submit_many([(predictor, 1, 500), (predictor, 2, 500)])
        assert [f.result(5).values["infer_time_ms"] for f in futures] == [1.0, 2.0]
        assert predictor.passes == [1, 1]
    finally:
        batcher.close()


def test_an_uncached_batch_request_costs_one_forward_pass(server):
    service = server.service
    before = service.batcher.batches
    queries = [PredictQuery(config=c, batch_size=2) for c in SPACES["nasbench201"].sample_n(12, seed=41)]
    answers = service.predict_many(queries)
    assert all(not isinstance(a, Exception) for a in answers)
    assert service.batcher.batches - before == 1
