"""The prediction service's domain logic, free of gRPC: queries in, answers or ServiceErrors out."""
from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field

from perfseer.config import Limits
from profiler_worker.job import METRICS, ProfileJob
from seernet.graph import build_graph
from seernet.spaces import ModelConfig, get_space
from seernet.strip import strip_bytes

from .batcher import MicroBatcher
from .cache import PredictionCache
from .errors import exhausted, invalid, not_found, unavailable
from .metrics import CACHE
from .models import ModelStore, sha256_hex
from .registry import PredictorRegistry

log = logging.getLogger(__name__)


@dataclass
class PredictQuery:
    request_id: str = ""
    onnx: bytes | None = None
    config: ModelConfig | None = None
    model_sha256: str = ""
    batch_size: int = 1
    device: str = ""
    metrics: tuple[str, ...] = ()
    predictor_version: str = ""
    dims: dict[str, int] = field(default_factory=dict)


@dataclass
class _Prepared:
    query: PredictQuery
    predictor: object
    sha: str
    source: object
    key: str
    cached: dict | None
    started: float
    graph: object = None


@dataclass
class PredictAnswer:
    request_id: str
    values: dict[str, float]
    uncertainty: dict[str, float]
    predictor: str
    predictor_version: str
    cache_hit: bool
    model_sha256: str
    server_ms: float


