// The web console (service/console/, docs/console.md) in headless Chromium
// against a real logbookd that tests/e2e/console_e2etest.sh started with
// --http-listen and --auth-tokens. Events are appended and the consumer
// group made through the gRPC CLI, a stream is tampered with in
// PostgreSQL, and every page is checked for exact values. Prints "ok: STEP"
// per step and a screenshot per page; the first failure prints "FAIL: ...",
// saves failure.png and exits 1.
//
// Environment (all required):
//   LOGBOOK_CONSOLE_URL     http://127.0.0.1:PORT, logbookd's HTTP listener
//   LOGBOOK_CONSOLE_FILES   service/console/, to compare with what is served
//   LOGBOOK_CLI, LOGBOOK_ADDRESS   the CLI and logbookd's gRPC address
//   LOGBOOK_OPERATOR_TOKEN  a token with roles reader,writer,consumer,operator
//   LOGBOOK_READER_TOKEN    a token with the role reader only
//   LOGBOOK_TAMPER_DSN      the database, as a superuser (to tamper)
//   LOGBOOK_SCREENSHOTS     where the screenshots go
//   CHROMIUM                the browser (default /usr/bin/chromium)
import {execFileSync} from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import puppeteer from 'puppeteer-core';

function env(name) {
  const v = process.env[name];
  if (!v) {
    console.log(`FAIL: ${name} is not set`);
    process.exit(2);
  }
  return v;
}
const base = env('LOGBOOK_CONSOLE_URL');
const files = env('LOGBOOK_CONSOLE_FILES');
const cli = env('LOGBOOK_CLI');
const address = env('LOGBOOK_ADDRESS');
const operatorToken = env('LOGBOOK_OPERATOR_TOKEN');
const readerToken = env('LOGBOOK_READER_TOKEN');
const tamperDsn = env('LOGBOOK_TAMPER_DSN');
const shots = env('LOGBOOK_SCREENSHOTS');
const chromium = process.env.CHROMIUM || '/usr/bin/chromium';
const TIMEOUT = 15000;

// ---------------------------------------------------------------- helpers

function logbook(...args) {
  return execFileSync(cli, args, {
    env: {...process.env, LOGBOOK_ADDRESS: address, LOGBOOK_TOKEN: operatorToken},
    encoding: 'utf8',
    timeout: 30000,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

// append(stream, type, data): one event through gRPC; its global position.
function append(stream, type, data) {
  const out = JSON.parse(logbook('append', stream, '--type', type, '--data', JSON.stringify(data), '--json'));
  return out.first_position;
}

function psql(sql) {
  execFileSync('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', tamperDsn, '-c', sql],
    {encoding: 'utf8', timeout: 30000, stdio: ['ignore', 'pipe', 'pipe']});
}

// pretty(value): JSON.stringify(value, null, 2) with object keys sorted.
function pretty(value) {
  const sorted = (v) => (Array.isArray(v) ? v.map(sorted)
    : v && typeof v === 'object' ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sorted(v[k])])) : v);
  return JSON.stringify(sorted(value), null, 2);
}

function assertEqual(got, want, what) {
  const g = JSON.stringify(got);
  const w = JSON.stringify(want);
  if (g !== w) throw new Error(`${what}: got ${g}, want ${w}`);
}

let browser;
let page;
const pageErrors = [];
const consoleLines = [];

async function shot(name) {
  const file = path.join(shots, name + '.png');
  await page.screenshot({path: file, fullPage: true});
  console.log(`  screenshot ${file}`);
}

// text(selector): the trimmed text of the first match, or null.
const text = (sel) => page.evaluate((s) => {
  const el = document.querySelector(s);
  return el ? el.textContent.trim() : null;
}, sel);

