// The client: one gRPC channel to logbookd. Every failed call rejects with a
// LogbookError; a call given an AbortSignal rejects with the signal's reason
// (an AbortError) once it is aborted.

import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import * as grpc from "@grpc/grpc-js";
import * as convert from "./convert.js";
import type { FilterOptions, Message } from "./convert.js";
import { LogbookError, NotFound, RETRYABLE, fromServiceError } from "./errors.js";
import {
  ANY, type AppendResult, type ConsumerGroupInfo, type ExpectedVersion, type Loaded,
  type NewEvent, type RecordedEvent, type StreamInfo, type VerifyResult,
} from "./types.js";

/** The server's largest page (max_count). */
export const MAX_PAGE = 100_000;

export interface ClientOptions {
  /** Sent as "authorization: Bearer <token>" with every call. */
  token?: string;
  /** For a cross-tenant principal: the tenant to work on ("logbook-tenant"). */
  tenant?: string;
  /** CAs to trust (a PEM file's path, or its bytes): speak TLS. */
  tlsCa?: string | Buffer;
  /** A client certificate (mTLS), with tlsKey: speak TLS (trusting the
   * system's CAs unless tlsCa is given). */
  tlsCert?: string | Buffer;
  tlsKey?: string | Buffer;
  /** Milliseconds before a unary call or a read page gives up. Default 30,000. */
  timeoutMs?: number;
  /** grpc-js channel options, over these defaults: a connection quiet for
   * 30 s is pinged ("grpc.keepalive_time_ms"; the server allows every
   * 10 s) and dropped when 20 s pass without an answer, so that a
   * subscription on a connection that died silently resumes on a new one;
   * the server may send 1 MiB ahead on a call ("grpc-node.flow_control_window";
   * grpc-js's 64 KiB made catch-up 20% slower). */
  channelOptions?: grpc.ChannelOptions;
}

export interface CallOptions {
  signal?: AbortSignal;
}

export interface AppendOptions extends CallOptions {
  /** Times a call the network or the server lost is sent again. Default 3. */
  retries?: number;
  /** A W3C trace context stored with the events. */
  traceparent?: string;
}

export interface ReadStreamOptions extends CallOptions {
  /** First version (inclusive). Default: the start, or the end backward. */
  fromVersion?: number;
  backward?: boolean;
  /** Only events at or below this version (time travel). */
  untilVersion?: number;
  /** Events fetched per call, 1 to 100,000. Default 1,000. */
  pageSize?: number;
}

export interface ReadAllOptions extends CallOptions, FilterOptions {
  /** First global position (inclusive). Default: the start, or the end backward. */
  fromPosition?: number;
  backward?: boolean;
  untilPosition?: number;
  /** Events fetched per call, 1 to 100,000. Default 1,000. */
  pageSize?: number;
}

export interface SubscribeOptions extends CallOptions, FilterOptions {
  /** Events after this global position. Default: from the beginning. */
  afterPosition?: number;
  /** Only events appended from now on. */
  fromNow?: boolean;
  /** Called with the position at which the backlog was delivered. */
  onCaughtUp?: (position: number) => void;
  /** Subscribe again after the last event yielded when the connection is
   * lost. Default true. */
  resume?: boolean;
}

export interface CreateConsumerGroupOptions {
  /** The group's target: a category, a stream, or (neither) the whole log. */
  category?: string;
  streamId?: string;
  eventTypes?: readonly string[];
  /** Any event to any consumer; default PER_STREAM (one consumer per stream
   * at a time, in order). */
  roundRobin?: boolean;
  ackTimeoutMs?: number;
  maxDeliveries?: number;
  retryBackoffMs?: number;
  maxInFlight?: number;
}

function pem(value: string | Buffer | undefined): Buffer | null {
  if (value === undefined) return null;
  return typeof value === "string" ? readFileSync(value) : value;
}

/** The error a call given `signal` rejects with once it is aborted. */
export function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException("The operation was aborted", "AbortError");
}

/** Waits `ms`; rejects with the signal's reason when it aborts first. */
export async function pause(ms: number, signal?: AbortSignal): Promise<void> {
  try {
    await sleep(ms, undefined, { signal });
  } catch (e) {
    throw signal?.aborted ? abortReason(signal) : e;
  }
}