class PredictionService:
    def __init__(self, registry: PredictorRegistry, cache: PredictionCache, models: ModelStore, limits: Limits,
                 batcher: MicroBatcher | None = None, job_queue=None, profile_uncertain_above: float = 0.0) -> None:
        self.registry = registry
        self.cache = cache
        self.models = models
        self.limits = limits
        self.batcher = batcher or MicroBatcher()
        self.job_queue = job_queue
        self.profile_uncertain_above = profile_uncertain_above
        self.stats = {"requests": 0, "cache_hits": 0, "profiling_requested": 0}

    # ------------------------------------------------------------------ model identity
    def _model_source(self, query: PredictQuery) -> tuple[str, bytes | ModelConfig]:
        if query.onnx is not None:
            if len(query.onnx) > self.limits.max_model_bytes:
                raise exhausted(f"model is {len(query.onnx):,} bytes, over the {self.limits.max_model_bytes:,}-byte limit")
            return sha256_hex(query.onnx), query.onnx
        if query.config is not None:
            try:
                get_space(query.config.space)
            except ValueError as exc:
                raise invalid(str(exc)) from None
            return "cfg-" + sha256_hex(query.config.with_batch(1).to_json().encode()), query.config
        if query.model_sha256:
            sha = query.model_sha256.lower()
            found = self.models.lookup(sha)
            if found is None:
                raise not_found(f"no model with sha256 {sha} has been sent to this server; send the ONNX bytes once")
            return sha, found
        raise invalid("request names no model: set onnx, config or model_sha256")

    def _graph(self, sha: str, source: bytes | ModelConfig, query: PredictQuery):
        def build():
            if isinstance(source, ModelConfig):
                from seernet.graph_cache import stripped_onnx

                try:
                    onnx_bytes = stripped_onnx(source)
                except (ValueError, KeyError, TypeError, RuntimeError) as exc:
                    raise invalid(f"cannot build model from config: {type(exc).__name__}: {exc}") from None
            else:
                onnx_bytes = source
            graph = build_graph(onnx_bytes, batch_size=query.batch_size, dims=query.dims, limits=self.limits)
            if not isinstance(source, ModelConfig) and self.models.lookup(sha) is None:
                self.models.remember(sha, strip_bytes(onnx_bytes))
            return graph

        return self.models.graph(sha, query.batch_size, query.dims, False, build)

    # ------------------------------------------------------------------ predict
    def _prepare(self, query: PredictQuery) -> _Prepared:
        """Validate, resolve the predictor, identify the model, look up the cache, build the graph on a miss."""
        started = time.perf_counter()
        self.stats["requests"] += 1
        if not isinstance(query.batch_size, int) or not 1 <= query.batch_size <= self.limits.max_batch_size:
            raise invalid(f"batch_size must be in 1..{self.limits.max_batch_size}, got {query.batch_size}")
        unknown = [m for m in query.metrics if m not in METRICS]
        if unknown:
            raise invalid(f"unknown metric(s) {unknown}; known: {list(METRICS)}")
        predictor = self.registry.resolve(query.device)
        if query.predictor_version and query.predictor_version != predictor.version:
            raise not_found(f"predictor {predictor.name} serves version {predictor.version}, "
                            f"not {query.predictor_version}")
        missing = [m for m in query.metrics if m not in predictor.metrics]
        if missing:
            raise invalid(f"predictor {predictor.name} does not predict {missing}; it predicts {list(predictor.metrics)}")
        sha, source = self._model_source(query)
        key = f"{predictor.name}:{predictor.version}:{sha}:{query.batch_size}:{predictor.device_key}:" \
              f"{json.dumps(query.dims, sort_keys=True)}"
        cached = self.cache.get(key)
        CACHE.labels("hit" if cached is not None else "miss").inc()
        prepared = _Prepared(query, predictor, sha, source, key, cached, started)
        if cached is None:
            prepared.graph = self._graph(sha, source, query)
        else:
            self.stats["cache_hits"] += 1
        return prepared

    def _finish(self, prepared: _Prepared, values: dict, uncertainty: dict, hit: bool) -> PredictAnswer:
        query, predictor = prepared.query, prepared.predictor
        wanted = query.metrics or predictor.metrics
        return PredictAnswer(query.request_id, {m: values[m] for m in wanted},
                             {m: uncertainty.get(m, math.nan) for m in wanted}, predictor.name, predictor.version,
                             hit, prepared.sha, (time.perf_counter() - prepared.started) * 1000.0)

    def predict(self, query: PredictQuery) -> PredictAnswer:
        answer = self.predict_many([query])[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def predict_many(self, queries: list[PredictQuery]) -> list[PredictAnswer | Exception]:
        """Answers in order; a bad item is its exception in place, never a failed batch.

        Every cache miss is submitted to the micro-batcher before any is awaited,
        so a batch of N uncached models costs a few GNN forward passes, not N.
        """
        results: list[PredictAnswer | Exception | None] = [None] * len(queries)
        pending: list[tuple[int, _Prepared, object]] = []
        for i, query in enumerate(queries):
            try:
                prepared = self._prepare(query)
            except Exception as exc:  # reported per item
                results[i] = exc
                continue
            if prepared.cached is not None:
                results[i] = self._finish(prepared, prepared.cached["values"], prepared.cached["uncertainty"], True)
            else:
                pending.append((i, prepared, self.batcher.submit(prepared.predictor, prepared.graph)))
        for i, prepared, future in pending:
            try:
                prediction = future.result(timeout=60)
            except Exception as exc:
                results[i] = exc
                continue
            self.cache.put(prepared.key, {"values": prediction.values, "uncertainty": prediction.uncertainty})
            self._maybe_request_profiling(prepared.query, prepared.source, prediction.uncertainty)
            results[i] = self._finish(prepared, prediction.values, prediction.uncertainty, False)
        return results  # type: ignore[return-value]

    def _maybe_request_profiling(self, query: PredictQuery, source: bytes | ModelConfig,
                                 uncertainty: dict[str, float]) -> None:
        """Turn the predictions we are least sure of into profiling jobs, so workers measure them."""
        if not self.job_queue or self.profile_uncertain_above <= 0:
            return
        worst = max((u for u in uncertainty.values() if u == u), default=0.0)
        if worst < self.profile_uncertain_above:
            return
        try:
            config = source.with_batch(query.batch_size) if isinstance(source, ModelConfig) else None
            job = (ProfileJob.for_config(config) if config is not None
                   else ProfileJob(onnx_bytes=source, batch_size=query.batch_size))
            self.job_queue.submit(job)
            self.stats["profiling_requested"] += 1
        except Exception as exc:  # asking for a measurement is best effort
            log.warning("could not queue a profiling job: %s", exc)

    # ------------------------------------------------------------------ jobs
    def submit_job(self, onnx: bytes | None, config: ModelConfig | None, batch_size: int, device: str) -> str:
        if self.job_queue is None:
            raise unavailable("profiling jobs need Redis: start the server with --redis")
        if not 1 <= batch_size <= self.limits.max_batch_size:
            raise invalid(f"batch_size must be in 1..{self.limits.max_batch_size}, got {batch_size}")
        if device and not (device == "cpu" or device.startswith("cuda")):
            raise invalid(f"unknown device {device!r}; use cpu, cuda or cuda:N")
        if onnx is not None:
            if len(onnx) > self.limits.max_model_bytes:
                raise exhausted(f"model is {len(onnx):,} bytes, over the {self.limits.max_model_bytes:,}-byte limit")
            build_graph(onnx, batch_size=batch_size, limits=self.limits)  # validate before queueing
            job = ProfileJob(onnx_bytes=onnx, batch_size=batch_size, device=device or "cpu")
        elif config is not None:
            try:
                get_space(config.space)
            except ValueError as exc:
                raise invalid(str(exc)) from None
            job = ProfileJob.for_config(config.with_batch(batch_size), device or "cpu")
        else:
            raise invalid("a profiling job needs onnx or config")
        return self.job_queue.submit(job)

    def job_status(self, job_id: str) -> dict:
        if self.job_queue is None:
            raise unavailable("profiling jobs need Redis: start the server with --redis")
        status = self.job_queue.status(job_id)
        if status is None:
            raise not_found(f"no job {job_id!r}")
        return status