// waitText(selector, want): waits until the element's trimmed text is
// exactly want (a string) or matches it (a RegExp).
async function waitText(sel, want) {
  const isRe = want instanceof RegExp;
  try {
    await page.waitForFunction((s, w, re) => {
      const el = document.querySelector(s);
      if (!el) return false;
      const t = el.textContent.trim();
      return re ? new RegExp(w.source, w.flags).test(t) : t === w;
    }, {timeout: TIMEOUT, polling: 100}, sel, isRe ? {source: want.source, flags: want.flags} : want, isRe);
  } catch (e) {
    throw new Error(`${sel}: want text ${isRe ? want : JSON.stringify(want)}, have ${JSON.stringify(await text(sel))}` +
      ` (banner: ${JSON.stringify(await text('#banner'))})`);
  }
}

async function waitFor(sel, what) {
  try {
    await page.waitForSelector(sel, {timeout: TIMEOUT});
  } catch (e) {
    throw new Error(`${what || sel}: not on the page after ${TIMEOUT} ms (view ${await text('#view h1')},` +
      ` banner: ${JSON.stringify(await text('#banner'))})`);
  }
}

// ready(hash): waits until the console shows the page of hash, loaded.
async function ready(hash) {
  try {
    await page.waitForFunction((h) => {
      const v = document.querySelector('#view');
      return location.hash === h && v.dataset.hash === h && v.dataset.ready === 'true';
    }, {timeout: TIMEOUT, polling: 50}, hash);
  } catch (e) {
    throw new Error(`page ${hash} did not load: at ${await page.evaluate(() => location.hash)},` +
      ` banner: ${JSON.stringify(await text('#banner'))}`);
  }
}

// go(hash): shows a console page and waits until it has loaded.
async function go(hash) {
  await page.evaluate((h) => { location.hash = h; }, hash);
  await ready(hash);
}

const attrs = (sel, name) => page.$$eval(sel, (els, n) => els.map((e) => e.getAttribute(n)), name);

let steps = 0;
async function step(name, fn) {
  try {
    await fn();
    if (pageErrors.length) throw new Error('the page threw: ' + pageErrors.join('; '));
    // logbookd serves the console with a Content-Security-Policy (no inline
    // scripts or handlers); Chromium reports what it blocked on the console.
    const blocked = consoleLines.filter((l) => /Content Security Policy/i.test(l));
    if (blocked.length) throw new Error('the Content-Security-Policy blocked: ' + blocked.join('; '));
  } catch (e) {
    console.log(`FAIL: ${name}: ${e.message}`);
    if (consoleLines.length) console.log('  browser console:\n    ' + consoleLines.slice(-20).join('\n    '));
    if (page) {
      console.log(`  at ${page.url()}`);
      await page.screenshot({path: path.join(shots, 'failure.png'), fullPage: true}).catch(() => {});
      console.log(`  screenshot ${path.join(shots, 'failure.png')}`);
    }
    if (browser) await browser.close().catch(() => {});
    process.exit(1);
  }
  steps++;
  console.log(`ok: ${name}`);
}

// ---------------------------------------------------------------- the data

const order1 = [
  ['OrderPlaced', {total: 30, items: [{sku: 'A-1', qty: 2}, {sku: 'B-7', qty: 1}], note: 'leave at the door'}],
  ['OrderPaid', {amount: 30, method: 'card'}],
  ['OrderShipped', {carrier: 'dhl', tracking: 'JD0142', at: null, fragile: true}],
];
let parkedId;

await step('events, a consumer group and a parked event, through gRPC', async () => {
  const positions = order1.map(([type, data]) => append('order-1', type, data));
  positions.push(append('order-2', 'OrderPlaced', {total: 12}));
  positions.push(append('payment-1', 'PaymentReceived', {order: 'order-1', amount: 30}));
  assertEqual(positions, [1, 2, 3, 4, 5], 'positions');
  logbook('group', 'create', 'emails', '--category', 'order');
  // Four deliveries (order-1@0..2, order-2@0); OrderShipped is parked.
  const out = logbook('consume', 'emails', '--consumer', 'console-test', '--park-types', 'OrderShipped', '--count', '4');
  const m = /^(\d+)  order-1@2  OrderShipped  attempt 1  park$/m.exec(out);
  if (!m) throw new Error('consume did not park order-1@2: ' + out);
  parkedId = Number(m[1]);
  const parked = logbook('group', 'parked', 'emails');
  if (!parked.startsWith(`${parkedId}  order-1@2  OrderShipped  attempts 1  `)) throw new Error('group parked: ' + parked);
});

