// A projection: keeps a read model of the orders of a category in
// PostgreSQL. Each event is applied in the transaction that moves the
// projection's checkpoint, so a projection stopped anywhere (even by
// kill -9) resumes after the last event it applied: none twice, none missed.
//
//   node build/examples/projection.js LOGBOOK_ADDRESS POSTGRES_URL [CATEGORY]
//
// Events: OrderPlaced {total} opens an order, OrderPaid {amount} adds to
// what was paid; it runs until SIGTERM or SIGINT.

import pg from "pg";
import { Client, type RecordedEvent } from "@logbook/client";

const [address, database, category = "order"] = process.argv.slice(2);
if (!address || !database) {
  console.error("usage: projection.js LOGBOOK_ADDRESS POSTGRES_URL [CATEGORY]");
  process.exit(2);
}
const name = `orders:${category}`;

const db = new pg.Client(database);
await db.connect();
// Losing the last commits in a crash of PostgreSQL is harmless here: the
// rows and the checkpoint are lost together, and the events applied again.
await db.query("SET synchronous_commit = off");
await db.query(`
  CREATE TABLE IF NOT EXISTS orders (
    order_id text PRIMARY KEY,
    total numeric NOT NULL,
    paid numeric NOT NULL DEFAULT 0,
    events integer NOT NULL,   -- events applied to the row
    version bigint NOT NULL    -- the stream version of the last one
  );
  CREATE TABLE IF NOT EXISTS projection_checkpoints (
    name text PRIMARY KEY,
    position bigint NOT NULL   -- every event at or below it is applied
  );`);
await db.query("INSERT INTO projection_checkpoints VALUES ($1, 0) ON CONFLICT DO NOTHING", [name]);
const { rows } = await db.query("SELECT position FROM projection_checkpoints WHERE name = $1", [name]);
const checkpoint = Number(rows[0].position);

/** Applies `e` and moves the checkpoint to it, in one transaction; does
 * nothing if the checkpoint is already there (the row lock also keeps a
 * second instance from applying it at the same time). */
async function apply(e: RecordedEvent): Promise<void> {
  await db.query("BEGIN");
  try {
    const moved = await db.query(
      "UPDATE projection_checkpoints SET position = $2 WHERE name = $1 AND position < $2",
      [name, e.globalPosition]);
    if (moved.rowCount === 1 && e.type === "OrderPlaced") {
      await db.query(
        "INSERT INTO orders (order_id, total, events, version) VALUES ($1, $2, 1, $3)",
        [e.streamId, e.json().total, e.streamVersion]);
    } else if (moved.rowCount === 1 && e.type === "OrderPaid") {
      await db.query(
        "UPDATE orders SET paid = paid + $2, events = events + 1, version = $3 WHERE order_id = $1",
        [e.streamId, e.json().amount, e.streamVersion]);
    }
    await db.query("COMMIT");
  } catch (err) {
    await db.query("ROLLBACK");
    throw err;
  }
}

const lb = new Client(address);
const stop = new AbortController();
process.once("SIGTERM", () => stop.abort());
process.once("SIGINT", () => stop.abort());
console.log(`projecting category ${category} after position ${checkpoint}`);
try {
  for await (const e of lb.subscribe("$all", {
    category, afterPosition: checkpoint, signal: stop.signal,
    onCaughtUp: (position) => console.log(`caught up at position ${position}`),
  })) {
    await apply(e);
  }
} catch (err) {
  if (!stop.signal.aborted) throw err;
}
console.log("stopped");
lb.close();
await db.end();
