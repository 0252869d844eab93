"""proto ↔ domain, in one place (the servicer stays thin)."""
from __future__ import annotations

import json
import math

from perfseer_client.v1 import perfseer_pb2 as pb
from seernet.predictor import Predictor
from seernet.spaces import ModelConfig

from .core import PredictAnswer, PredictQuery
from .errors import invalid


def config_from_proto(message: pb.ModelSpaceConfig, batch_size: int = 1) -> ModelConfig:
    try:
        arch = json.loads(message.arch_json or "{}")
    except json.JSONDecodeError as exc:
        raise invalid(f"config.arch_json is not JSON: {exc}") from None
    if not isinstance(arch, dict):
        raise invalid("config.arch_json must be a JSON object")
    if not message.space:
        raise invalid("config.space is empty")
    return ModelConfig(message.space, arch, max(1, batch_size), message.input_size or 32)


def query_from_proto(request: pb.PredictRequest) -> PredictQuery:
    which = request.WhichOneof("model")
    return PredictQuery(
        request_id=request.request_id,
        onnx=bytes(request.onnx) if which == "onnx" else None,
        config=config_from_proto(request.config, request.batch_size) if which == "config" else None,
        model_sha256=request.model_sha256 if which == "model_sha256" else "",
        batch_size=int(request.batch_size),
        device=request.device,
        metrics=tuple(request.metrics),
        predictor_version=request.predictor_version,
        dims={k: int(v) for k, v in request.dims.items()},
    )


def answer_to_proto(answer: PredictAnswer) -> pb.PredictResponse:
    return pb.PredictResponse(
        request_id=answer.request_id,
        metrics=[pb.MetricValue(name=m, value=v, uncertainty=answer.uncertainty.get(m, math.nan))
                 for m, v in answer.values.items()],
        predictor=answer.predictor, predictor_version=answer.predictor_version, cache_hit=answer.cache_hit,
        model_sha256=answer.model_sha256, server_ms=answer.server_ms)


def predictor_to_proto(predictor: Predictor, is_default: bool, history: list[str]) -> pb.PredictorInfo:
    test = predictor.manifest.get("scores", {}).get("test", {})
    return pb.PredictorInfo(
        name=predictor.name, version=predictor.version, device_key=predictor.device_key,
        metrics=list(predictor.metrics), test_mape={m: s["mape"] for m, s in test.items() if "mape" in s},
        created_at=str(predictor.manifest.get("created_at", "")), members=len(predictor.members),
        is_default=is_default, previous_versions=history,
        manifest_json=json.dumps({k: v for k, v in predictor.manifest.items() if k not in ("features",)}, sort_keys=True))


def job_to_proto(job_id: str, status: dict) -> pb.JobStatus:
    metrics = json.loads(status.get("metrics") or "{}")
    return pb.JobStatus(job_id=job_id, status=status.get("status", ""), attempts=int(status.get("attempts", 0)),
                        worker=status.get("worker", ""), reason=status.get("reason", ""),
                        metrics={k: float(v) for k, v in metrics.items() if v is not None})
