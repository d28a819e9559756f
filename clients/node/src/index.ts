// Logbook's TypeScript client (README.md).
//
//     import { Client, NewEvent } from "@logbook/client";
//     const lb = new Client("127.0.0.1:50051", { token });
//     await lb.append("order-1", [new NewEvent("OrderPlaced", { total: 30 })]);

export {
  Client, MAX_PAGE,
  type AppendOptions, type CallOptions, type ClientOptions, type CreateConsumerGroupOptions,
  type ReadAllOptions, type ReadStreamOptions, type SubscribeOptions,
} from "./client.js";
export type { FilterOptions } from "./convert.js";
export {
  AlreadyExists, DataLoss, DeadlineExceeded, FailedPrecondition, InvalidArgument, LogbookError,
  NotFound, PermissionDenied, ResourceExhausted, Unauthenticated, Unavailable,
  WrongExpectedVersion,
} from "./errors.js";
export {
  ANY, NO_STREAM, STREAM_EXISTS, NewEvent, RecordedEvent, newEventId,
  type AppendResult, type BrokenEvent, type ConsumerGroupInfo, type ConsumerGroupMember,
  type Delivery, type ExpectedVersion, type Loaded, type NewEventOptions, type Payload,
  type Snapshot, type StreamInfo, type StreamState, type VerifyResult,
} from "./types.js";
export { Park, Retry, Skip, Worker, type Handler, type WorkerOptions } from "./worker.js";