await step('logbookd serves the console files it embeds, as they are in service/console/', async () => {
  const want = {'/': ['index.html', 'text/html'], '/index.html': ['index.html', 'text/html'],
    '/app.js': ['app.js', 'javascript'], '/style.css': ['style.css', 'text/css']};
  for (const [url, [file, type]] of Object.entries(want)) {
    const res = await fetch(base + url);
    if (res.status !== 200) throw new Error(`GET ${url}: ${res.status}`);
    const ct = res.headers.get('content-type') || '';
    if (!ct.includes(type)) throw new Error(`GET ${url}: content-type ${ct}, want ${type}`);
    const body = Buffer.from(await res.arrayBuffer());
    if (!body.equals(fs.readFileSync(path.join(files, file)))) {
      throw new Error(`GET ${url} is not service/console/${file} as it is now (a stale build?)`);
    }
  }
});

await step('Chromium starts', async () => {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'logbook-console-chromium-'));
  browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      `--user-data-dir=${profile}`],
    timeout: 60000,
  });
  page = await browser.newPage();
  await page.setViewport({width: 1280, height: 900});
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
  page.on('dialog', (d) => d.accept());
});

await step('without a token the console shows the 401 and asks for one', async () => {
  await page.goto(base + '/', {waitUntil: 'load'});
  await waitText('#banner', /^401 UNAUTHENTICATED: .+ — sign in with a bearer token \(top right\)\.$/);
  await waitText('#login-state', 'not signed in');
  await shot('login');
});

await step('signing in keeps the token in sessionStorage and shows the overview', async () => {
  await page.type('#token', operatorToken);
  await page.keyboard.press('Enter');
  await waitText('#login-state', 'signed in with a token');
  assertEqual(await page.evaluate(() => sessionStorage.getItem('logbook.console.token')), operatorToken, 'sessionStorage');
  assertEqual(await page.evaluate(() => localStorage.length), 0, 'localStorage entries');
  await waitText('#head-position', '5');
  await waitText('#banner', '');
  await waitFor('#overview-groups tr', 'the groups on the overview');
});

await step('the throughput chart plots the head position\'s change', async () => {
  // Two polls at least, so the chart has a sample before the appends.
  await page.waitForFunction(() => Number(document.querySelector('#throughput').dataset.samples) >= 1, {timeout: TIMEOUT});
  for (let n = 0; n < 4; n++) append('load-1', 'Tick', {n});
  await waitText('#head-position', '9');
  await page.waitForFunction(() => document.querySelector('#throughput').dataset.total === '4', {timeout: TIMEOUT})
    .catch(async () => { throw new Error('chart total ' + await page.$eval('#throughput', (e) => e.dataset.total)); });
  const bars = await page.$$eval('#throughput rect.bar', (rs) => rs.map((r) => Number(r.getAttribute('height'))));
  if (!bars.some((b) => b > 0)) throw new Error('no bar above zero: ' + JSON.stringify(bars));
  await waitText('#rate-minute', '4');
  await shot('overview');
});

await step('streams by prefix', async () => {
  await page.click('#nav a[data-nav=streams]');
  await ready('#/streams');
  await page.type('#stream-prefix', 'order-');
  await page.keyboard.press('Enter');
  await ready('#/streams?prefix=order-');
  assertEqual(await attrs('#stream-list tbody tr', 'data-stream'), ['order-1', 'order-2'], 'streams listed');
  const row = await page.$$eval('#stream-list tr[data-stream="order-1"] td', (tds) => tds.slice(0, 5).map((t) => t.textContent));
  assertEqual(row, ['order-1', '2', '0', '3', 'active'], 'order-1 row (stream, version, first version, last position, state)');
  await shot('streams');
});

await step('categories', async () => {
  await page.click('#nav a[data-nav=categories]');
  await ready('#/categories');
  assertEqual(await attrs('#category-list tbody tr', 'data-category'), ['load', 'order', 'payment'], 'categories');
  await shot('categories');
});

