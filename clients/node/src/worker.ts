// A consumer group's worker: joins the group, calls a handler per delivery,
// acks what it resolves and nacks (RETRY) what throws, and joins again with
// backoff when the connection is lost.

import { status, type ClientDuplexStream } from "@grpc/grpc-js";
import { Client, pause } from "./client.js";
import * as convert from "./convert.js";
import type { Message } from "./convert.js";
import { LogbookError, fromServiceError } from "./errors.js";
import type { Delivery } from "./types.js";

/** The server's limit on a nack's reason. */
const MAX_REASON_BYTES = 1024;

/** Thrown by a handler: set the event aside (parked) with this reason. */
export class Park extends Error {
  override name = "Park";
}

/** Thrown by a handler: count the event as handled without an ack. */
export class Skip extends Error {
  override name = "Skip";
}

/** Thrown by a handler: deliver it again after `delayMs` (undefined: the
 * group's backoff). Any other error is a Retry with the backoff. */
export class Retry extends Error {
  override name = "Retry";
  readonly delayMs: number | undefined;

  constructor(reason = "", options: { delayMs?: number } = {}) {
    super(reason);
    this.delayMs = options.delayMs;
  }
}

export type Handler = (delivery: Delivery) => void | Promise<void>;

export interface WorkerOptions {
  /** Unacked deliveries at a time, at most the group's. Default 100. */
  maxInFlight?: number;
  /** Deliveries per message from the server, 1 to 1,000. Default 100. */
  maxBatch?: number;
}

// Calls that end with these are joined again; others end run().
const RECONNECT: ReadonlySet<status> = new Set([
  status.UNAVAILABLE, status.DEADLINE_EXCEEDED, status.ABORTED, status.RESOURCE_EXHAUSTED,
  status.UNKNOWN, status.INTERNAL,
  // The same consumer name still connected: its own last call, which the
  // server lets go of in a moment.
  status.ALREADY_EXISTS,
]);

/** Time a stopping worker gives the server to take its last acks and end
 * the call before it cancels the call. */
const STOP_GRACE_MS = 5000;

/**
 * Runs `handler(delivery)` for each event `group` gives `consumer`, one at a
 * time, in the order delivered (a PER_STREAM group's stream in version
 * order).
 *
 *     await new Worker(client, "emails", "emails-1", sendEmail).run(signal);
 *
 * run() resolves once `signal` aborts: the handler call in progress is
 * awaited, what was handled is acked, and the call ends; deliveries not yet
 * handled go back to the group. It rejects when the group refuses the
 * consumer (NotFound, PermissionDenied, ...). One run() at a time per Worker.
 */
export class Worker {
  /** Deliveries handled (acked or nacked) so far. */
  handled = 0;

  constructor(private readonly client: Client, readonly group: string, readonly consumer: string,
              private readonly handler: Handler, private readonly options: WorkerOptions = {}) {}

  async run(signal?: AbortSignal): Promise<void> {
    let delay = 100;
    while (!signal?.aborted) {
      try {
        await this.runOnce(signal);
        delay = 100;
      } catch (e) {
        if (signal?.aborted) return;
        if (!(e instanceof LogbookError) || !RECONNECT.has(e.code) || this.client.closed) throw e;
      }
      try {
        await pause(delay, signal);
      } catch {
        return; // Aborted.
      }
      delay = Math.min(delay * 2, 5000);
    }
  }

  private async runOnce(signal: AbortSignal | undefined): Promise<void> {
    const call: ClientDuplexStream<Message, Message> =
      this.client.stub.Consume(this.client.callMetadata());
    call.write({ join: { group: this.group, consumer: this.consumer,
                         maxInFlight: this.options.maxInFlight ?? 100,
                         maxBatch: this.options.maxBatch ?? 100 } });
    // Stopping: half-close, after which the server settles what it was sent
    // (in order) and ends the call with OK.
    let ending = false;
    let busy = false;
    let timer: NodeJS.Timeout | undefined;
    const end = () => {
      if (ending) return;
      ending = true;
      call.end();
      timer = setTimeout(() => call.cancel(), STOP_GRACE_MS);
    };
    const onAbort = () => { if (!busy) end(); };
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      for await (const r of call) {
        if (ending) continue; // Deliveries sent before the server saw the end go back.
        const acks: number[] = [];
        busy = true;
        for (const d of convert.deliveries(r)) {
          if (signal?.aborted) break;
          const nack = await this.handle(d);
          if (nack) call.write({ nack });
          else acks.push(d.deliveryId);
          this.handled++;
        }
        busy = false;
        if (acks.length > 0) call.write({ ack: { deliveryIds: acks } });
        if (signal?.aborted) end();
      }
    } catch (e) {
      if (!signal?.aborted) throw fromServiceError(e);
    } finally {
      signal?.removeEventListener("abort", onAbort);
      clearTimeout(timer);
      call.cancel();
    }
  }

  /** The nack for what the handler threw; undefined when it resolved. */
  private async handle(d: Delivery): Promise<Message | undefined> {
    try {
      await this.handler(d);
      return undefined;
    } catch (e) {
      const ids = [d.deliveryId];
      if (e instanceof Park) return { deliveryIds: ids, action: "PARK", reason: reason(e, "parked") };
      if (e instanceof Skip) return { deliveryIds: ids, action: "SKIP", reason: reason(e, "skipped") };
      if (e instanceof Retry) {
        const delay = e.delayMs === undefined ? undefined
          : Math.max(0, Math.min(Math.trunc(e.delayMs), 3_600_000));
        return { deliveryIds: ids, action: "RETRY", reason: reason(e, "retry"), retryDelayMs: delay };
      }
      const text = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
      return { deliveryIds: ids, action: "RETRY", reason: truncate(text) };
    }
  }
}

function reason(e: Error, otherwise: string): string {
  return truncate(e.message || otherwise);
}

/** `text` cut to the server's limit, at a character boundary. */
function truncate(text: string): string {
  const bytes = Buffer.from(text);
  if (bytes.length <= MAX_REASON_BYTES) return text;
  let end = MAX_REASON_BYTES;
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--; // Not inside a character.
  return bytes.subarray(0, end).toString();
}
