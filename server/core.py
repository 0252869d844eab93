"""The prediction service's domain logic, free of gRPC: queries in, answers or ServiceErrors out.

Every request's cost is bounded before the work: sizes and counts are checked
first (``seernet.settings.Limits``), graphs are built in a bounded pool within
a CPU budget, the batching thread only runs the network, and only finite,
plausible answers are returned or cached.
"""
from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Callable, TypeVar

import onnx

from profiler_worker.job import METRICS, ProfileJob
from seernet.errors import LimitExceededError
from seernet.gpu.specs import GpuSpec, GpuSpecError
from seernet.graph import PerfGraph, build_graph, build_graph_and_model
from seernet.metrics import unit_of
from seernet.settings import Limits
from seernet.spaces import ModelConfig, check_config, get_space
from seernet.strip import strip_weights

from .batcher import MicroBatcher
from .cache import PredictionCache
from .errors import exhausted, invalid, not_found, unavailable
from .jobs import JobService
from .lru import LRU
from .metrics import CACHE
from .models import ModelStore, sha256_hex
from .registry import PredictorRegistry
from .settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
DEVICE_RE = re.compile(r"^(cpu|cuda(:[0-9]{1,2})?)$")


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
    gpu_spec: GpuSpec | None = None  # predict on this GPU (the GPU kernel cost model), as does device "gpu:NAME"
    explain: bool = False  # also say where the time goes, per operator
    explain_top_k: int = 0  # 0: the server's default


@dataclass
class _Prepared:
    query: PredictQuery
    predictor: object
    sha: str
    source: object
    key: str
    cached: dict | None
    started: float
    graph: PerfGraph | None = None
    batch_size: int = 0  # the batch predicted (the model's own when the request asked 0)


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
    batch_size: int = 0
    operators: list[dict] = field(default_factory=list)


class BuildPool:
    """Graph builds run here, a few at a time, with a bounded queue behind them: a flood of expensive
    models is refused (RESOURCE_EXHAUSTED) instead of piling up, and the batching thread never builds."""

    def __init__(self, workers: int, queue: int, timeout_s: float = 30.0) -> None:
        self._executor = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="graph-build")
        self._slots = threading.BoundedSemaphore(max(1, workers) + max(0, queue))
        self.timeout_s = timeout_s

    def run(self, fn: Callable[[], T]) -> T:
        if not self._slots.acquire(blocking=False):
            raise exhausted("the server is building too many graphs at once; retry later")
        try:
            future = self._executor.submit(fn)
        except RuntimeError:
            self._slots.release()
            raise unavailable("the server is shutting down") from None
        future.add_done_callback(lambda _: self._slots.release())
        try:
            return future.result(timeout=self.timeout_s)
        except FutureTimeout:
            raise exhausted(f"building the graph took over {self.timeout_s:g} s") from None

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def check_answer(values: dict[str, float], limits: Limits) -> None:
    """Only finite, plausible numbers leave the service: anything else says why, and is never cached."""
    for metric, value in values.items():
        if not math.isfinite(value):
            raise invalid(f"the predictor returned a non-finite {metric} for this model ({value}); its features are "
                          "outside anything it can extrapolate to")
        bound = {"ms": limits.max_plausible_ms, "mb": limits.max_plausible_mb, "util": 1000.0}.get(unit_of(metric))
        if value < 0 or (bound is not None and value > bound):
            raise invalid(f"the predicted {metric} ({value:.3g}) is implausible (allowed 0..{bound:g}); "
                          "the model is far outside what the predictor knows")