await step('a stream\'s head hash and its events with their data pretty-printed', async () => {
  await go('#/streams?prefix=order-');
  await page.click('#stream-list tr[data-stream="order-1"] a');
  await ready('#/stream/order-1');
  const info = JSON.parse(logbook('stream', 'order-1', '--json'));
  if (!/^[0-9a-f]{64}$/.test(info.head_hash)) throw new Error('logbook stream --json head_hash: ' + info.head_hash);
  await waitText('#head-hash', info.head_hash);
  await waitText('#stream-version', '2');
  await waitText('#event-range', 'versions 0–2 of 0–2');
  assertEqual(await attrs('#events article.event', 'data-version'), ['0', '1', '2'], 'versions shown');
  const shown = await page.$$eval('#events article.event', (as) => as.map((a) => ({
    type: a.querySelector('.type').textContent,
    data: a.querySelector('pre.data').textContent,
  })));
  // logbookd gives JSON data back with its keys sorted: the page shows it
  // as `logbook read --json` gives it, indented by two.
  assertEqual(shown, order1.map(([type, data]) => ({type, data: pretty(data)})), 'events shown');
  const read = logbook('read', 'order-1', '--json').trim().split('\n').map((l) => JSON.parse(l).data);
  assertEqual(shown.map((e) => e.data), read.map((d) => JSON.stringify(d, null, 2)), 'events shown, against logbook read --json');
  await shot('stream');
});

await step('following a category live: the backlog, then an event appended now', async () => {
  await go('#/categories');
  await page.click('#category-list tr[data-category="order"] a.follow');
  await ready('#/live?category=order');
  await waitText('#live-what', 'category order');
  await page.waitForFunction(() => document.querySelector('#live-status').dataset.state === 'live', {timeout: TIMEOUT})
    .catch(async () => { throw new Error('live status: ' + await text('#live-status')); });
  await waitText('#live-status', 'live: caught up at position 9');
  assertEqual(await attrs('#live-events article', 'data-position'), ['4', '3', '2', '1'], 'the backlog, newest first');
  // A payment first: the category view must not show it.
  assertEqual(append('payment-2', 'PaymentReceived', {amount: 99}), 10, 'payment-2 position');
  const pos = append('order-3', 'OrderPlaced', {total: 99, live: true});
  assertEqual(pos, 11, 'order-3 position');
  await waitFor('#live-events article[data-position="11"]', 'the live event');
  assertEqual(await attrs('#live-events article', 'data-position'), ['11', '4', '3', '2', '1'], 'events after the append');
  const live = await page.$eval('#live-events article[data-position="11"]', (a) => ({
    ref: a.querySelector('header a').textContent, type: a.querySelector('.type').textContent,
    data: a.querySelector('pre.data').textContent}));
  assertEqual(live, {ref: 'order-3@0', type: 'OrderPlaced', data: pretty({total: 99, live: true})}, 'the live event');
  await waitText('#live-count', '5 events received');
  await shot('live-category');
});

await step('following $all live', async () => {
  await page.select('#live-kind', 'all');
  await page.click('#view form.search button[type=submit]');
  await ready('#/live');
  await waitText('#live-what', '$all');
  await waitText('#live-status', 'live: caught up at position 11');
  assertEqual((await attrs('#live-events article', 'data-position')).join(','), '11,10,9,8,7,6,5,4,3,2,1', 'the backlog');
  assertEqual(append('payment-2', 'PaymentRefunded', {amount: 99}), 12, 'position');
  await waitFor('#live-events article[data-position="12"]', 'the live event on $all');
  assertEqual(await page.$eval('#live-events article', (a) => a.querySelector('header a').textContent), 'payment-2@1', 'newest on top');
  await shot('live-all');
});

