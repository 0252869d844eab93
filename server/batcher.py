"""Micro-batching: concurrent requests share one GNN forward pass.

Opportunistic, not timed: the worker takes whatever is queued when it is free
(up to ``max_batch`` graphs and ``max_nodes`` operators), so a lone request
never waits for company, and under load requests coalesce by themselves.
The thread runs the network only: graphs arrive built and encoded by the
request's own thread, so a request that is expensive to build never holds up
the others here.
"""
from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass

from seernet.predictor import Predictor

log = logging.getLogger(__name__)


@dataclass
class _Item:
    predictor: Predictor
    encoded: object  # Predictor.encode(graph)
    nodes: int
    future: Future


class MicroBatcher:
    def __init__(self, max_batch: int = 64, max_nodes: int = 60_000) -> None:
        self.max_batch = max_batch
        self.max_nodes = max_nodes
        # each entry is one caller's items, queued together so that a batch request's graphs share passes
        self._queue: queue.Queue[list[_Item] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="micro-batcher", daemon=True)
        self._thread.start()
        self.batches = 0
        self.items = 0

    def submit(self, predictor: Predictor, encoded: object, nodes: int) -> Future:
        return self.submit_many([(predictor, encoded, nodes)])[0]

    def submit_many(self, jobs: list[tuple[Predictor, object, int]]) -> list[Future]:
        """Queue several graphs at once (one entry): the batcher never takes the first of them alone."""
        items = [_Item(predictor, encoded, nodes, Future()) for predictor, encoded, nodes in jobs]
        if items:
            self._queue.put(items)
        return [item.future for item in items]

    def _take(self, backlog: deque[_Item]) -> tuple[list[_Item], bool]:
        """What is queued now, up to the graph and operator caps (the rest stays in ``backlog``); True when
        the batcher was told to stop."""
        items: list[_Item] = []
        nodes = 0
        while True:
            while backlog and len(items) < self.max_batch and (not items or nodes + backlog[0].nodes <= self.max_nodes):
                item = backlog.popleft()
                items.append(item)
                nodes += item.nodes
            if backlog or len(items) >= self.max_batch:
                return items, False
            try:
                entry = self._queue.get_nowait()
            except queue.Empty:
                return items, False
            if entry is None:
                return items, True
            backlog.extend(entry)

    def _run(self) -> None:
        stopping = False
        backlog: deque[_Item] = deque()
        while backlog or not stopping:
            if not backlog:
                entry = self._queue.get()
                if entry is None:
                    return
                backlog.extend(entry)
            items, stop = self._take(backlog)
            stopping = stopping or stop
            groups: dict[int, list[_Item]] = {}
            for item in items:
                groups.setdefault(id(item.predictor), []).append(item)
            for group in groups.values():
                try:
                    predictions = group[0].predictor.predict_encoded([i.encoded for i in group])
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