class PredictionService:
    """``settings``: the service's one configuration (``server.settings``), read here once; its limits,
    explain cap, large-graph lane and profiling threshold have no second set of defaults in this class."""

    def __init__(self, registry: PredictorRegistry, cache: PredictionCache, models: ModelStore, settings: Settings,
                 batcher: MicroBatcher | None = None, jobs: JobService | None = None,
                 builds: BuildPool | None = None) -> None:
        self.registry = registry
        self.cache = cache
        self.models = models
        self.limits: Limits = settings.limits
        self.batcher = batcher or MicroBatcher()
        # large graphs get a batcher of their own: one of them takes up to seconds of network time (a 1 MB model
        # of operators each reading all those before it: 0.74 s at the 100k-tensor limit, 2.65 s at the old
        # 200k), which must not hold up the small requests queued behind it in the shared one
        self.large_batcher = MicroBatcher(max_batch=1)
        self.large_graph_rows = settings.large_graph_rows
        self._large_slots = threading.BoundedSemaphore(max(1, settings.large_graphs))
        self.builds = builds or BuildPool(settings.build_workers, settings.build_queue)
        self.jobs = jobs
        self.profile_uncertain_above = settings.profile_uncertain_above
        self.explain_top_k = settings.explain_top_k
        self.stats = {"requests": 0, "cache_hits": 0, "profiling_requested": 0}
        # canonical config → (checked config, its identity, its JSON's length: what the entry's size follows)
        self._checked_configs: LRU[tuple[ModelConfig, str, int]] = LRU(8 * 2**20, lambda entry: 2 * entry[2] + 500)

    # ------------------------------------------------------------------ checks shared by predictions and jobs
    def _check_batch(self, batch_size: object, allow_auto: bool = False) -> int:
        """1..max_batch_size; with ``allow_auto``, 0 too (a prediction at the model's own batch)."""
        low = 0 if allow_auto else 1
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or \
                not low <= batch_size <= self.limits.max_batch_size:
            raise invalid(f"batch_size must be in 1..{self.limits.max_batch_size}"
                          + (" (or 0: the model's own batch)" if allow_auto else "") + f", got {batch_size}")
        return batch_size

    def _check_query(self, query: PredictQuery) -> None:
        """What every prediction, network or GPU, checks first: batch (0: the model's own; a config has none,
        so 1) and how many ``dims`` it names (before they go into a cache key)."""
        self.stats["requests"] += 1
        self._check_batch(query.batch_size, allow_auto=True)
        if query.batch_size == 0 and query.config is not None:
            query.config, query.batch_size = query.config.with_batch(1), 1
        if len(query.dims) > self.limits.max_dims_keys:
            raise exhausted(f"dims has {len(query.dims)} entries, over the limit of {self.limits.max_dims_keys}")

    def _check_onnx_size(self, onnx: bytes) -> None:
        if len(onnx) > self.limits.max_model_bytes:
            raise exhausted(f"model is {len(onnx):,} bytes, over the {self.limits.max_model_bytes:,}-byte limit")

    def _checked_config(self, config: ModelConfig) -> tuple[ModelConfig, str]:
        """``config`` validated (space, keys, ranges, size) and canonical, and its identity (``cfg-`` and the
        sha256 of the canonical config at batch 1); remembered, since NAS sends repeats."""
        key = config.with_batch(1).to_json()
        entry = self._checked_configs.get(key)
        if entry is None:
            try:
                checked = check_config(config.with_batch(1), self.limits.max_config_params,
                                       self.limits.max_config_gflops)
            except LimitExceededError as exc:
                raise exhausted(str(exc)) from None
            except ValueError as exc:
                raise invalid(str(exc)) from None
            canonical = checked.with_batch(1).to_json()
            entry = (checked, "cfg-" + sha256_hex(canonical.encode()), len(canonical))
            self._checked_configs.put(key, entry)
        return entry[0].with_batch(config.batch_size), entry[1]

    # ------------------------------------------------------------------ model identity
    def _model_source(self, query: PredictQuery) -> tuple[str, bytes | ModelConfig]:
        if query.onnx is not None:
            self._check_onnx_size(query.onnx)
            return sha256_hex(query.onnx), query.onnx
        if query.config is not None:
            config, sha = self._checked_config(query.config)
            return sha, config
        if query.model_sha256:
            sha = query.model_sha256.lower()
            if not SHA256_RE.match(sha):
                raise invalid(f"model_sha256 must be 64 hex digits, got {len(query.model_sha256)} characters")
            found = self.models.lookup(sha)
            if found is None:
                raise not_found(f"no model with sha256 {sha} has been sent to this server; send the ONNX bytes once")
            return sha, found
        raise invalid("request names no model: set onnx, config or model_sha256")

    @staticmethod
    def _onnx_of(source: bytes | ModelConfig) -> bytes:
        """The ONNX bytes to build from: a config's stripped export, or the request's own.  Runs in the build pool."""
        if isinstance(source, ModelConfig):
            from seernet.graph_cache import stripped_onnx

            try:
                return stripped_onnx(source)
            except (ValueError, KeyError, TypeError, RuntimeError) as exc:
                raise invalid(f"cannot build model from config: {type(exc).__name__}: {str(exc)[:200]}") from None
        return source

    def _remember(self, sha: str, source: bytes | ModelConfig, parsed: onnx.ModelProto | None = None) -> None:
        """A model that built is kept (stripped) by sha256, so later requests may name it by hash.
        ``parsed``: the request's model already parsed (and built: it is stripped in place, not parsed again)."""
        if not isinstance(source, ModelConfig) and self.models.lookup(sha) is None:
            stripped = strip_weights(parsed, in_place=True) if parsed is not None else strip_weights(
                onnx.load_from_string(source))
            self.models.remember(sha, stripped.SerializeToString())

    def _graph(self, sha: str, source: bytes | ModelConfig, query: PredictQuery) -> PerfGraph:
        def build_in_pool() -> PerfGraph:
            if isinstance(source, ModelConfig):
                return build_graph(self._onnx_of(source), batch_size=query.batch_size or None, dims=query.dims,
                                   limits=self.limits)
            graph, model = build_graph_and_model(source, batch_size=query.batch_size or None, dims=query.dims,
                                                 limits=self.limits)  # parsed once: the stripped copy shares it
            self._remember(sha, source, model)
            return graph

        if isinstance(source, ModelConfig):  # a space that describes its own graph needs no export (ms, not 100 ms)
            direct = get_space(source.space).direct_graph(source)
            if direct is not None:  # and is rebuilt sooner than the graph cache would be searched and filled
                return direct
        return self.models.graph(sha, query.batch_size, query.dims, False, lambda: self.builds.run(build_in_pool))

    # ------------------------------------------------------------------ predict
    def _identify(self, query: PredictQuery) -> _Prepared:
        """Validate, resolve the predictor, identify the model and its cache key (looked up by the caller, a
        whole batch request's keys at once)."""
        started = time.perf_counter()
        self._check_query(query)
        unknown = [m[:40] for m in query.metrics if m not in METRICS]
        if unknown:
            raise invalid(f"unknown metric(s) {unknown[:6]}; known: {list(METRICS)}")
        predictor = self.registry.resolve(query.device)
        if query.predictor_version and query.predictor_version != predictor.version:
            raise not_found(f"predictor {predictor.name} serves version {predictor.version}, "
                            f"not {query.predictor_version[:40]!r}")
        missing = [m for m in query.metrics if m not in predictor.metrics]
        if missing:
            raise invalid(f"predictor {predictor.name} does not predict {missing}; it predicts {list(predictor.metrics)}")
        sha, source = self._model_source(query)
        key = f"{predictor.name}:{predictor.version}:{sha}:{query.batch_size}:{predictor.device_key}:" \
              f"{json.dumps(query.dims, sort_keys=True)}"
        return _Prepared(query, predictor, sha, source, key, None, started)

    def _prepare(self, prepared: _Prepared, cached: dict | None) -> _Prepared:
        """With the cache's answer for ``prepared``'s key: build the graph on a miss."""
        CACHE.labels("hit" if cached is not None else "miss").inc()
        prepared.cached = cached
        if cached is None:
            prepared.graph = self._graph(prepared.sha, prepared.source, prepared.query)
            prepared.batch_size = prepared.graph.batch_size
        else:
            prepared.batch_size = int(cached.get("batch_size") or prepared.query.batch_size)
            self.stats["cache_hits"] += 1
        return prepared

    def _top_k(self, query: PredictQuery) -> int:
        return min(query.explain_top_k or self.explain_top_k, self.explain_top_k)

    def _explain(self, prepared: _Prepared, values: dict, uncertainty: dict) -> list[dict]:
        """Where the inference time goes: a one-graph pass of every member over every operator (no plan), run
        in the bounded build pool, not the batcher: it costs what the graph's size makes it cost (0.7 s on one
        Intel Xeon thread for a model of 99k tensors between 889 operators), so only a few run at once."""
        predictor, query = prepared.predictor, prepared.query
        if not hasattr(predictor, "explain") or "infer_time_ms" not in predictor.metrics:
            raise invalid(f"predictor {predictor.name} cannot break a prediction down by operator")
        graph = prepared.graph or self._graph(prepared.sha, prepared.source, query)
        from seernet.predictor import Prediction

        try:
            return self.builds.run(lambda: predictor.explain(graph, Prediction(values, uncertainty), "infer_time_ms",
                                                             self._top_k(query)))
        except ValueError as exc:
            raise invalid(str(exc)) from None

    def _finish(self, prepared: _Prepared, values: dict, uncertainty: dict, hit: bool) -> PredictAnswer:
        query, predictor = prepared.query, prepared.predictor
        wanted = query.metrics or predictor.metrics
        operators = self._explain(prepared, values, uncertainty) if query.explain else []
        return PredictAnswer(query.request_id, {m: values[m] for m in wanted},
                             {m: uncertainty.get(m, math.nan) for m in wanted}, predictor.name, predictor.version,
                             hit, prepared.sha, (time.perf_counter() - prepared.started) * 1000.0, prepared.batch_size,
                             operators)

    def predict(self, query: PredictQuery) -> PredictAnswer:
        answer = self.predict_many([query])[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def predict_many(self, queries: list[PredictQuery]) -> list[PredictAnswer | Exception]:
        """Answers in order; a bad item is its exception in place, never a failed batch.

        Every cache miss is built first and then submitted to the micro-batcher in one entry, so a batch of N
        uncached models costs a few GNN forward passes, not N (submitted one by one, each would be taken
        alone while the next is still being built).
        """
        results: list[PredictAnswer | Exception | None] = [None] * len(queries)
        identified: list[tuple[int, _Prepared]] = []
        for i, query in enumerate(queries):
            try:
                gpu = self._gpu_target(query)
                if gpu is not None:
                    results[i] = self._predict_gpu(query, gpu)
                else:
                    identified.append((i, self._identify(query)))
            except Exception as exc:  # reported per item
                results[i] = exc
        misses: list[tuple[int, _Prepared, object]] = []
        for (i, prepared), cached in zip(identified, self.cache.get_many([p.key for _, p in identified])):
            try:
                prepared = self._prepare(prepared, cached)
                if prepared.cached is not None:
                    results[i] = self._finish(prepared, prepared.cached["values"], prepared.cached["uncertainty"],
                                              True)
                else:
                    misses.append((i, prepared, prepared.predictor.encode(prepared.graph)))
            except Exception as exc:
                results[i] = exc
        futures = self._submit(misses)
        answered: list[tuple[str, dict]] = []
        for (i, prepared, _), future in zip(misses, futures):
            try:
                prediction = future.result(timeout=60)
                check_answer(prediction.values, self.limits)
            except Exception as exc:
                results[i] = exc
                continue
            answered.append((prepared.key, {"values": prediction.values, "uncertainty": prediction.uncertainty,
                                            "batch_size": prepared.batch_size}))
            self._maybe_request_profiling(prepared.query, prepared.source, prediction.uncertainty)
            try:
                results[i] = self._finish(prepared, prediction.values, prediction.uncertainty, False)
            except Exception as exc:
                results[i] = exc
        self.cache.put_many(answered)
        return results  # type: ignore[return-value]

    def _submit(self, misses: list[tuple[int, _Prepared, object]]) -> list[Future]:
        """Each miss to its batcher: the small ones together in one entry (they share passes), each large one to
        the large lane while one of its slots is free, else RESOURCE_EXHAUSTED for that item."""
        jobs = [(p.predictor, encoded, p.graph.num_nodes) for _, p, encoded in misses]
        large = [p.graph.num_nodes + p.graph.num_edges > self.large_graph_rows for _, p, _ in misses]
        shared = iter(self.batcher.submit_many([job for job, big in zip(jobs, large) if not big]))
        return [self._submit_large(job) if big else next(shared) for job, big in zip(jobs, large)]

    def _submit_large(self, job: tuple) -> Future:
        if not self._large_slots.acquire(blocking=False):
            refused: Future = Future()
            refused.set_exception(exhausted("the server is predicting too many large models at once; retry later"))
            return refused
        future = self.large_batcher.submit(*job)
        future.add_done_callback(lambda _: self._large_slots.release())
        return future

    # ------------------------------------------------------------------ GPUs by spec
    def _gpu_target(self, query: PredictQuery) -> GpuSpec | None:
        if query.gpu_spec is not None:
            return query.gpu_spec
        if query.device.startswith("gpu:"):
            try:
                return self.registry.gpu(query.device[4:]).spec(query.device[4:])
            except GpuSpecError as exc:
                raise not_found(str(exc)[:300]) from None
        return None

    def _predict_gpu(self, query: PredictQuery, gpu: GpuSpec) -> PredictAnswer:
        """The GPU kernel cost model: no network, so no batching; the same limits, pool and answer checks."""
        started = time.perf_counter()
        self._check_query(query)
        predictor = self.registry.gpu(gpu.name)
        unknown = [m[:40] for m in query.metrics if m not in predictor.metrics]
        if unknown:
            raise invalid(f"the GPU predictor predicts {list(predictor.metrics)}, not {unknown[:6]}")
        sha, source = self._model_source(query)
        key = f"{predictor.name}:{predictor.version}:{sha}:{query.batch_size}:" \
              f"{json.dumps(gpu.to_dict(), sort_keys=True)}:{json.dumps(query.dims, sort_keys=True)}"
        cached = None if query.explain else self.cache.get(key)  # the breakdown is computed, never cached
        CACHE.labels("hit" if cached is not None else "miss").inc()
        if cached is None:
            result = self.builds.run(lambda: predictor.predict(
                self._onnx_of(source), gpu, query.batch_size or None, query.dims, limits=self.limits,
                top=self._top_k(query) if query.explain else 0))
            self._remember(sha, source)
            cached = {"values": {m: result[m] for m in predictor.metrics},
                      "uncertainty": {m: math.nan for m in predictor.metrics}, "batch_size": result["batch_size"]}
            operators = [{**op, "fused": [op["node"], *op.get("fused", [])]} for op in result.get("operators", [])]
            check_answer(cached["values"], self.limits)
            self.cache.put(key, cached)
            hit = False
        else:
            self.stats["cache_hits"] += 1
            hit, operators = True, []
        wanted = query.metrics or predictor.metrics
        return PredictAnswer(query.request_id, {m: cached["values"][m] for m in wanted},
                             {m: math.nan for m in wanted}, predictor.name, predictor.version, hit, sha,
                             (time.perf_counter() - started) * 1000.0, int(cached.get("batch_size") or 0), operators)

    def _maybe_request_profiling(self, query: PredictQuery, source: bytes | ModelConfig,
                                 uncertainty: dict[str, float]) -> None:
        """Turn the predictions we are least sure of into profiling jobs, so workers measure them."""
        if not self.jobs or self.profile_uncertain_above <= 0:
            return
        worst = max((u for u in uncertainty.values() if u == u), default=0.0)
        if worst < self.profile_uncertain_above:
            return
        try:
            config = source.with_batch(query.batch_size) if isinstance(source, ModelConfig) else None
            job = (ProfileJob.for_config(config) if config is not None
                   else ProfileJob(onnx_bytes=source, batch_size=query.batch_size or 1))
            self.jobs.submit(job)
            self.stats["profiling_requested"] += 1
        except Exception as exc:  # asking for a measurement is best effort
            log.warning("could not queue a profiling job: %s", exc)

    # ------------------------------------------------------------------ jobs
    def _require_jobs(self) -> JobService:
        if self.jobs is None:
            raise unavailable("profiling jobs need Redis, and this server was started without one: "
                              "restart it with --redis URL")
        return self.jobs

    def submit_job(self, onnx: bytes | None, config: ModelConfig | None, batch_size: int, device: str) -> str:
        """Validated exactly like a prediction of the same model (size, batch, graph, config bounds) before queueing."""
        jobs = self._require_jobs()
        self._check_batch(batch_size)
        device = device or "cpu"
        if not DEVICE_RE.match(device):
            raise invalid(f"unknown device {device[:40]!r}; use cpu, cuda or cuda:N")
        if onnx is not None:
            self._check_onnx_size(onnx)
            self.builds.run(lambda: build_graph(onnx, batch_size=batch_size, limits=self.limits))
            job = ProfileJob(onnx_bytes=onnx, batch_size=batch_size, device=device)
        elif config is not None:
            job = ProfileJob.for_config(self._checked_config(config.with_batch(batch_size))[0], device)
        else:
            raise invalid("a profiling job needs onnx or config")
        return jobs.submit(job)

    def job_status(self, job_id: str) -> dict:
        jobs = self._require_jobs()
        if not job_id or len(job_id) > 200:
            raise invalid("job_id must be 1..200 characters")
        status = jobs.status(job_id)
        if status is None:
            raise not_found(f"no job {job_id[:80]!r}")
        return status
