// Against a logbookd that wants TLS, a client certificate (mTLS) and a
// token: LOGBOOK_SECURE_ADDRESS, with LOGBOOK_TLS_DIR holding ca.pem,
// client.pem, client.key and other-ca.pem, and the tokens of a writer
// (LOGBOOK_WRITER_TOKEN) and of a reader (LOGBOOK_READER_TOKEN).

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import {
  Client, NewEvent, PermissionDenied, Unauthenticated, Unavailable, type ClientOptions,
} from "@logbook/client";
import { env, unique } from "./env.js";

function connect(options: ClientOptions): Client {
  const dir = env("LOGBOOK_TLS_DIR");
  return new Client(env("LOGBOOK_SECURE_ADDRESS"), {
    tlsCa: join(dir, "ca.pem"), tlsCert: join(dir, "client.pem"), tlsKey: join(dir, "client.key"),
    timeoutMs: 5000, ...options,
  });
}

async function types(lb: Client, stream: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of lb.readStream(stream)) out.push(`${e.type} by ${e.writtenBy}`);
  return out;
}

test("TLS with a client certificate and a token: append, read, subscribe", async () => {
  const lb = connect({ token: env("LOGBOOK_WRITER_TOKEN") });
  const stream = unique("secure-");
  const r = await lb.append(stream, [new NewEvent("A"), new NewEvent("B")]);
  assert.equal(r.lastVersion, 1);
  assert.deepEqual(await types(lb, stream), ["A by node-writer", "B by node-writer"]);
  for await (const e of lb.subscribe(stream)) {
    assert.equal(e.type, "A");
    break;
  }
  lb.close();
});

test("the CA and the certificate may be given as bytes", async () => {
  const dir = env("LOGBOOK_TLS_DIR");
  const lb = connect({
    token: env("LOGBOOK_WRITER_TOKEN"), tlsCa: readFileSync(join(dir, "ca.pem")),
    tlsCert: readFileSync(join(dir, "client.pem")), tlsKey: readFileSync(join(dir, "client.key")),
  });
  const stream = unique("secure-");
  await lb.append(stream, [new NewEvent("A")]);
  assert.deepEqual(await types(lb, stream), ["A by node-writer"]);
  lb.close();
});

test("no token, a wrong token, a reader's token appending", async () => {
  const stream = unique("secure-");
  for (const token of [undefined, "lbk_wrong"]) {
    const lb = connect({ token });
    await assert.rejects(lb.append(stream, [new NewEvent("A")]), Unauthenticated);
    lb.close();
  }
  const reader = connect({ token: env("LOGBOOK_READER_TOKEN") });
  await assert.rejects(reader.append(stream, [new NewEvent("A")]), PermissionDenied);
  const writer = connect({ token: env("LOGBOOK_WRITER_TOKEN") });
  await writer.append(stream, [new NewEvent("A")]);
  assert.deepEqual(await types(reader, stream), ["A by node-writer"]);
  reader.close();
  writer.close();
});

test("no client certificate, or trusting another CA: unavailable", async () => {
  const dir = env("LOGBOOK_TLS_DIR");
  const token = env("LOGBOOK_WRITER_TOKEN");
  for (const options of [
    { tlsCert: undefined, tlsKey: undefined },
    { tlsCa: join(dir, "other-ca.pem") },
  ]) {
    const lb = connect({ token, ...options });
    await assert.rejects(lb.getStream("x"), Unavailable);
    lb.close();
  }
  // Plaintext against the TLS port.
  const plain = new Client(env("LOGBOOK_SECURE_ADDRESS"), { token, timeoutMs: 5000 });
  await assert.rejects(plain.getStream("x"), Unavailable);
  plain.close();
});
