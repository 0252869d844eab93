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


def test_large_graphs_take_their_own_lane(server):
    """A graph over the large-graph threshold goes to the large batcher and is answered like any other; the
    small ones of the same batch request still share one pass in the shared batcher."""
    service = server.service
    configs = SPACES["nasbench201"].sample_n(4, seed=43)
    expected = [a.values for a in service.predict_many([PredictQuery(config=c, batch_size=3) for c in configs])]
    small_before, large_before = service.batcher.batches, service.large_batcher.batches
    threshold = service.large_graph_rows
    try:
        service.large_graph_rows = 0  # every graph is "large" now
        answers = service.predict_many([PredictQuery(config=c, batch_size=5) for c in configs[:2]])
    finally:
        service.large_graph_rows = threshold
    assert all(not isinstance(a, Exception) for a in answers)
    assert service.large_batcher.batches - large_before == 2  # one pass each, alone
    assert service.batcher.batches == small_before
    assert all(a.values.keys() == expected[0].keys() for a in answers)


def test_too_many_large_graphs_at_once_are_refused_not_queued(server):
    """While the large lane's slots are taken, a further large graph is RESOURCE_EXHAUSTED (that item only);
    small requests are unaffected."""
    import grpc

    from server.errors import ServiceError

    service = server.service
    configs = SPACES["nasbench201"].sample_n(2, seed=47)
    taken = 0
    while service._large_slots.acquire(blocking=False):
        taken += 1
    threshold = service.large_graph_rows
    try:
        service.large_graph_rows = 0
        refused = service.predict_many([PredictQuery(config=configs[0], batch_size=7)])[0]
        service.large_graph_rows = threshold
        small = service.predict_many([PredictQuery(config=configs[1], batch_size=7)])[0]
    finally:
        service.large_graph_rows = threshold
        for _ in range(taken):
            service._large_slots.release()
    assert isinstance(refused, ServiceError) and refused.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "too many large models" in str(refused)
    assert not isinstance(small, Exception)
