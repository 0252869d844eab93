"""Domain errors → gRPC status codes, decided in one place."""
from __future__ import annotations

import grpc

from seernet.errors import (ExternalDataError, GraphBuildError, InvalidBatchSizeError, LimitExceededError,
                            NotOnnxError, UnknownDimensionError)


class ServiceError(Exception):
    """An error with the status code the client should see."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
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
    return ServiceError(grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}")
