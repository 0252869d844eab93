"""proto ↔ domain, in one place (the servicer stays thin)."""
from __future__ import annotations

import json
import math

from perfseer_client.v1 import perfseer_pb2 as pb
from seernet.gpu.specs import GpuSpec, GpuSpecError
from seernet.predictor import Predictor
from seernet.settings import Limits
from seernet.spaces import ModelConfig

from .core import PredictAnswer, PredictQuery
from .errors import invalid


MAX_JSON_DEPTH = 8  # the deepest arch any space has is 4 levels


def _depth(text: str) -> int:
    """Nesting depth of a JSON text, counted without parsing it (a 1e5-deep text must not reach the parser)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            escaped, in_string = (False, in_string) if escaped else (ch == "\\", ch != '"')
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def config_from_proto(message: pb.ModelSpaceConfig, batch_size: int, limits: Limits) -> ModelConfig:
    if not message.space:
        raise invalid("config.space is empty")
    text = message.arch_json or "{}"
    if len(text) > limits.max_arch_json_bytes:
        raise invalid(f"config.arch_json is {len(text):,} characters, over the limit of "
                      f"{limits.max_arch_json_bytes:,}")
    if _depth(text) > MAX_JSON_DEPTH:
        raise invalid(f"config.arch_json nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        arch = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise invalid(f"config.arch_json is not JSON: {str(exc)[:120]}") from None
    if not isinstance(arch, dict):
        raise invalid("config.arch_json must be a JSON object")
    return ModelConfig(message.space[:64], arch, batch_size, message.input_size or 32)


def query_from_proto(request: pb.PredictRequest, limits: Limits) -> PredictQuery:
    which = request.WhichOneof("model")
    return PredictQuery(
        request_id=request.request_id,
        onnx=bytes(request.onnx) if which == "onnx" else None,
        config=config_from_proto(request.config, request.batch_size, limits) if which == "config" else None,
        model_sha256=request.model_sha256 if which == "model_sha256" else "",
        batch_size=int(request.batch_size),
        device=request.device,
        metrics=tuple(request.metrics),
        predictor_version=request.predictor_version,
        dims={k: int(v) for k, v in request.dims.items()},
        gpu_spec=gpu_spec_from_proto(request.gpu_spec) if request.HasField("gpu_spec") else None,
        explain=bool(request.explain),
        explain_top_k=_top_k(request.explain_top_k),
    )


def _top_k(value: int) -> int:
    if value < 0:
        raise invalid(f"explain_top_k must be 0 (the server's default) or positive, got {value}")
    return int(value)


def gpu_spec_from_proto(message: pb.GpuSpec) -> GpuSpec:
    fields = {f: getattr(message, f) for f in GpuSpec.__dataclass_fields__}
    try:
        return GpuSpec.from_dict(fields)
    except GpuSpecError as exc:
        raise invalid(f"gpu_spec: {exc}") from None


def answer_to_proto(answer: PredictAnswer) -> pb.PredictResponse:
    return pb.PredictResponse(
        request_id=answer.request_id,
        metrics=[pb.MetricValue(name=m, value=v, uncertainty=answer.uncertainty.get(m, math.nan))
                 for m, v in answer.values.items()],
        predictor=answer.predictor, predictor_version=answer.predictor_version, cache_hit=answer.cache_hit,
        model_sha256=answer.model_sha256, server_ms=answer.server_ms, batch_size=answer.batch_size,
        operators=[pb.OperatorCost(node=op["node"][:200], op_type=op["op_type"], infer_time_ms=op["infer_time_ms"],
                                   share=op["share"], fused=[f[:200] for f in op.get("fused", [])])
                   for op in answer.operators])


def predictor_to_proto(predictor: Predictor, is_default: bool, history: list[str]) -> pb.PredictorInfo:
    """Any predictor: SeerNet, tabular, or the GPU kernel cost model (its manifest lists the GPUs it knows)."""
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
