"""The gRPC servicer: decode, call the domain service, encode; errors become status codes."""
from __future__ import annotations

import logging
import time
from typing import Callable, Iterator, TypeVar

import grpc

from perfseer_client.v1 import perfseer_pb2 as pb
from perfseer_client.v1 import perfseer_pb2_grpc as pb_grpc

from . import convert
from .core import PredictionService
from .errors import exhausted, from_exception, invalid
from .metrics import observe

log = logging.getLogger(__name__)
T = TypeVar("T")


def _call(context: grpc.ServicerContext, method: str, fn: Callable[[], T]) -> T:
    started = time.perf_counter()
    try:
        result = fn()
    except Exception as exc:
        error = from_exception(exc)
        if error.code == grpc.StatusCode.INTERNAL:
            log.exception("%s failed", method)
        observe(method, error.code.name, time.perf_counter() - started)
        context.abort(error.code, error.message)
    observe(method, "OK", time.perf_counter() - started)
    return result


class PerfSeerServicer(pb_grpc.PerfSeerServicer):
    def __init__(self, service: PredictionService) -> None:
        self.service = service

    def PredictPerformance(self, request: pb.PredictRequest, context: grpc.ServicerContext) -> pb.PredictResponse:
        return _call(context, "PredictPerformance",
                     lambda: convert.answer_to_proto(self.service.predict(convert.query_from_proto(request, self.service.limits))))

    @staticmethod
    def _item(request_id: str, answer: object) -> pb.PredictBatchItem:
        if isinstance(answer, Exception):
            error = from_exception(answer)
            return pb.PredictBatchItem(request_id=request_id, code=error.code.value[0], message=error.message)
        return pb.PredictBatchItem(request_id=request_id, code=0, response=convert.answer_to_proto(answer))

    def _items(self, requests: list[pb.PredictRequest]) -> list[pb.PredictBatchItem]:
        queries: list = []
        for request in requests:
            try:
                queries.append(convert.query_from_proto(request, self.service.limits))
            except Exception as exc:  # a malformed item is that item's error
                queries.append(exc)
        valid = [q for q in queries if not isinstance(q, Exception)]
        answers = iter(self.service.predict_many(valid))
        return [self._item(r.request_id, q if isinstance(q, Exception) else next(answers))
                for r, q in zip(requests, queries)]

    def PredictPerformanceBatch(self, request: pb.PredictBatchRequest, context: grpc.ServicerContext
                                ) -> pb.PredictBatchResponse:
        def run() -> pb.PredictBatchResponse:
            limit = self.service.limits.max_batch_items
            if len(request.requests) > limit:
                raise exhausted(f"{len(request.requests)} items in one batch, over the limit of {limit}")
            return pb.PredictBatchResponse(items=self._items(list(request.requests)))

        return _call(context, "PredictPerformanceBatch", run)

    def PredictPerformanceStream(self, request_iterator: Iterator[pb.PredictRequest], context: grpc.ServicerContext
                                 ) -> Iterator[pb.PredictBatchItem]:
        for request in request_iterator:
            yield self._items([request])[0]

    def ListPredictors(self, request: pb.ListPredictorsRequest, context: grpc.ServicerContext
                       ) -> pb.ListPredictorsResponse:
        def run() -> pb.ListPredictorsResponse:
            registry = self.service.registry
            default = registry.default().name if registry.ready else ""
            return pb.ListPredictorsResponse(predictors=[
                convert.predictor_to_proto(p, p.name == default, registry.history(p.name))
                for p in (*registry.all(), *registry.gpu_predictors())])

        return _call(context, "ListPredictors", run)

    def GetPredictor(self, request: pb.GetPredictorRequest, context: grpc.ServicerContext) -> pb.PredictorInfo:
        def run() -> pb.PredictorInfo:
            registry = self.service.registry
            predictor = registry.resolve(request.name)
            return convert.predictor_to_proto(predictor, predictor.name == registry.default().name,
                                              registry.history(predictor.name))

        return _call(context, "GetPredictor", run)

    def SubmitProfilingJob(self, request: pb.SubmitProfilingJobRequest, context: grpc.ServicerContext
                           ) -> pb.SubmitProfilingJobResponse:
        def run() -> pb.SubmitProfilingJobResponse:
            which = request.WhichOneof("model")
            if which is None:
                raise invalid("a profiling job needs onnx or config")
            batch = request.batch_size
            config = convert.config_from_proto(request.config, batch, self.service.limits) if which == "config" else None
            onnx = bytes(request.onnx) if which == "onnx" else None
            return pb.SubmitProfilingJobResponse(job_id=self.service.submit_job(onnx, config, batch, request.device))

        return _call(context, "SubmitProfilingJob", run)

    def GetJob(self, request: pb.GetJobRequest, context: grpc.ServicerContext) -> pb.JobStatus:
        return _call(context, "GetJob",
                     lambda: convert.job_to_proto(request.job_id, self.service.job_status(request.job_id)))

    def ServerReady(self, request: pb.ServerReadyRequest, context: grpc.ServicerContext) -> pb.ServerReadyResponse:
        registry = self.service.registry
        return pb.ServerReadyResponse(ready=registry.ready, predictors=registry.names())

    def Ping(self, request: pb.PingRequest, context: grpc.ServicerContext) -> pb.PingResponse:
        return pb.PingResponse(server_time_ns=time.time_ns())
