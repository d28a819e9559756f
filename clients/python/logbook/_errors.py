"""Errors: every failed call raises a LogbookError, or the subclass for its
gRPC status code, with the server's message."""

from __future__ import annotations

from typing import Optional

import grpc


class LogbookError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


class WrongExpectedVersion(LogbookError):
    """ABORTED: the stream is not at the version the append expected;
    actual_version is where it is (None: it does not exist)."""

    def __init__(self, code: grpc.StatusCode, message: str,
                 actual_version: Optional[int]) -> None:
        super().__init__(code, message)
        self.actual_version = actual_version


class NotFound(LogbookError):
    pass


class AlreadyExists(LogbookError):
    pass


class InvalidArgument(LogbookError):
    pass


class FailedPrecondition(LogbookError):
    pass


class PermissionDenied(LogbookError):
    pass


class Unauthenticated(LogbookError):
    pass


class Unavailable(LogbookError):
    pass


_BY_CODE = {
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
}


def error_from(code: grpc.StatusCode, message: str, trailers=()) -> LogbookError:
    if code == grpc.StatusCode.ABORTED:
        actual = None
        for key, value in trailers or ():
            if key == "logbook-actual-version":
                actual = int(value)
        return WrongExpectedVersion(code, message, actual)
    return _BY_CODE.get(code, LogbookError)(code, message)


def from_rpc_error(e: grpc.RpcError) -> LogbookError:
    return error_from(e.code(), e.details() or "", e.trailing_metadata())
