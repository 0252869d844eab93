from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ModelSpaceConfig(_message.Message):
    __slots__ = ("space", "arch_json", "input_size")
    SPACE_FIELD_NUMBER: _ClassVar[int]
    ARCH_JSON_FIELD_NUMBER: _ClassVar[int]
    INPUT_SIZE_FIELD_NUMBER: _ClassVar[int]
    space: str
    arch_json: str
    input_size: int
    def __init__(self, space: _Optional[str] = ..., arch_json: _Optional[str] = ..., input_size: _Optional[int] = ...) -> None: ...

class PredictRequest(_message.Message):
    __slots__ = ("request_id", "onnx", "config", "model_sha256", "batch_size", "device", "metrics", "predictor_version", "dims", "gpu_spec", "explain", "explain_top_k")
    class DimsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ONNX_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    MODEL_SHA256_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    PREDICTOR_VERSION_FIELD_NUMBER: _ClassVar[int]
    DIMS_FIELD_NUMBER: _ClassVar[int]
    GPU_SPEC_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_TOP_K_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    onnx: bytes
    config: ModelSpaceConfig
    model_sha256: str
    batch_size: int
    device: str
    metrics: _containers.RepeatedScalarFieldContainer[str]
    predictor_version: str
    dims: _containers.ScalarMap[str, int]
    gpu_spec: GpuSpec
    explain: bool
    explain_top_k: int
    def __init__(self, request_id: _Optional[str] = ..., onnx: _Optional[bytes] = ..., config: _Optional[_Union[ModelSpaceConfig, _Mapping]] = ..., model_sha256: _Optional[str] = ..., batch_size: _Optional[int] = ..., device: _Optional[str] = ..., metrics: _Optional[_Iterable[str]] = ..., predictor_version: _Optional[str] = ..., dims: _Optional[_Mapping[str, int]] = ..., gpu_spec: _Optional[_Union[GpuSpec, _Mapping]] = ..., explain: _Optional[bool] = ..., explain_top_k: _Optional[int] = ...) -> None: ...

class OperatorCost(_message.Message):
    __slots__ = ("node", "op_type", "infer_time_ms", "share", "fused")
    NODE_FIELD_NUMBER: _ClassVar[int]
    OP_TYPE_FIELD_NUMBER: _ClassVar[int]
    INFER_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    SHARE_FIELD_NUMBER: _ClassVar[int]
    FUSED_FIELD_NUMBER: _ClassVar[int]
    node: str
    op_type: str
    infer_time_ms: float
    share: float
    fused: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, node: _Optional[str] = ..., op_type: _Optional[str] = ..., infer_time_ms: _Optional[float] = ..., share: _Optional[float] = ..., fused: _Optional[_Iterable[str]] = ...) -> None: ...

class GpuSpec(_message.Message):
    __slots__ = ("name", "memory_gb", "bandwidth_gbs", "sms", "cores_per_sm", "clock_mhz", "fp32_gflops", "l2_mb")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MEMORY_GB_FIELD_NUMBER: _ClassVar[int]
    BANDWIDTH_GBS_FIELD_NUMBER: _ClassVar[int]
    SMS_FIELD_NUMBER: _ClassVar[int]
    CORES_PER_SM_FIELD_NUMBER: _ClassVar[int]
    CLOCK_MHZ_FIELD_NUMBER: _ClassVar[int]
    FP32_GFLOPS_FIELD_NUMBER: _ClassVar[int]
    L2_MB_FIELD_NUMBER: _ClassVar[int]
    name: str
    memory_gb: float
    bandwidth_gbs: float
    sms: int
    cores_per_sm: int
    clock_mhz: float
    fp32_gflops: float
    l2_mb: float
    def __init__(self, name: _Optional[str] = ..., memory_gb: _Optional[float] = ..., bandwidth_gbs: _Optional[float] = ..., sms: _Optional[int] = ..., cores_per_sm: _Optional[int] = ..., clock_mhz: _Optional[float] = ..., fp32_gflops: _Optional[float] = ..., l2_mb: _Optional[float] = ...) -> None: ...

class MetricValue(_message.Message):
    __slots__ = ("name", "value", "uncertainty")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    UNCERTAINTY_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: float
    uncertainty: float
    def __init__(self, name: _Optional[str] = ..., value: _Optional[float] = ..., uncertainty: _Optional[float] = ...) -> None: ...