/**
 * A connection to logbookd: one channel, which every call shares. Calls may
 * run concurrently; the iterables each hold a call of their own.
 *
 *     const lb = new Client("127.0.0.1:50051");
 *     await lb.append("order-1", [new NewEvent("OrderPlaced", { total: 30 })]);
 *     for await (const e of lb.readStream("order-1")) console.log(e.type);
 *     lb.close();
 */
export class Client {
  readonly address: string;
  readonly timeoutMs: number;
  /** @internal */
  readonly stub: grpc.Client & Record<string, Function>;
  /** @internal */
  readonly metadata: grpc.Metadata;
  /** @internal */
  closed = false;

  constructor(address = "127.0.0.1:50051", options: ClientOptions = {}) {
    this.address = address;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    const tls = options.tlsCa !== undefined || options.tlsCert !== undefined;
    const credentials = tls
      ? grpc.credentials.createSsl(pem(options.tlsCa), pem(options.tlsKey), pem(options.tlsCert))
      : grpc.credentials.createInsecure();
    this.stub = new convert.EventStoreClient(address, credentials, {
      "grpc.keepalive_time_ms": 30_000, "grpc.keepalive_timeout_ms": 20_000,
      "grpc-node.flow_control_window": 1 << 20,
      ...options.channelOptions,
    }) as never;
    this.metadata = new grpc.Metadata();
    if (options.token) this.metadata.set("authorization", `Bearer ${options.token}`);
    if (options.tenant) this.metadata.set("logbook-tenant", options.tenant);
  }

  /** Closes the channel: calls not yet started fail with Unavailable, calls
   * in progress go on until they end, and subscriptions and workers no
   * longer resume. */
  close(): void {
    this.closed = true;
    this.stub.close();
  }

  /** @internal The metadata of a call; waitForReady: wait for the channel
   * to connect (again) instead of failing at once. */
  callMetadata(waitForReady = false, extra?: Record<string, string>): grpc.Metadata {
    const md = this.metadata.clone();
    for (const [k, v] of Object.entries(extra ?? {})) md.set(k, v);
    if (waitForReady) md.setOptions({ waitForReady: true });
    return md;
  }

  private deadline(): Date {
    return new Date(Date.now() + this.timeoutMs);
  }

  private unary(method: string, request: Message, options: { signal?: AbortSignal,
                metadata?: grpc.Metadata } = {}): Promise<Message> {
    const { signal } = options;
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(abortReason(signal));
      const onAbort = () => call.cancel();
      const call: grpc.ClientUnaryCall = this.stub[method](
        request, options.metadata ?? this.metadata, { deadline: this.deadline() },
        (err: grpc.ServiceError | null, response: Message) => {
          signal?.removeEventListener("abort", onAbort);
          if (signal?.aborted) reject(abortReason(signal));
          else if (err) reject(fromServiceError(err));
          else resolve(response);
        });
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /**
   * The messages of a server-streaming call. Ending the iteration early
   * (break) cancels the call.
   */
  private async *serverStream(method: string, request: Message, signal: AbortSignal | undefined,
                              metadata: grpc.Metadata, deadline?: Date): AsyncGenerator<Message> {
    signal?.throwIfAborted();
    const call: grpc.ClientReadableStream<Message> =
      this.stub[method](request, metadata, deadline ? { deadline } : {});
    const onAbort = () => call.cancel();
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      for await (const r of call) yield r;
    } catch (e) {
      if (signal?.aborted) throw abortReason(signal);
      throw fromServiceError(e);
    } finally {
      signal?.removeEventListener("abort", onAbort);
      call.cancel();
    }
  }

  // --- Writing.

