// Errors: every failed call rejects with a LogbookError, or the subclass for
// its gRPC status code, with the server's message.

import { Metadata, status, type ServiceError } from "@grpc/grpc-js";

export class LogbookError extends Error {
  /** The gRPC status code (`status` of @grpc/grpc-js). */
  readonly code: status;
  /** The server's message, without the code. */
  readonly details: string;

  constructor(code: status, details: string) {
    super(`${status[code] ?? code}: ${details}`);
    this.name = new.target.name;
    this.code = code;
    this.details = details;
  }
}

/** ABORTED: the stream is not at the version the append expected;
 * actualVersion is where it is (undefined: it does not exist). */
export class WrongExpectedVersion extends LogbookError {
  constructor(code: status, details: string, readonly actualVersion: number | undefined) {
    super(code, details);
  }
}

export class NotFound extends LogbookError {}
export class AlreadyExists extends LogbookError {}
export class InvalidArgument extends LogbookError {}
export class FailedPrecondition extends LogbookError {}
export class PermissionDenied extends LogbookError {}
export class Unauthenticated extends LogbookError {}
/** The server or the network went away; the same call may be made again. */
export class Unavailable extends LogbookError {}
export class DeadlineExceeded extends LogbookError {}
/** A limit: too big, too many subscriptions, a quota. */
export class ResourceExhausted extends LogbookError {}
/** A snapshot no longer matches what it was computed from. */
export class DataLoss extends LogbookError {}

const BY_CODE: Partial<Record<status, new (code: status, details: string) => LogbookError>> = {
  [status.NOT_FOUND]: NotFound,
  [status.ALREADY_EXISTS]: AlreadyExists,
  [status.INVALID_ARGUMENT]: InvalidArgument,
  [status.FAILED_PRECONDITION]: FailedPrecondition,
  [status.PERMISSION_DENIED]: PermissionDenied,
  [status.UNAUTHENTICATED]: Unauthenticated,
  [status.UNAVAILABLE]: Unavailable,
  [status.DEADLINE_EXCEEDED]: DeadlineExceeded,
  [status.RESOURCE_EXHAUSTED]: ResourceExhausted,
  [status.DATA_LOSS]: DataLoss,
};

export function errorFrom(code: status, details: string, trailers?: Metadata): LogbookError {
  if (code === status.ABORTED) {
    const actual = trailers?.get("logbook-actual-version")[0];
    return new WrongExpectedVersion(code, details, actual === undefined ? undefined : Number(actual));
  }
  const Kind = BY_CODE[code] ?? LogbookError;
  return new Kind(code, details);
}

/** A grpc-js call error as a LogbookError; anything else as it is. */
export function fromServiceError(e: unknown): unknown {
  const s = e as Partial<ServiceError>;
  if (typeof s?.code !== "number" || !(e instanceof Error)) return e;
  return errorFrom(s.code, s.details ?? "", s.metadata);
}

/** gRPC codes after which a call is worth making again: the server or the
 * network went away, or the server is shutting down. */
export const RETRYABLE: ReadonlySet<status> = new Set([status.UNAVAILABLE, status.DEADLINE_EXCEEDED]);
