// The tests run against a real logbookd: LOGBOOK_ADDRESS (and, to restart
// it, LOGBOOK_RESTART: a command that restarts it on the same address and
// exits, the new logbookd's output sent elsewhere: one that held the test's
// stdout open would keep node --test waiting), set by
// tests/e2e/node_client_e2etest.sh. A missing variable fails the test.

import { randomBytes } from "node:crypto";

export function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run tests/e2e/node_client_e2etest.sh`);
  return value;
}

/** A name of its own for each test's stream, category or group. */
export function unique(prefix: string): string {
  return `${prefix}${randomBytes(6).toString("hex")}`;
}

/** Polls `probe` every 50 ms until it returns true; false after `ms`. */
export async function eventually(probe: () => boolean | Promise<boolean>, ms = 10_000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end;) {
    if (await probe()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return probe();
}