  /**
   * Appends `events` to the stream, all or none. A call the network or the
   * server lost is sent again (up to `retries` times): the events' ids were
   * made by the client, so the server stores them once. Rejects with
   * WrongExpectedVersion (with actualVersion) when the stream is elsewhere.
   */
  async append(streamId: string, events: readonly NewEvent[],
               expectedVersion: ExpectedVersion = ANY,
               options: AppendOptions = {}): Promise<AppendResult> {
    const request = convert.appendRequest(streamId, events, expectedVersion);
    const retries = options.retries ?? 3;
    const extra = options.traceparent ? { traceparent: options.traceparent } : undefined;
    let delay = 100;
    for (let attempt = 0; ; attempt++) {
      try {
        // A retry waits for the channel to connect again (gRPC backs off
        // between attempts) rather than failing at once.
        const metadata = this.callMetadata(attempt > 0, extra);
        return convert.appendResult(
          await this.unary("Append", request, { signal: options.signal, metadata }));
      } catch (e) {
        if (!(e instanceof LogbookError) || !RETRYABLE.has(e.code) || attempt >= retries) throw e;
      }
      await pause(delay, options.signal);
      delay = Math.min(delay * 2, 2000);
    }
  }

  // --- Reading.

  /** The stream's events in version order (newest first when `backward`),
   * fetched a page at a time as the iteration goes. NotFound when the
   * stream does not exist. */
  async *readStream(streamId: string, options: ReadStreamOptions = {}): AsyncGenerator<RecordedEvent> {
    const pageSize = checkPage(options.pageSize);
    const request: Message = {
      streamId,
      maxCount: pageSize,
      direction: options.backward ? 'BACKWARD' : 'FORWARD',
      fromVersion: options.fromVersion,
      untilVersion: options.untilVersion,
      maxEventsPerMessage: convert.EVENTS_PER_MESSAGE,
    };
    for (;;) {
      const page = await this.page("ReadStream", request, options.signal);
      yield* page;
      const last = page.at(-1);
      if (page.length < pageSize || !last) return;
      if (options.backward && last.streamVersion === 0) return;
      request.fromVersion = options.backward ? last.streamVersion - 1 : last.streamVersion + 1;
    }
  }

  /** Every event of the log ($all) in position order (newest first when
   * `backward`), narrowed by the filter, a page at a time. */
  async *readAll(options: ReadAllOptions = {}): AsyncGenerator<RecordedEvent> {
    const pageSize = checkPage(options.pageSize);
    const request: Message = {
      maxCount: pageSize,
      direction: options.backward ? 'BACKWARD' : 'FORWARD',
      filter: convert.filterOf(options),
      fromPosition: options.fromPosition,
      untilPosition: options.untilPosition,
      maxEventsPerMessage: convert.EVENTS_PER_MESSAGE,
    };
    for (;;) {
      const page = await this.page("ReadAll", request, options.signal);
      yield* page;
      const last = page.at(-1);
      if (page.length < pageSize || !last) return;
      if (options.backward && last.globalPosition <= 1) return;
      request.fromPosition = options.backward ? last.globalPosition - 1 : last.globalPosition + 1;
    }
  }

  private async page(method: string, request: Message, signal?: AbortSignal): Promise<RecordedEvent[]> {
    const page: RecordedEvent[] = [];
    for await (const r of this.serverStream(method, request, signal, this.metadata, this.deadline())) {
      if (r.event) page.push(convert.recordedEvent(r.event));
      for (const e of r.events?.events ?? []) page.push(convert.recordedEvent(e));
    }
    return page;
  }

  /** NotFound when the stream does not exist. */
  async getStream(streamId: string, options: CallOptions = {}): Promise<StreamInfo> {
    return convert.streamInfo(await this.unary("GetStream", { streamId }, options));
  }

  /** The newest snapshot of the stream (of `schemaVersion`, if given) and
   * every event after it: what an aggregate is rebuilt from. */
  async load(streamId: string, options: CallOptions & { schemaVersion?: number } = {}): Promise<Loaded> {
    let snapshot;
    try {
      snapshot = convert.snapshot(await this.unary(
        "LoadSnapshot", { streamId, schemaVersion: options.schemaVersion }, options));
    } catch (e) {
      if (!(e instanceof NotFound)) throw e;
    }
    const events: RecordedEvent[] = [];
    for await (const e of this.readStream(streamId, {
      fromVersion: snapshot ? snapshot.streamVersion + 1 : undefined, pageSize: MAX_PAGE,
      signal: options.signal,
    })) {
      events.push(e);
    }
    return { snapshot, events };
  }

