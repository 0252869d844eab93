"""Why a model was refused.  Each problem has its own type so callers (CLI, gRPC) map it exactly."""
from __future__ import annotations


def clip(text: str, length: int = 64) -> str:
    """Client-chosen names go into error messages shortened: a message never echoes unbounded input."""
    return text if len(text) <= length else text[:length] + "…"


class GraphBuildError(ValueError):
    """Base: the model cannot be turned into a performance graph."""


class NotOnnxError(GraphBuildError):
    """The bytes are not a serialised ONNX model."""


class ExternalDataError(GraphBuildError):
    """The model refers to tensors stored in external files, which we never open."""


class LimitExceededError(GraphBuildError):
    """The model is over a configured size limit."""


class ModelTooLargeError(LimitExceededError):
    """More bytes than ``Limits.max_model_bytes``."""


class TooManyNodesError(LimitExceededError):
    """More operators than ``Limits.max_nodes``."""


class UnknownDimensionError(GraphBuildError):
    """A tensor dimension stays unknown after binding the batch size and shape inference."""


class InvalidBatchSizeError(GraphBuildError):
    """Batch size outside 1..``Limits.max_batch_size``."""


class BuildBudgetError(LimitExceededError):
    """Building the graph took more CPU time than ``Limits.max_build_cpu_s``."""


class ImplausibleModelError(GraphBuildError):
    """The model's costs are not finite numbers (totals overflow), so no prediction can be trusted."""
