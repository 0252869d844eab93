"""``PerfSeerClient``: what a NAS loop calls instead of profiling a candidate."""
from __future__ import annotations

import hashlib
import itertools
import io
import json
import math
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import grpc

from .v1 import perfseer_pb2 as pb
from .v1 import perfseer_pb2_grpc as pb_grpc

RETRYABLE = (grpc.StatusCode.UNAVAILABLE,)


class PerfSeerError(Exception):
    """A request the service refused or could not answer; ``code`` is the gRPC status code."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class PredictionResult:
    metrics: dict[str, float]
    uncertainty: dict[str, float]  # std of log(value) across the predictor's ensemble; NaN if unknown
    predictor: str
    predictor_version: str
    cache_hit: bool
    model_sha256: str
    request_id: str = ""
    batch_size: int = 0  # the batch predicted (0 from servers older than this field)
    operators: tuple = ()  # with explain=True: ({node, op_type, infer_time_ms, share, fused}, …), largest first

    def __getitem__(self, metric: str) -> float:
        return self.metrics[metric]

    @classmethod
    def from_proto(cls, response: pb.PredictResponse) -> "PredictionResult":
        return cls({m.name: m.value for m in response.metrics}, {m.name: m.uncertainty for m in response.metrics},
                   response.predictor, response.predictor_version, response.cache_hit, response.model_sha256,
                   response.request_id, response.batch_size,
                   tuple({"node": o.node, "op_type": o.op_type, "infer_time_ms": o.infer_time_ms, "share": o.share,
                          "fused": list(o.fused)} for o in response.operators))


def _export_torch(module: Any, example_input: Any = None, input_shape: Sequence[int] | None = None) -> bytes:
    import torch  # only needed when a torch module is given

    if example_input is None:
        if input_shape is None:
            raise ValueError("a torch module needs example_input= or input_shape= (without the batch dimension)")
        example_input = torch.randn(2, *input_shape)
    buffer = io.BytesIO()
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            torch.onnx.export(module, (example_input,), buffer, input_names=["input"], output_names=["output"],
                              dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, opset_version=17,
                              dynamo=False)
    finally:
        module.train(was_training)
    return buffer.getvalue()


def model_bytes(model: Any, *, example_input: Any = None, input_shape: Sequence[int] | None = None,
                strip: bool = True) -> bytes:
    """ONNX bytes for a path, bytes, ``onnx.ModelProto`` or ``torch.nn.Module``; large weights stripped."""
    if isinstance(model, (str, Path)):
        data = Path(model).read_bytes()
    elif isinstance(model, (bytes, bytearray, memoryview)):
        data = bytes(model)
    elif type(model).__name__ == "ModelProto":
        data = model.SerializeToString()
    elif hasattr(model, "forward") and hasattr(model, "parameters"):
        data = _export_torch(model, example_input, input_shape)
    else:
        raise TypeError(f"cannot send a {type(model).__name__}: give a path, bytes, onnx.ModelProto or torch.nn.Module")
    if strip:
        try:
            from .strip import strip_bytes

            data = strip_bytes(data)
        except ImportError:  # onnx not installed: send as is
            pass
        except Exception:  # not parseable here: let the server say what is wrong with it
            pass
    return data


class PerfSeerClient:
    """A connection to a PerfSeer service.

    ``predict`` sends a model's bytes once; afterwards it sends only its sha256
    (falling back to the bytes if the server has forgotten it).  ``connections`` > 1 opens that many
    connections and spreads calls over them (``predict_many`` sends its chunks on all at once): a server
    run with ``--processes N`` gives each connection to one of its processes.
    """

    def __init__(self, target: str = "127.0.0.1:50051", *, token: str | None = None, timeout_s: float = 30.0,
                 retries: int = 4, backoff_s: float = 0.1, root_certificates: bytes | None = None,
                 secure: bool = False, max_message_bytes: int = 64 * 2**20, connections: int = 1) -> None:
        if not 1 <= connections <= 64:
            raise ValueError(f"connections must be in 1..64, got {connections}")
        options = [("grpc.max_send_message_length", max_message_bytes),
                   ("grpc.max_receive_message_length", max_message_bytes)]
        if connections > 1:  # a channel of its own per connection, not one shared subchannel
            options.append(("grpc.use_local_subchannel_pool", 1))
        if secure or root_certificates:
            credentials = grpc.ssl_channel_credentials(root_certificates)
            self._channels = [grpc.secure_channel(target, credentials, options) for _ in range(connections)]
        else:
            self._channels = [grpc.insecure_channel(target, options) for _ in range(connections)]
        self._stubs = [pb_grpc.PerfSeerStub(c) for c in self._channels]
        self._next = itertools.count()
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self.timeout_s, self.retries, self.backoff_s = timeout_s, retries, backoff_s
        self._known: set[str] = set()

    # ------------------------------------------------------------------ plumbing
    def _rpc(self, method: str, request: Any, connection: int | None = None) -> Any:
        """``connection``: the index of the connection to use (default: the next one, round robin)."""
        delay = self.backoff_s
        stub = self._stubs[(next(self._next) if connection is None else connection) % len(self._stubs)]
        for attempt in range(self.retries + 1):
            try:
                return getattr(stub, method)(request, timeout=self.timeout_s, metadata=self._metadata)
            except grpc.RpcError as exc:
                code = exc.code()
                if code in RETRYABLE and attempt < self.retries:
                    time.sleep(delay * (1 + random.random()))
                    delay *= 2
                    continue
                raise PerfSeerError(code, exc.details() or "") from None
        raise AssertionError("unreachable")

    def close(self) -> None:
        for channel in self._channels:
            channel.close()

    def __enter__(self) -> "PerfSeerClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ predictions
    def _request(self, model: Any, batch_size: int | None, metrics: Iterable[str] | None, device: str,
                 dims: dict[str, int] | None, by_hash: bool, gpu_spec: dict | None = None, explain: int = 0,
                 **export: Any) -> tuple[pb.PredictRequest, bytes | None]:
        common = dict(batch_size=batch_size or 0, device=device, metrics=list(metrics or []), dims=dims or {},
                      explain=bool(explain), explain_top_k=max(0, int(explain)) if not isinstance(explain, bool) else 0)
        if gpu_spec:
            common["gpu_spec"] = pb.GpuSpec(**gpu_spec)
        if isinstance(model, dict) and "space" in model:
            config = pb.ModelSpaceConfig(space=model["space"], arch_json=json.dumps(model.get("arch", {})),
                                         input_size=int(model.get("input_size", 0)))
            return pb.PredictRequest(config=config, **common), None
        data = model_bytes(model, **export)
        sha = hashlib.sha256(data).hexdigest()
        if by_hash and sha in self._known:
            return pb.PredictRequest(model_sha256=sha, **common), data
        return pb.PredictRequest(onnx=data, **common), data

    def predict(self, model: Any, *, batch_size: int | None = None, metrics: Iterable[str] | None = None,
                device: str = "",
                dims: dict[str, int] | None = None, example_input: Any = None,
                input_shape: Sequence[int] | None = None, gpu_spec: dict | None = None,
                explain: bool | int = False) -> PredictionResult:
        """Predict ``model`` (path, bytes, ModelProto, torch module, or ``{"space", "arch", "input_size"}``).

        ``batch_size=None``: the model's own batch when it was exported with a fixed one, else 1
        (``result.batch_size`` says which).  On a GPU: ``device="gpu:Tesla T4"`` (a GPU the server knows), or
        ``gpu_spec={"name", "memory_gb", "bandwidth_gbs", "sms", "cores_per_sm", "clock_mhz", "fp32_gflops",
        "l2_mb"}`` for any GPU.  ``explain=True`` (or a number of operators): ``result.operators`` says where the
        inference time goes, largest first."""
        request, data = self._request(model, batch_size, metrics, device, dims, True, gpu_spec, explain,
                                      example_input=example_input, input_shape=input_shape)
        try:
            response = self._rpc("PredictPerformance", request)
        except PerfSeerError as exc:
            if exc.code != grpc.StatusCode.NOT_FOUND or not request.model_sha256 or data is None:
                raise
            self._known.discard(request.model_sha256)  # the server forgot it: send the bytes
            request.onnx = data
            response = self._rpc("PredictPerformance", request)
        result = PredictionResult.from_proto(response)
        if result.model_sha256 and not result.model_sha256.startswith("cfg-"):
            self._known.add(result.model_sha256)
        return result

    def predict_config(self, space: str, arch: dict, *, input_size: int = 32, **kwargs: Any) -> PredictionResult:
        return self.predict({"space": space, "arch": arch, "input_size": input_size}, **kwargs)

    def predict_many(self, models: Sequence[Any], *, batch_size: int = 1, metrics: Iterable[str] | None = None,
                     device: str = "", chunk: int = 256) -> list[PredictionResult | PerfSeerError]:
        """One result per model, in order; a model the server refuses yields a PerfSeerError in its place.

        Chunks of ``chunk`` models go out on every connection at once, and each connection takes the next
        chunk when its last one is answered: a server whose processes got unequal shares of the connections
        (``--processes N`` leaves that to the kernel) still has every process busy until the end."""
        def one_chunk(start: int, connection: int | None = None) -> list[PredictionResult | PerfSeerError]:
            requests = [self._request(m, batch_size, metrics, device, None, False)[0]
                        for m in models[start:start + chunk]]
            for i, request in enumerate(requests):
                request.request_id = str(start + i)
            response = self._rpc("PredictPerformanceBatch", pb.PredictBatchRequest(requests=requests), connection)
            return [PredictionResult.from_proto(item.response) if item.code == 0
                    else PerfSeerError(_status(item.code), item.message) for item in response.items]

        starts = range(0, len(models), chunk)
        if len(self._stubs) == 1 or len(starts) == 1:
            return [r for start in starts for r in one_chunk(start)]
        parts: list[list[PredictionResult | PerfSeerError]] = [[] for _ in starts]
        pending = iter(range(len(starts)))
        lock = threading.Lock()

        def drive(connection: int) -> None:
            while True:
                with lock:
                    k = next(pending, None)
                if k is None:
                    return
                parts[k] = one_chunk(starts[k], connection)

        with ThreadPoolExecutor(max_workers=len(self._stubs)) as pool:
            list(pool.map(drive, range(min(len(self._stubs), len(starts)))))
        return [r for part in parts for r in part]

    # ------------------------------------------------------------------ service
    def ready(self) -> bool:
        return bool(self._rpc("ServerReady", pb.ServerReadyRequest()).ready)

    def list_predictors(self) -> list[pb.PredictorInfo]:
        return list(self._rpc("ListPredictors", pb.ListPredictorsRequest()).predictors)

    def submit_profiling_job(self, model: Any, *, batch_size: int = 1, device: str = "cpu") -> str:
        if isinstance(model, dict) and "space" in model:
            config = pb.ModelSpaceConfig(space=model["space"], arch_json=json.dumps(model.get("arch", {})),
                                         input_size=int(model.get("input_size", 0)))
            request = pb.SubmitProfilingJobRequest(config=config, batch_size=batch_size, device=device)
        else:
            request = pb.SubmitProfilingJobRequest(onnx=model_bytes(model), batch_size=batch_size, device=device)
        return self._rpc("SubmitProfilingJob", request).job_id

    def get_job(self, job_id: str) -> pb.JobStatus:
        return self._rpc("GetJob", pb.GetJobRequest(job_id=job_id))


def _status(value: int) -> grpc.StatusCode:
    for code in grpc.StatusCode:
        if code.value[0] == value:
            return code
    return grpc.StatusCode.UNKNOWN


def relative_interval(result: PredictionResult, metric: str, z: float = 1.0) -> tuple[float, float]:
    """``value · exp(∓z·σ)``: a band from the ensemble's log-space spread (NaN σ → the point itself)."""
    value, sigma = result.metrics[metric], result.uncertainty.get(metric, math.nan)
    if sigma != sigma:
        return value, value
    return value * math.exp(-z * sigma), value * math.exp(z * sigma)