await step('verify: ok, and the head hash matches', async () => {
  await go('#/stream/order-1');
  await page.click('#verify');
  await waitText('#verify-status', 'ok: 3 events checked');
  await waitText('#verify-result', /^ok: 3 events checked, the head hash matches the stream's \(verified at .+\)$/);
  // The progress the server streamed (Accept: text/event-stream) reached the bar.
  assertEqual(await page.$eval('#verify-result', (e) => e.dataset.progress), '3/3', 'the last progress shown');
  if (await page.$('#events article.broken')) throw new Error('an event is marked broken');
  await shot('verify-ok');
});

await step('verify after tampering in PostgreSQL: the first broken event, highlighted', async () => {
  // As the superuser, with the append-only triggers off (receipts_e2etest.cc).
  psql("SET session_replication_role = replica; UPDATE logbook.event_log SET data = " +
       "convert_to('{\"forged\":true}', 'UTF8') WHERE stream_id = 'order-1' AND stream_version = 1");
  await page.click('#verify');
  await ready('#/stream/order-1?from=0');
  await waitText('#verify-status', 'BROKEN at order-1@1 (position 2): DATA_CHANGED');
  assertEqual(await attrs('#events article.broken', 'data-version'), ['1'], 'events marked broken');
  const broken = await page.$eval('#events article.broken', (a) => ({
    badge: a.querySelector('.badge').textContent, data: a.querySelector('pre.data').textContent}));
  assertEqual(broken, {badge: 'first broken: DATA_CHANGED', data: pretty({forged: true})}, 'the broken event');
  const detail = await text('#verify-result .detail');
  if (!detail) throw new Error('no detail for the broken event');
  await shot('verify-broken');
});

await step('consumer groups: lag and a parked event', async () => {
  await page.click('#nav a[data-nav=groups]');
  await ready('#/groups');
  const row = await page.$$eval('tr[data-group="emails"] td', (tds) => tds.map((t) => t.textContent));
  // group, target, strategy, checkpoint, head, lag, lag s, in flight, parked, members
  assertEqual([row[0], row[1], row[2], row[7], row[8], row[9]],
    ['emails', 'category order', 'per-stream', '0', '1', '0'], 'the emails row');
  await page.click('tr[data-group="emails"] a');
  await ready('#/group/emails');
  await waitFor('#parked-table', 'the parked events');
  await waitText('#group-parked', /^1 \(oldest [0-9.]+ s ago\)$/);
  assertEqual(await attrs('#parked-table tbody tr', 'data-delivery'), [String(parkedId)], 'parked deliveries');
  const cells = await page.$$eval('#parked-table tbody tr td', (tds) => tds.slice(1, 5).map((t) => t.textContent));
  assertEqual(cells, [String(parkedId), 'order-1@2', 'OrderShipped', '1'], 'the parked row');
  await shot('group-parked');
});

await step('replaying the parked event with its button', async () => {
  await page.click(`#parked-table tr[data-delivery="${parkedId}"] button.replay`);
  await waitText('#parked-result', 'replayed 1 parked event');
  await waitFor('#parked-empty', 'the empty parked list');
  await waitText('#group-parked', '0');
  const parked = logbook('group', 'parked', 'emails');
  assertEqual(parked, '', 'logbook group parked emails');
  await shot('group-replayed');
});

await step('a reader sees the 403 for parked events and no replay or drop buttons', async () => {
  await page.click('#sign-out');
  await waitText('#login-state', 'not signed in');
  assertEqual(await page.evaluate(() => sessionStorage.getItem('logbook.console.token')), null, 'token after sign-out');
  await page.type('#token', readerToken);
  await page.keyboard.press('Enter');
  await ready('#/group/emails');
  await waitFor('#parked-error', 'the parked events\' error');
  await waitText('#parked-error', /^403 PERMISSION_DENIED: .*operator.* — parked events, and their replay and drop buttons, are for operators\.$/);
  for (const sel of ['#replay-all', '#drop-all', 'button.replay', 'button.drop']) {
    if (await page.$(sel)) throw new Error(sel + ' is shown to a reader');
  }
  await waitText('#group-lag', /^\d+ events?, [0-9.]+ s$/);
  await shot('forbidden');
});

await browser.close();
console.log(`all ${steps} steps passed; screenshots in ${shots}`);
