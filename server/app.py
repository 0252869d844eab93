"""Assemble and run the gRPC server: servicer, health, reflection, auth, limits, graceful shutdown."""
from __future__ import annotations

import hmac
import logging
import signal
import threading
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from seernet.allocator import keep_freed_memory
from seernet.devices import machine_predictor

from .settings import Settings
from perfseer_client.v1 import perfseer_pb2, perfseer_pb2_grpc

from .batcher import MicroBatcher
from .cache import make_cache
from .core import PredictionService
from .jobs import JobService, redact
from .models import ModelStore
from .registry import PredictorRegistry
from .servicer import PerfSeerServicer

log = logging.getLogger(__name__)
SERVICE_NAME = perfseer_pb2.DESCRIPTOR.services_by_name["PerfSeer"].full_name
UNAUTHENTICATED_METHODS = ("/grpc.health.v1.Health/", "/grpc.reflection.")


class TokenAuthInterceptor(grpc.ServerInterceptor):
    """Requires ``authorization: Bearer <token>``; health checks and reflection stay open."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

        def deny(request: object, context: grpc.ServicerContext) -> None:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token")

        self._deny = grpc.unary_unary_rpc_method_handler(deny)
        self._deny_stream = grpc.stream_stream_rpc_method_handler(lambda it, ctx: deny(None, ctx))

    def intercept_service(self, continuation, handler_call_details):
        if handler_call_details.method.startswith(UNAUTHENTICATED_METHODS):
            return continuation(handler_call_details)
        metadata = dict(handler_call_details.invocation_metadata or ())
        given = metadata.get("authorization")
        if isinstance(given, str) and hmac.compare_digest(given.encode(), self._expected):  # constant time
            return continuation(handler_call_details)
        return self._deny_stream if handler_call_details.method.endswith("Stream") else self._deny


@dataclass
class RunningServer:
    server: grpc.Server
    port: int
    service: PredictionService
    registry: PredictorRegistry
    health: health.HealthServicer

    def stop(self, grace_s: float = 5.0) -> None:
        """Graceful: report NOT_SERVING, let in-flight RPCs finish (up to ``grace_s``), then stop."""
        self.health.enter_graceful_shutdown()
        self.server.stop(grace_s).wait()
        self.registry.close()
        self.service.batcher.close()
        self.service.large_batcher.close()
        self.service.builds.close()


MAX_PROCESSES = 64


class StartupError(ValueError):
    """The server cannot start as configured (bad port, Redis URL or predictors directory): one line says why."""


def check_startup(settings: Settings) -> None:
    """What must hold before binding anything, each refused with a one-line reason."""
    if isinstance(settings.port, bool) or not 0 <= int(settings.port) <= 65535:
        raise StartupError(f"port must be in 0..65535 (0 = any free port), got {settings.port}")
    if settings.redis_url:
        import redis

        try:
            redis.connection.parse_url(settings.redis_url)
        except ValueError as exc:
            raise StartupError(f"--redis {settings.redis_url!r} is not a Redis URL ({exc}); "
                               "use redis://HOST:PORT/DB") from None
    if not settings.predictors.is_dir():
        raise StartupError(f"predictors directory {settings.predictors} does not exist (or is not a directory)")
    if not 1 <= settings.processes <= MAX_PROCESSES:
        raise StartupError(f"--processes must be in 1..{MAX_PROCESSES}, got {settings.processes}")
    if settings.processes > 1 and not settings.redis_url:
        raise StartupError(f"--processes {settings.processes} needs --redis: the processes share the prediction "
                           "cache and the models known by sha256 through it (without it, a hash one process "
                           "learned is unknown to the others)")
    if settings.processes > 1 and settings.port == 0:
        raise StartupError("--processes > 1 needs a fixed --port: the processes share it")


def build_server(settings: Settings, watch_interval_s: float = 2.0, max_workers: int = 16,
                 process_index: int = 0) -> RunningServer:
    """One serving process (``process_index`` of ``settings.processes``; its metrics port is offset by it)."""
    check_startup(settings)
    registry = PredictorRegistry(settings.predictors, default=settings.default_predictor)
    registry.refresh()
    jobs, redis_client = None, None
    if settings.redis_url:
        import redis

        timeout = settings.redis_timeout_s
        redis_client = redis.Redis.from_url(settings.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout)
        jobs = JobService(settings.redis_url, settings.limits.max_queued_jobs)
        if jobs.connected():
            log.info("Redis at %s: prediction cache and profiling jobs", redact(settings.redis_url))
        else:
            log.warning("Redis at %s is not reachable now: serving uncached, job RPCs answer UNAVAILABLE; "
                        "both come back by themselves when it does", redact(settings.redis_url))
    service = PredictionService(
        registry, make_cache(settings.redis_url, settings.cache_ttl_s, settings.prediction_cache_bytes,
                             settings.redis_timeout_s),
        ModelStore(settings.model_cache_bytes, settings.graph_cache_bytes, redis_client=redis_client),
        settings, MicroBatcher(), jobs)
    options = [("grpc.max_receive_message_length", settings.limits.max_request_bytes),
               ("grpc.max_send_message_length", settings.limits.max_request_bytes),
               ("grpc.so_reuseport", 1 if settings.processes > 1 else 0)]
    interceptors = [TokenAuthInterceptor(settings.auth_token)] if settings.auth_token else []
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers), options=options, interceptors=interceptors)
    perfseer_pb2_grpc.add_PerfSeerServicer_to_server(PerfSeerServicer(service), server)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    address = f"{settings.host}:{settings.port}"
    if settings.tls_cert and settings.tls_key:
        credentials = grpc.ssl_server_credentials([(Path(settings.tls_key).read_bytes(),
                                                    Path(settings.tls_cert).read_bytes())])
        port = server.add_secure_port(address, credentials)
    else:
        port = server.add_insecure_port(address)
    if port == 0:
        raise StartupError(f"cannot bind {address} (in use, or not an address of this machine)")
    address = f"{settings.host}:{port}"

    def set_health(*_: object) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if registry.ready else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", SERVICE_NAME):
            health_servicer.set(name, status)

    registry.on_swap.append(set_health)
    set_health()
    server.start()
    registry.watch(watch_interval_s)
    if settings.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.metrics_port + process_index, addr=settings.host)
    log.info("PerfSeer serving on %s (predictors: %s; cache: %s)", address, ", ".join(registry.names()) or "none yet",
             service.cache.kind)
    return RunningServer(server, port, service, registry, health_servicer)


def unmatched_machine_note(registry: PredictorRegistry, cpu_model: str) -> str | None:
    """A line for the start-up log when no CPU predictor was measured on this machine's CPU (``cpu_model``:
    model and ISA as device keys name it, ``AMD EPYC:avx512``), or when one was but requests naming no device
    get another; else None.

    Absolute CPU timings do not transfer between CPUs; the user should know that, and how to fix it."""
    keys = {p.name: p.device_key for p in registry.all() if p.device_key.startswith("cpu:")}
    if not keys:
        return None
    mine = machine_predictor(keys, cpu_model)
    if mine is None:
        return (f"this machine's CPU ({cpu_model}) matches no predictor's device key "
                f"({', '.join(sorted(set(keys.values())))}): CPU predictions here are for those machines; "
                "`make calibrate` (perfseer calibrate) writes one for this one")
    default = registry.default().name
    if mine != default:
        return (f"requests naming no device get predictor {default!r} ({keys.get(default, 'not a CPU predictor')}); "
                f"this machine's is {mine!r}: clients pass device {mine!r}, or serve with --default-predictor {mine}")
    return None


def missing_default_note(registry: PredictorRegistry, wanted: str) -> str | None:
    """A line for the start-up log when the configured default predictor is not among the loaded ones."""
    names = registry.names()
    if not names or wanted in names:
        return None
    return (f"default predictor {wanted!r} is not under {registry.root}: requests naming no device get "
            f"{registry.default().name!r}")


def _serve_until_stopped(settings: Settings, process_index: int, cpu_model: str | None) -> int:
    keep_freed_memory()  # each serving process reuses its inference passes' memory (seernet.allocator)
    running = build_server(settings, process_index=process_index)
    if process_index == 0:
        for note in (missing_default_note(running.registry, settings.default_predictor),
                     unmatched_machine_note(running.registry, cpu_model) if cpu_model else None):
            if note:
                log.warning(note)
    stopped = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal %d: shutting down gracefully", signum)
        stopped.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if not running.registry.ready and process_index == 0:
        log.warning("no predictors in %s yet: health is NOT_SERVING and predictions return UNAVAILABLE",
                    running.registry.root)
    stopped.wait()
    running.stop()
    return 0


def _child(settings: Settings, process_index: int, torch_threads: int) -> None:
    """A further serving process (spawned: a gRPC server must not be forked once started)."""
    import torch

    torch.set_num_threads(torch_threads)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s %(levelname)s [{process_index}] %(name)s: %(message)s")
    _serve_until_stopped(settings, process_index, None)


def serve_forever(settings: Settings, cpu_model: str | None = None, torch_threads: int = 1) -> int:
    """Serve until SIGTERM/SIGINT; ``cpu_model``: this machine's, to note at start-up when no predictor matches it.
    With ``settings.processes`` > 1, that many processes share the port; the first is this one, and stopping
    it stops the others."""
    check_startup(settings)
    children = []
    if settings.processes > 1:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        children = [context.Process(target=_child, args=(settings, k, torch_threads), daemon=True,
                                    name=f"perfseer-serve-{k}") for k in range(1, settings.processes)]
        for child in children:
            child.start()
        log.info("%d serving processes share port %d", settings.processes, settings.port)
    try:
        return _serve_until_stopped(settings, 0, cpu_model)
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.join(timeout=30)
