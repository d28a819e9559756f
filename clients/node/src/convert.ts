// Between the protobuf messages (logbook.v1, loaded by @grpc/proto-loader
// from the package's proto/, a copy of the repository's) and the client's
// types. Pure functions, besides loading the proto once.

import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import {
  ANY, NO_STREAM, STREAM_EXISTS, bytesOf, RecordedEvent,
  type AppendResult, type BrokenEvent, type ConsumerGroupInfo, type Delivery,
  type ExpectedVersion, type NewEvent, type Snapshot, type StreamInfo, type StreamState,
  type VerifyResult,
} from "./types.js";

const PROTO_ROOT = fileURLToPath(new URL("../proto/", import.meta.url));

// A message as proto-loader hands it: camelCase fields, uint64 as numbers,
// enums as their names, unset optional fields absent, repeated ones [], and
// a oneof's name holding the name of its field that is set.
export type Message = any;

const PACKAGE = protoLoader.loadSync("logbook/v1/event_store.proto", {
  includeDirs: [PROTO_ROOT],
  longs: Number,
  enums: String,
  defaults: false,
  oneofs: true,
  arrays: true,
});

export const EventStoreClient = grpc.makeGenericClientConstructor(
  PACKAGE["logbook.v1.EventStore"] as grpc.ServiceDefinition, "EventStore");

const EMPTY = Buffer.alloc(0);

export function expectedVersion(expected: ExpectedVersion): Message {
  switch (expected) {
    case ANY: return { any: {} };
    case NO_STREAM: return { noStream: {} };
    case STREAM_EXISTS: return { streamExists: {} };
  }
  if (typeof expected === "number" && Number.isSafeInteger(expected) && expected >= 0) {
    return { exact: expected };
  }
  throw new TypeError(`expectedVersion: ${String(expected)} is not ANY, NO_STREAM, ` +
    "STREAM_EXISTS or a version (an integer >= 0)");
}

export function appendRequest(streamId: string, events: readonly NewEvent[],
                              expected: ExpectedVersion): Message {
  return {
    streamId,
    expectedVersion: expectedVersion(expected),
    events: events.map((e) => ({
      eventId: e.eventId,
      type: e.type,
      data: e.data === undefined ? Buffer.from("{}") : bytesOf(e.data),
      metadata: bytesOf(e.metadata),
      contentType: e.contentType,
      correlationId: e.correlationId || undefined,
      causationId: e.causationId || undefined,
      schemaVersion: e.schemaVersion,
    })),
  };
}

export function appendResult(r: Message): AppendResult {
  return {
    firstVersion: r.firstVersion ?? 0,
    lastVersion: r.lastVersion ?? 0,
    firstPosition: r.firstPosition ?? 0,
    lastPosition: r.lastPosition ?? 0,
    eventIds: r.eventIds,
    headHash: r.headHash ?? EMPTY,
  };
}

export function recordedEvent(e: Message): RecordedEvent {
  const t = e.recordedAt ?? {};
  const recordedAt = new Date((t.seconds ?? 0) * 1000 + Math.floor((t.nanos ?? 0) / 1e6));
  return new RecordedEvent(
    e.eventId ?? "", e.type ?? "", e.data ?? EMPTY, e.metadata ?? EMPTY, e.contentType ?? "",
    e.correlationId ?? "", e.causationId ?? "", e.streamId ?? "", e.streamVersion ?? 0,
    e.globalPosition ?? 0, recordedAt, e.schemaVersion, e.redactionReason ?? "",
    e.writtenBy ?? "", e.tenant ?? "", e.traceparent ?? "");
}

export interface FilterOptions {
  /** Streams of this category (the stream id up to the first '-'). */
  category?: string;
  /** Stream ids starting with this. */
  streamPrefix?: string;
  /** Events of any of these types. */
  eventTypes?: readonly string[];
}

export function filterOf(f: FilterOptions): Message | undefined {
  const types = [...(f.eventTypes ?? [])];
  if (!f.category && !f.streamPrefix && types.length === 0) return undefined;
  return { category: f.category || undefined, streamPrefix: f.streamPrefix || undefined,
           eventTypes: types };
}

