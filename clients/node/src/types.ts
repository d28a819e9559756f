// The values the client takes and returns: plain, typed objects.
//
// Versions and positions are JavaScript numbers: exact up to 2^53 - 1,
// which no log reaches (a million events a second for 285 years).

import { randomFillSync } from "node:crypto";

/** Whatever the stream's version. */
export const ANY = "any";
/** The stream must not exist yet. */
export const NO_STREAM = "no_stream";
/** The stream must exist. */
export const STREAM_EXISTS = "stream_exists";
/** What an append expects of its stream: one of the three above, or the
 * exact version of the stream's last event (an integer >= 0). */
export type ExpectedVersion = typeof ANY | typeof NO_STREAM | typeof STREAM_EXISTS | number;

/** A UUIDv7: 48 bits of Unix milliseconds, then random bits. Made by the
 * client, once per event, so that a retried append is recognised as the
 * same one (docs/api.md "Idempotency"). */
export function newEventId(): string {
  const b = randomFillSync(Buffer.alloc(16));
  b.writeUIntBE(Date.now(), 0, 6);
  b[6] = 0x70 | (b[6] & 0x0f); // Version 7.
  b[8] = 0x80 | (b[8] & 0x3f); // Variant 10.
  const h = b.toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Data or metadata: bytes (a Uint8Array) are stored as they are; anything
 * else as its JSON (JSON.stringify; null is "null"). */
export type Payload = unknown;

/** The bytes stored for `value`; none for undefined. */
export function bytesOf(value: Payload): Buffer {
  if (value === undefined) return Buffer.alloc(0);
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  const json = JSON.stringify(value);
  if (json === undefined) throw new TypeError(`cannot store ${typeof value} as JSON`);
  return Buffer.from(json);
}

export interface NewEventOptions {
  metadata?: Payload;
  /** Default "application/json", under which data must be valid JSON. */
  contentType?: string;
  correlationId?: string;
  causationId?: string;
  /** The version of the event's schema; unset: none. */
  schemaVersion?: number;
  /** Default: a new UUIDv7. */
  eventId?: string;
}

/** An event to append. Its id is made here, so that appending the same
 * NewEvent again is a retry, not a second event. */
export class NewEvent {
  readonly eventId: string;
  readonly metadata: Payload;
  readonly contentType: string;
  readonly correlationId: string;
  readonly causationId: string;
  readonly schemaVersion: number | undefined;

  /** `data` undefined stores `{}`. */
  constructor(readonly type: string, readonly data?: Payload, options: NewEventOptions = {}) {
    this.eventId = options.eventId ?? newEventId();
    this.metadata = options.metadata;
    this.contentType = options.contentType ?? "application/json";
    this.correlationId = options.correlationId ?? "";
    this.causationId = options.causationId ?? "";
    this.schemaVersion = options.schemaVersion;
  }
}

/** An event as the log holds it. */
export class RecordedEvent {
  constructor(
    readonly eventId: string,
    readonly type: string,
    readonly data: Buffer,
    readonly metadata: Buffer,
    readonly contentType: string,
    readonly correlationId: string,
    readonly causationId: string,
    readonly streamId: string,
    readonly streamVersion: number,
    readonly globalPosition: number,
    readonly recordedAt: Date,
    /** Undefined when the event was appended without one. */
    readonly schemaVersion: number | undefined,
    /** Set when the event was redacted: data and metadata are then empty. */
    readonly redactionReason: string,
    readonly writtenBy: string,
    readonly tenant: string,
    readonly traceparent: string,
  ) {}

  /** The data, parsed as JSON. */
  json(): any {
    return JSON.parse(this.data.toString("utf8"));
  }
}

export interface AppendResult {
  firstVersion: number;
  lastVersion: number;
  firstPosition: number;
  lastPosition: number;
  /** As stored, in the order given. */
  eventIds: string[];
  /** The stream's head receipt hash after this append (32 bytes). */
  headHash: Buffer;
}

export type StreamState = "ACTIVE" | "SOFT_DELETED" | "TOMBSTONED";

export interface StreamInfo {
  streamId: string;
  /** The version of the stream's last event. */
  version: number;
  lastPosition: number;
  headHash: Buffer;
  state: StreamState;
  /** The first version stream reads return (after a soft delete: the
   * deleted version + 1). */
  firstVersion: number;
}

export interface Snapshot {
  streamId: string;
  streamVersion: number;
  schemaVersion: number;
  state: Buffer;
}

/** What an aggregate is rebuilt from: the newest snapshot (if any) and the
 * events after it. */
export interface Loaded {
  snapshot: Snapshot | undefined;
  events: RecordedEvent[];
}

export interface BrokenEvent {
  streamId: string;
  streamVersion: number;
  globalPosition: number;
  /** A BreakReason of the proto, e.g. "DATA_CHANGED". */
  reason: string;
  detail: string;
}

export interface VerifyResult {
  ok: boolean;
  eventsChecked: number;
  streamsChecked: number;
  headHash: Buffer;
  firstBroken: BrokenEvent | undefined;
}

/** An event a consumer group hands a worker: deliveryId is its global
 * position; attempt 1 is the first delivery. */
export interface Delivery {
  deliveryId: number;
  event: RecordedEvent;
  attempt: number;
}

export interface ConsumerGroupMember {
  consumer: string;
  instance: string;
  inFlight: number;
  streamsOwned: number;
}

/** GetConsumerGroup's answer (proto ConsumerGroupInfo). */
export interface ConsumerGroupInfo {
  group: string;
  strategy: "PER_STREAM" | "ROUND_ROBIN";
  ackTimeoutMs: number;
  maxDeliveries: number;
  maxInFlight: number;
  /** Every event of the target at or below it was acked, skipped, parked
   * or filtered out. */
  checkpointPosition: number;
  headPosition: number;
  lagEvents: number;
  lagSeconds: number;
  members: ConsumerGroupMember[];
  inFlight: number;
  parked: number;
  /** Deliveries made (every attempt) and events acked, since creation. */
  delivered: number;
  acked: number;
}