class PredictResponse(_message.Message):
    __slots__ = ("request_id", "metrics", "predictor", "predictor_version", "cache_hit", "model_sha256", "server_ms", "batch_size", "operators")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    PREDICTOR_FIELD_NUMBER: _ClassVar[int]
    PREDICTOR_VERSION_FIELD_NUMBER: _ClassVar[int]
    CACHE_HIT_FIELD_NUMBER: _ClassVar[int]
    MODEL_SHA256_FIELD_NUMBER: _ClassVar[int]
    SERVER_MS_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    OPERATORS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    metrics: _containers.RepeatedCompositeFieldContainer[MetricValue]
    predictor: str
    predictor_version: str
    cache_hit: bool
    model_sha256: str
    server_ms: float
    batch_size: int
    operators: _containers.RepeatedCompositeFieldContainer[OperatorCost]
    def __init__(self, request_id: _Optional[str] = ..., metrics: _Optional[_Iterable[_Union[MetricValue, _Mapping]]] = ..., predictor: _Optional[str] = ..., predictor_version: _Optional[str] = ..., cache_hit: _Optional[bool] = ..., model_sha256: _Optional[str] = ..., server_ms: _Optional[float] = ..., batch_size: _Optional[int] = ..., operators: _Optional[_Iterable[_Union[OperatorCost, _Mapping]]] = ...) -> None: ...

class PredictBatchRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[PredictRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[PredictRequest, _Mapping]]] = ...) -> None: ...

class PredictBatchItem(_message.Message):
    __slots__ = ("request_id", "code", "message", "response")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    code: int
    message: str
    response: PredictResponse
    def __init__(self, request_id: _Optional[str] = ..., code: _Optional[int] = ..., message: _Optional[str] = ..., response: _Optional[_Union[PredictResponse, _Mapping]] = ...) -> None: ...

class PredictBatchResponse(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[PredictBatchItem]
    def __init__(self, items: _Optional[_Iterable[_Union[PredictBatchItem, _Mapping]]] = ...) -> None: ...

class ListPredictorsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PredictorInfo(_message.Message):
    __slots__ = ("name", "version", "device_key", "metrics", "test_mape", "created_at", "members", "is_default", "previous_versions", "manifest_json")
    class TestMapeEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DEVICE_KEY_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    TEST_MAPE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    IS_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_JSON_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    device_key: str
    metrics: _containers.RepeatedScalarFieldContainer[str]
    test_mape: _containers.ScalarMap[str, float]
    created_at: str
    members: int
    is_default: bool
    previous_versions: _containers.RepeatedScalarFieldContainer[str]
    manifest_json: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., device_key: _Optional[str] = ..., metrics: _Optional[_Iterable[str]] = ..., test_mape: _Optional[_Mapping[str, float]] = ..., created_at: _Optional[str] = ..., members: _Optional[int] = ..., is_default: _Optional[bool] = ..., previous_versions: _Optional[_Iterable[str]] = ..., manifest_json: _Optional[str] = ...) -> None: ...

class ListPredictorsResponse(_message.Message):
    __slots__ = ("predictors",)
    PREDICTORS_FIELD_NUMBER: _ClassVar[int]
    predictors: _containers.RepeatedCompositeFieldContainer[PredictorInfo]
    def __init__(self, predictors: _Optional[_Iterable[_Union[PredictorInfo, _Mapping]]] = ...) -> None: ...

class GetPredictorRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class SubmitProfilingJobRequest(_message.Message):
    __slots__ = ("onnx", "config", "batch_size", "device")
    ONNX_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    onnx: bytes
    config: ModelSpaceConfig
    batch_size: int
    device: str
    def __init__(self, onnx: _Optional[bytes] = ..., config: _Optional[_Union[ModelSpaceConfig, _Mapping]] = ..., batch_size: _Optional[int] = ..., device: _Optional[str] = ...) -> None: ...

class SubmitProfilingJobResponse(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class JobStatus(_message.Message):
    __slots__ = ("job_id", "status", "attempts", "worker", "reason", "metrics")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    status: str
    attempts: int
    worker: str
    reason: str
    metrics: _containers.ScalarMap[str, float]
    def __init__(self, job_id: _Optional[str] = ..., status: _Optional[str] = ..., attempts: _Optional[int] = ..., worker: _Optional[str] = ..., reason: _Optional[str] = ..., metrics: _Optional[_Mapping[str, float]] = ...) -> None: ...

class ServerReadyRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ServerReadyResponse(_message.Message):
    __slots__ = ("ready", "predictors")
    READY_FIELD_NUMBER: _ClassVar[int]
    PREDICTORS_FIELD_NUMBER: _ClassVar[int]
    ready: bool
    predictors: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ready: _Optional[bool] = ..., predictors: _Optional[_Iterable[str]] = ...) -> None: ...

class PingRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PingResponse(_message.Message):
    __slots__ = ("server_time_ns",)
    SERVER_TIME_NS_FIELD_NUMBER: _ClassVar[int]
    server_time_ns: int
    def __init__(self, server_time_ns: _Optional[int] = ...) -> None: ...