/**
 * Events per message reads and subscriptions ask for: batches cost far
 * less to receive than one message per event.
 */
export const EVENTS_PER_MESSAGE = 500;

/** `target`: "$all" or a stream id (ignored when `category` is given). */
export function subscribeRequest(target: string, f: FilterOptions, afterPosition: number | undefined,
                                 fromNow: boolean): Message {
  const request: Message = {
    filter: filterOf({streamPrefix: f.streamPrefix, eventTypes: f.eventTypes}),
    maxEventsPerMessage: EVENTS_PER_MESSAGE,
  };
  if (f.category) request.category = f.category;
  else if (target === "$all") request.all = {};
  else request.streamId = target;
  if (afterPosition !== undefined) request.afterPosition = afterPosition;
  else if (fromNow) request.fromNow = {};
  else request.fromBeginning = {};
  return request;
}

/** The events of a Subscribe answer (none for caughtUp and the like). */
export function subscribedEvents(r: Message): Message[] {
  switch (r.content) {
    case "event": return [r.event];
    case "events": return r.events.events;
    default: return [];
  }
}

/** The position of a Subscribe answer's caughtUp or checkpoint (every
 * event of the target at or below it was delivered), or undefined. */
export function progress(r: Message): number | undefined {
  if (r.content === "caughtUp") return r.caughtUp.globalPosition ?? 0;
  if (r.content === "checkpoint") return r.checkpoint.globalPosition ?? 0;
  return undefined;
}

/** The deliveries of a Consume answer. */
export function deliveries(r: Message): Delivery[] {
  const list: Message[] = r.content === "delivery" ? [r.delivery]
    : r.content === "deliveries" ? r.deliveries.deliveries : [];
  return list.map((d) => ({ deliveryId: d.deliveryId ?? 0, event: recordedEvent(d.event ?? {}),
                            attempt: d.attempt ?? 0 }));
}

export function streamInfo(r: Message): StreamInfo {
  return {
    streamId: r.streamId ?? "",
    version: r.version ?? 0,
    lastPosition: r.lastPosition ?? 0,
    headHash: r.headHash ?? EMPTY,
    state: (r.state ?? "ACTIVE") as StreamState,
    firstVersion: r.firstVersion ?? 0,
  };
}

export function snapshot(r: Message): Snapshot {
  return { streamId: r.streamId ?? "", streamVersion: r.streamVersion ?? 0,
           schemaVersion: r.schemaVersion ?? 0, state: r.state ?? EMPTY };
}

export function verifyResult(r: Message): VerifyResult {
  const b = r.firstBroken;
  const broken: BrokenEvent | undefined = b && {
    streamId: b.streamId ?? "", streamVersion: b.streamVersion ?? 0,
    globalPosition: b.globalPosition ?? 0, reason: b.reason ?? "BREAK_REASON_UNSPECIFIED",
    detail: b.detail ?? "",
  };
  return { ok: r.ok ?? false, eventsChecked: r.eventsChecked ?? 0,
           streamsChecked: r.streamsChecked ?? 0, headHash: r.headHash ?? EMPTY,
           firstBroken: broken };
}

export function consumerGroupInfo(r: Message): ConsumerGroupInfo {
  const s = r.settings ?? {};
  return {
    group: r.group ?? "",
    strategy: s.strategy ?? "PER_STREAM",
    ackTimeoutMs: s.ackTimeoutMs ?? 0,
    maxDeliveries: s.maxDeliveries ?? 0,
    maxInFlight: s.maxInFlight ?? 0,
    checkpointPosition: r.checkpointPosition ?? 0,
    headPosition: r.headPosition ?? 0,
    lagEvents: r.lagEvents ?? 0,
    lagSeconds: r.lagSeconds ?? 0,
    members: (r.members ?? []).map((m: Message) => ({
      consumer: m.consumer ?? "", instance: m.instance ?? "", inFlight: m.inFlight ?? 0,
      streamsOwned: m.streamsOwned ?? 0,
    })),
    inFlight: r.inFlight ?? 0,
    parked: r.parked ?? 0,
    delivered: r.delivered ?? 0,
    acked: r.acked ?? 0,
  };
}