  /** Stores `state` as the stream's state as of `streamVersion`.
   * FailedPrecondition beyond the stream's head. */
  async saveSnapshot(streamId: string, streamVersion: number, schemaVersion: number,
                     state: Uint8Array, options: CallOptions = {}): Promise<void> {
    await this.unary("SaveSnapshot", { streamId, streamVersion, schemaVersion, state }, options);
  }

  /** Checks the receipts of one stream, or (undefined) of the whole log;
   * `onProgress(checked, total)` hears of long runs. */
  async verify(streamId?: string, options: CallOptions & {
    onProgress?: (checked: number, total: number) => void } = {}): Promise<VerifyResult> {
    const request = streamId === undefined ? { all: {} } : { streamId };
    for await (const r of this.serverStream("Verify", request, options.signal, this.metadata)) {
      if (r.content === "progress") {
        options.onProgress?.(r.progress.eventsChecked ?? 0, r.progress.eventsTotal ?? 0);
      } else if (r.content === "result") {
        return convert.verifyResult(r.result);
      }
    }
    throw new LogbookError(grpc.status.INTERNAL, "verify: the server sent no result");
  }

  // --- Following the log.

  /**
   * The events of "$all", a stream, or a category (`category`), from the
   * beginning (or after `afterPosition`, or from now), then live, for ever.
   * When the connection is lost it subscribes again after the last event it
   * yielded, or the server's later caught-up or checkpoint position
   * (`resume`), so nothing is missed or repeated. Ends when the
   * iteration does (break), or rejects when `signal` aborts; rejects with
   * the call's error when it is not one to resume after.
   */
  async *subscribe(target = "$all", options: SubscribeOptions = {}): AsyncGenerator<RecordedEvent> {
    let last = options.afterPosition;
    let delay = 100;
    for (let reopened = false; ; reopened = true) {
      const request = convert.subscribeRequest(target, options, last,
                                               (options.fromNow ?? false) && last === undefined);
      try {
        for await (const r of this.serverStream("Subscribe", request, options.signal,
                                                this.callMetadata(reopened))) {
          const position = convert.progress(r);
          if (position !== undefined) {
            // Resuming after it skips what a filter left out, and after
            // fromNow's start misses nothing appended while reconnecting.
            last = Math.max(last ?? 0, position);
            if (r.content === "caughtUp") options.onCaughtUp?.(position);
          }
          for (const m of convert.subscribedEvents(r)) {
            const e = convert.recordedEvent(m);
            last = e.globalPosition;
            yield e;
          }
          delay = 100;
        }
        return; // The server ended it cleanly: a stream deleted, say.
      } catch (e) {
        if (options.resume === false || this.closed || !(e instanceof LogbookError) ||
            !RETRYABLE.has(e.code)) {
          throw e;
        }
      }
      await pause(delay, options.signal);
      delay = Math.min(delay * 2, 5000);
    }
  }

  // --- Consumer groups.

  /** A group delivering from the beginning. AlreadyExists when there is one
   * of that name. */
  async createConsumerGroup(group: string, options: CreateConsumerGroupOptions = {},
                            call: CallOptions = {}): Promise<ConsumerGroupInfo> {
    const target: Message = options.category ? { category: options.category }
      : options.streamId ? { streamId: options.streamId } : { all: {} };
    target.filter = convert.filterOf({ eventTypes: options.eventTypes });
    const settings = {
      strategy: options.roundRobin ? "ROUND_ROBIN" : "PER_STREAM",
      ackTimeoutMs: options.ackTimeoutMs,
      maxDeliveries: options.maxDeliveries,
      retryBackoffMs: options.retryBackoffMs,
      maxInFlight: options.maxInFlight,
    };
    return convert.consumerGroupInfo(await this.unary(
      "CreateConsumerGroup", { group, target, settings, fromBeginning: {} }, call));
  }

  /** NotFound when there is no such group. */
  async consumerGroup(group: string, options: CallOptions = {}): Promise<ConsumerGroupInfo> {
    return convert.consumerGroupInfo(await this.unary("GetConsumerGroup", { group }, options));
  }
}

function checkPage(pageSize = 1000): number {
  if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > MAX_PAGE) {
    throw new RangeError(`pageSize: ${pageSize} is outside 1..${MAX_PAGE}`);
  }
  return pageSize;
}
