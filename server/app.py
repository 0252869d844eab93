"""Assemble and run the gRPC server: servicer, health, reflection, auth, limits, graceful shutdown."""
from __future__ import annotations

import logging
import signal
import threading
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from perfseer.config import Settings
from perfseer_client.v1 import perfseer_pb2, perfseer_pb2_grpc

from .batcher import MicroBatcher
from .cache import make_cache
from .core import PredictionService
from .models import ModelStore
from .registry import PredictorRegistry
from .servicer import PerfSeerServicer

log = logging.getLogger(__name__)
SERVICE_NAME = perfseer_pb2.DESCRIPTOR.services_by_name["PerfSeer"].full_name
UNAUTHENTICATED_METHODS = ("/grpc.health.v1.Health/", "/grpc.reflection.")


class TokenAuthInterceptor(grpc.ServerInterceptor):
    """Requires ``authorization: Bearer <token>``; health checks and reflection stay open."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}"

        def deny(request: object, context: grpc.ServicerContext) -> None:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token")

        self._deny = grpc.unary_unary_rpc_method_handler(deny)
        self._deny_stream = grpc.stream_stream_rpc_method_handler(lambda it, ctx: deny(None, ctx))

    def intercept_service(self, continuation, handler_call_details):
        if handler_call_details.method.startswith(UNAUTHENTICATED_METHODS):
            return continuation(handler_call_details)
        metadata = dict(handler_call_details.invocation_metadata or ())
        if metadata.get("authorization") == self._expected:
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


def build_server(settings: Settings, watch_interval_s: float = 2.0, max_workers: int = 16) -> RunningServer:
    registry = PredictorRegistry(settings.predictors, default="cpu")
    registry.refresh()
    job_queue, redis_client = None, None
    if settings.redis_url:
        import redis

        from profiler_worker.queue import JobQueue

        redis_client = redis.Redis.from_url(settings.redis_url, socket_timeout=0.25, socket_connect_timeout=0.25)
        try:
            job_queue = JobQueue(redis.Redis.from_url(settings.redis_url, decode_responses=True,
                                                      socket_timeout=2, socket_connect_timeout=2))
        except redis.RedisError as exc:
            log.warning("Redis at %s is not reachable (%s): jobs are unavailable until restart", settings.redis_url, exc)
    service = PredictionService(registry, make_cache(settings.redis_url, settings.cache_ttl_s, settings.cache_size),
                                ModelStore(redis_client=redis_client), settings.limits, MicroBatcher(), job_queue,
                                profile_uncertain_above=settings.profile_uncertain_above)
    options = [("grpc.max_receive_message_length", settings.limits.max_request_bytes),
               ("grpc.max_send_message_length", settings.limits.max_request_bytes)]
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
        raise RuntimeError(f"cannot bind {address}")

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

        start_http_server(settings.metrics_port, addr=settings.host)
    log.info("PerfSeer serving on %s (predictors: %s; cache: %s)", address, ", ".join(registry.names()) or "none yet",
             service.cache.kind)
    return RunningServer(server, port, service, registry, health_servicer)


def serve_forever(settings: Settings) -> int:
    running = build_server(settings)
    stopped = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal %d: shutting down gracefully", signum)
        stopped.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if not running.registry.ready:
        log.warning("no predictors in %s yet: health is NOT_SERVING and predictions return UNAVAILABLE",
                    running.registry.root)
    stopped.wait()
    running.stop()
    return 0
