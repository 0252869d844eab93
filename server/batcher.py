"""Micro-batching: concurrent requests share one GNN forward pass.

Opportunistic, not timed: the worker takes whatever is queued when it is free
(up to ``max_batch``), so a lone request never waits for company, and under
load requests coalesce by themselves.
"""
from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass

from seernet.graph import PerfGraph
from seernet.predictor import Prediction, Predictor

log = logging.getLogger(__name__)


@dataclass
class _Item:
    predictor: Predictor
    graph: PerfGraph
    future: Future


class MicroBatcher:
    def __init__(self, max_batch: int = 64) -> None:
        self.max_batch = max_batch
        self._queue: queue.Queue[_Item | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="micro-batcher", daemon=True)
        self._thread.start()
        self.batches = 0
        self.items = 0

    def submit(self, predictor: Predictor, graph: PerfGraph) -> Future:
        future: Future = Future()
        self._queue.put(_Item(predictor, graph, future))
        return future

    def predict(self, predictor: Predictor, graph: PerfGraph, timeout_s: float = 30.0) -> Prediction:
        return self.submit(predictor, graph).result(timeout=timeout_s)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            items = [first]
            while len(items) < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                items.append(nxt)
            groups: dict[int, list[_Item]] = {}
            for item in items:
                groups.setdefault(id(item.predictor), []).append(item)
            for group in groups.values():
                try:
                    predictions = group[0].predictor.predict_graphs([i.graph for i in group])
                except Exception as exc:  # surface to each caller, keep the batcher alive
                    log.exception("batched prediction failed")
                    for item in group:
                        item.future.set_exception(exc)
                    continue
                for item, prediction in zip(group, predictions):
                    item.future.set_result(prediction)
            self.batches += 1
            self.items += len(items)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)
