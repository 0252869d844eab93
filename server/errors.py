"""Domain errors → gRPC status codes, decided in one place."""
from __future__ import annotations

import grpc

from seernet.errors import (ExternalDataError, GraphBuildError, InvalidBatchSizeError, LimitExceededError,
                            NotOnnxError, UnknownDimensionError)


MAX_MESSAGE_CHARS = 600  # a status message never echoes unbounded client input


class ServiceError(Exception):
    """An error with the status code the client should see."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        message = message if len(message) <= MAX_MESSAGE_CHARS else message[:MAX_MESSAGE_CHARS] + "…"
        super().__init__(message)
        self.code = code
        self.message = message


def invalid(message: str) -> ServiceError:
    return ServiceError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> ServiceError:
    return ServiceError(grpc.StatusCode.NOT_FOUND, message)


def exhausted(message: str) -> ServiceError:
    return ServiceError(grpc.StatusCode.RESOURCE_EXHAUSTED, message)


def unavailable(message: str) -> ServiceError:
    return ServiceError(grpc.StatusCode.UNAVAILABLE, message)


def from_exception(exc: BaseException) -> ServiceError:
    """The status for any exception a request can raise; unknown ones are INTERNAL, never a crash."""
    if isinstance(exc, ServiceError):
        return exc
    if isinstance(exc, LimitExceededError):
        return exhausted(str(exc))
    if isinstance(exc, (NotOnnxError, ExternalDataError, InvalidBatchSizeError, UnknownDimensionError,
                        GraphBuildError, ValueError)):
        return invalid(str(exc))
    if isinstance(exc, (RecursionError, MemoryError)):
        return exhausted(f"the request is too large or too deep to process ({type(exc).__name__})")
    return ServiceError(grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}")
