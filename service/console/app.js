// The Logbook web console: a single page over logbookd's HTTP/JSON API
// (docs/http-api.md, docs/console.md). Plain JavaScript, no framework, no
// build step; logbookd serves this file as it is.
//
// Everything the server sends is put on the page as text (textContent),
// never as HTML: event data is whatever writers stored.
'use strict';

(() => {
  const TOKEN_KEY = 'logbook.console.token';
  const PAGE = 20;           // events per stream page
  const LIST_PAGE = 50;      // streams, categories per page
  const LIVE_BACKLOG = 20;   // events shown from before a follow starts
  const LIVE_KEEP = 500;     // events kept on the live page
  const CHART_SAMPLES = 60;  // seconds of throughput on the chart

  // ---------------------------------------------------------------- DOM

  // h('a', {href: '#/'}, 'text', child...): an element. Attributes named
  // on* are not accepted (use el.addEventListener), class goes to className,
  // dataset entries as data-*; children are nodes or text.
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class')
        el.className = v;
      else if (k === 'text')
        el.textContent = v;
      else if (k.startsWith('on'))
        throw new Error('h: use addEventListener for ' + k);
      else
        el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      el.append(c instanceof Node ? c : String(c));
    }
    return el;
  }

  const $ = (sel, root = document) => root.querySelector(sel);
  const shortHash = (hex) => (hex ? hex.slice(0, 12) + '…' : '');
  const streamHref = (id, params) =>
      '#/stream/' + encodeURIComponent(id) + (params ? '?' + new URLSearchParams(params) : '');
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  // ---------------------------------------------------------------- JSON

  // A JSON number that a JavaScript number would change (an integer past
  // 2^53, 1.10, 1e3): kept as its text so event data shows as stored.
  class RawNumber {
    constructor(text) {
      this.text = text;
    }
    toJSON() {
      return this.text;
    }
  }

  // parseJson(text): JSON.parse, except that numbers a double cannot hold
  // exactly become RawNumber. Throws SyntaxError on bad JSON.
  function parseJson(text) {
    let i = 0;
    const fail = (what) => {
      throw new SyntaxError(`JSON: ${what} at offset ${i}`);
    };
    const ws = () => {
      while (i < text.length && ' \t\n\r'.includes(text[i])) i++;
    };
    const value = () => {
      ws();
      const c = text[i];
      if (c === '{') {
        i++;
        const obj = {};
        ws();
        if (text[i] === '}') {
          i++;
          return obj;
        }
        for (;;) {
          ws();
          if (text[i] !== '"') fail('expected a key');
          const k = string();
          ws();
          if (text[i++] !== ':') fail('expected :');
          Object.defineProperty(
              obj, k, {value: value(), enumerable: true, writable: true, configurable: true});
          ws();
          if (text[i] === ',') {
            i++;
            continue;
          }
          if (text[i] === '}') {
            i++;
            return obj;
          }
          fail('expected , or }');
        }
      }
      if (c === '[') {
        i++;
        const arr = [];
        ws();
        if (text[i] === ']') {
          i++;
          return arr;
        }
        for (;;) {
          arr.push(value());
          ws();
          if (text[i] === ',') {
            i++;
            continue;
          }
          if (text[i] === ']') {
            i++;
            return arr;
          }
          fail('expected , or ]');
        }
      }
      if (c === '"') return string();
      if (text.startsWith('true', i)) {
        i += 4;
        return true;
      }
      if (text.startsWith('false', i)) {
        i += 5;
        return false;
      }
      if (text.startsWith('null', i)) {
        i += 4;
        return null;
      }
      const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i, i + 400));
      if (!m) fail('unexpected ' + JSON.stringify(c));
      i += m[0].length;
      const n = Number(m[0]);
      return String(n) === m[0] ? n : new RawNumber(m[0]);
    };
    const string = () => {
      const start = i;
      i++;
      for (;;) {
        const j = text.indexOf('"', i);
        if (j < 0) fail('unterminated string');
        let backslashes = 0;
        for (let k = j - 1; text[k] === '\\'; k--) backslashes++;
        i = j + 1;
        if (backslashes % 2 === 0) break;
      }
      return JSON.parse(text.slice(start, i));
    };
    const v = value();
    ws();
    if (i !== text.length) fail('trailing characters');
    return v;
  }

  // renderJson(value): the text of JSON.stringify(value, null, 2) as a
  // fragment of spans classed by token, for a <pre>.
  function renderJson(value) {
    const frag = document.createDocumentFragment();
    const emit = (text, cls) => {
      if (!cls) return frag.append(text);
      const s = document.createElement('span');
      s.className = cls;
      s.textContent = text;
      frag.append(s);
    };
    const walk = (v, indent) => {
      if (v === null) return emit('null', 'j-null');
      if (v instanceof RawNumber) return emit(v.text, 'j-num');
      if (Array.isArray(v)) {
        if (v.length === 0) return emit('[]');
        emit('[\n');
        v.forEach((x, n) => {
          emit(indent + '  ');
          walk(x, indent + '  ');
          emit(n < v.length - 1 ? ',\n' : '\n');
        });
        return emit(indent + ']');
      }
      switch (typeof v) {
        case 'object': {
          const keys = Object.keys(v);
          if (keys.length === 0) return emit('{}');
          emit('{\n');
          keys.forEach((k, n) => {
            emit(indent + '  ');
            emit(JSON.stringify(k), 'j-key');
            emit(': ');
            walk(v[k], indent + '  ');
            emit(n < keys.length - 1 ? ',\n' : '\n');
          });
          return emit(indent + '}');
        }
        case 'string':
          return emit(JSON.stringify(v), 'j-str');
        case 'number':
          return emit(JSON.stringify(v), 'j-num');
        case 'boolean':
          return emit(String(v), 'j-bool');
        default:
          return emit(String(v));
      }
    };
    walk(value, '');
    return frag;
  }

  // dataBlock(event, field): a <pre> with an event's data or metadata as
  // the HTTP API gives it: JSON when the content type is JSON, text when
  // it is a string (UTF-8 text), {"base64": ...} otherwise.
  function dataBlock(event, field) {
    const v = event[field];
    const json = /^application\/(.+\+)?json\b/.test(event.content_type || 'application/json');
    const pre = h('pre', {class: field === 'data' ? 'data' : 'data meta'});
    if (typeof v === 'string' && !json)
      pre.textContent = v;
    else
      pre.append(renderJson(v));
    return pre;
  }

  // ---------------------------------------------------------------- API

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
    toString() {
      return (this.status ? this.status + ' ' : '') + this.code + ': ' + this.message;
    }
  }

  const token = () => sessionStorage.getItem(TOKEN_KEY) || '';

  function headers(extra) {
    const out = {...extra};
    if (token()) out.Authorization = 'Bearer ' + token();
    return out;
  }

  // errorOf(response, text): the ApiError for an answer that is not 2xx,
  // from its {"error": {"code", "message"}} body where it has one.
  function errorOf(res, text) {
    let err = null;
    try {
      err = parseJson(text).error;
    } catch (_) { /* not JSON */
    }
    if (err && err.code) return new ApiError(res.status, err.code, err.message || '');
    return new ApiError(res.status, 'HTTP_' + res.status, (text || res.statusText).slice(0, 300));
  }

  // api(path, {method, body}): the parsed JSON answer; throws ApiError.
  async function api(path, {method = 'GET', body} = {}) {
    let res;
    try {
      res = await fetch(path, {
        method,
        cache: 'no-store',
        headers: headers(
            body === undefined ? {Accept: 'application/json'} :
                                 {Accept: 'application/json', 'Content-Type': 'application/json'}),
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new ApiError(0, 'UNREACHABLE', 'cannot reach logbookd: ' + e.message);
    }
    let text;
    try {
      text = await res.text();
    } catch (e) {
      throw new ApiError(
          res.status, 'UNREACHABLE', `${method} ${path}: the answer broke off: ${e.message}`);
    }
    if (!res.ok) throw errorOf(res, text);
    try {
      return parseJson(text);
    } catch (e) {
      throw new ApiError(res.status, 'BAD_ANSWER', `${method} ${path}: ${e.message}`);
    }
  }

  const query = (params) => {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params))
      if (v !== undefined && v !== null && v !== '') q.set(k, v);
    const s = q.toString();
    return s ? '?' + s : '';
  };

  // sse(response): the Server-Sent Events of a fetch() answer, as
  // {event, data, id}; comment lines (the server's keep-alives) are
  // skipped. Ends when the server ends the stream.
  async function* sse(res) {
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    let msg = {event: '', data: [], id: null};
    for (;;) {
      const {value, done} = await reader.read();
      if (done) return;
      buf += value;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        let line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.endsWith('\r')) line = line.slice(0, -1);
        if (line === '') {
          if (msg.data.length || msg.event) {
            yield {event: msg.event || 'message', data: msg.data.join('\n'), id: msg.id};
          }
          msg = {event: '', data: [], id: null};
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let val = colon < 0 ? '' : line.slice(colon + 1);
        if (val.startsWith(' ')) val = val.slice(1);
        if (field === 'event')
          msg.event = val;
        else if (field === 'data')
          msg.data.push(val);
        else if (field === 'id')
          msg.id = val;
      }
    }
  }

  // ---------------------------------------------------------------- banner, login

  const banner = $('#banner');

  function showError(err, where) {
    const text = (where ? where + ': ' : '') + String(err);
    banner.replaceChildren(h('strong', {}, text));
    if (err instanceof ApiError && err.status === 401) {
      banner.append(' — sign in with a bearer token (top right).');
      $('#token').focus();
    } else if (err instanceof ApiError && err.status === 403) {
      banner.append(' — your token lacks the role or scope for this.');
    }
    banner.hidden = false;
  }

  function clearBanner() {
    banner.hidden = true;
    banner.replaceChildren();
  }

  function showLoginState() {
    const signedIn = !!token();
    $('#login-state').textContent = signedIn ? 'signed in with a token' : 'not signed in';
    $('#sign-out').hidden = !signedIn;
    $('#token').hidden = signedIn;
    $('#sign-in').hidden = signedIn;
  }

  $('#login').addEventListener('submit', (e) => {
    e.preventDefault();
    const t = $('#token').value.trim();
    if (!t) return;
    sessionStorage.setItem(TOKEN_KEY, t);
    $('#token').value = '';
    showLoginState();
    route();
  });
  $('#sign-out').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    showLoginState();
    route();
  });

  // ---------------------------------------------------------------- router

  // The hash is the page: #/, #/streams?prefix=, #/categories?prefix=,
  // #/stream/ID?from=N, #/live?category=C|stream=S, #/groups, #/group/NAME.
  const views = {};
  let generation = 0;
  let current = null;

  function parseHash() {
    const raw = location.hash.replace(/^#\/?/, '');
    const q = raw.indexOf('?');
    const path = q < 0 ? raw : raw.slice(0, q);
    const params = new URLSearchParams(q < 0 ? '' : raw.slice(q + 1));
    const parts = path.split('/').map((p) => {
      try {
        return decodeURIComponent(p);
      } catch (_) {
        return p;
      }
    });
    return {name: parts[0] || 'overview', arg: parts.slice(1).join('/'), params};
  }

  // A view's context: alive() is false once another page is shown;
  // every(ms, fn) runs fn now and then every ms until then, and stops
  // (showing why) at an error no retry mends: 401, 403, 404, 429.
  function newContext() {
    const ctx = {
      gen: ++generation,
      cleanups: [],
      alive() {
        return this.gen === generation;
      },
      onCleanup(fn) {
        this.cleanups.push(fn);
      },
      every(ms, fn) {
        let timer = null;
        const tick = async () => {
          if (!ctx.alive()) return;
          try {
            await fn();
          } catch (e) {
            if (!ctx.alive()) return;
            showError(e);
            if (e instanceof ApiError && [401, 403, 404, 429].includes(e.status)) return;
          }
          if (ctx.alive()) timer = setTimeout(tick, ms);
        };
        ctx.onCleanup(() => clearTimeout(timer));
        return tick();
      },
    };
    return ctx;
  }

  async function route() {
    if (current)
      for (const fn of current.cleanups) {
        try {
          fn();
        } catch (_) { /* gone */
        }
      }
    const ctx = newContext();
    current = ctx;
    clearBanner();
    const {name, arg, params} = parseHash();
    const nav = {stream: 'streams', group: 'groups'}[name] || name;
    for (const a of document.querySelectorAll('#nav a'))
      a.classList.toggle('active', a.dataset.nav === nav);
    const root = $('#view');
    root.replaceChildren();
    root.dataset.view = name;
    root.dataset.hash = location.hash;
    delete root.dataset.ready;
    const view = views[name];
    if (!view) {
      root.append(h('p', {class: 'muted'}, 'No such page. '), h('a', {href: '#/'}, 'Overview'));
      return;
    }
    try {
      await view(ctx, root, arg, params);
    } catch (e) {
      if (ctx.alive()) showError(e);
    }
    if (ctx.alive()) root.dataset.ready = 'true';
  }

  const table = (cols, rows, attrs) =>
      h('table', attrs || {}, h('thead', {}, h('tr', {}, cols.map((c) => h('th', {}, c)))),
        h('tbody', {}, rows));

  // ---------------------------------------------------------------- overview

  // The head of the log and a chart of events appended per second.
  //
  // The HTTP API has no counter of appends, so the chart polls the newest
  // event (GET /v1/all?direction=backward&limit=1) once a second and plots
  // how far its global position moved since the poll before: events
  // appended per second, whatever the number of appends (calls) that
  // carried them. A token with scopes sees only its own streams' newest
  // event, and positions are shared by all tenants, so the head jumps over
  // other tenants' events: the chart counts those too.
  views.overview = async (ctx, root) => {
    const head = h('span', {id: 'head-position', class: 'big'}, '…');
    const rate = h('span', {id: 'rate-now', class: 'big'}, '…');
    const minute = h('span', {id: 'rate-minute', class: 'big'}, '…');
    const chart =
        h('div', {id: 'throughput', class: 'chart', 'data-samples': '0', 'data-total': '0'});
    const groups = h('div', {id: 'overview-groups'}, h('p', {class: 'muted'}, 'loading…'));
    root.append(
        h('h1', {}, 'Overview'),
        h('div', {class: 'cards'},
          h('div', {class: 'card'}, h('div', {class: 'label'}, 'head position'), head),
          h('div', {class: 'card'}, h('div', {class: 'label'}, 'events/s (last second)'), rate),
          h('div', {class: 'card'}, h('div', {class: 'label'}, 'events in the last minute'),
            minute)),
        h('section', {}, h('h2', {}, 'Appends per second'),
          h('p', {class: 'muted'},
            'Events added to the log each second: the change of the head position, polled once a second.'),
          chart),
        h('section', {}, h('h2', {}, 'Consumer groups'), groups));

    const samples = [];  // {at: Date, rate: events/s, delta: events}
    let prev = null;
    let total = 0;
    drawChart(chart, samples);
    ctx.every(1000, async () => {
      const r = await api('/v1/all?direction=backward&limit=1');
      if (!ctx.alive()) return;
      const pos = r.events.length ? r.events[0].global_position : 0;
      const now = performance.now();
      head.textContent = String(pos);
      if (prev) {
        const delta = Math.max(0, pos - prev.pos);
        const seconds = Math.max(0.001, (now - prev.now) / 1000);
        samples.push({at: new Date(), rate: delta / seconds, delta});
        if (samples.length > CHART_SAMPLES) samples.shift();
        total += delta;
        rate.textContent = (delta / seconds).toFixed(1);
        minute.textContent = String(samples.reduce((s, x) => s + x.delta, 0));
        chart.dataset.total = String(total);
        drawChart(chart, samples);
      }
      prev = {pos, now};
    });
    ctx.every(5000, async () => {
      const r = await api('/v1/groups');
      if (!ctx.alive()) return;
      if (!r.groups.length)
        return groups.replaceChildren(h('p', {class: 'muted'}, 'No consumer groups.'));
      groups.replaceChildren(table(
          ['group', 'target', 'lag (events)', 'parked', 'members'],
          r.groups.map(
              (g) =>
                  h('tr', {},
                    h('td', {}, h('a', {href: '#/group/' + encodeURIComponent(g.group)}, g.group)),
                    h('td', {}, targetText(g.target)), h('td', {class: 'num'}, g.lag_events),
                    h('td', {class: 'num' + (g.parked ? ' warn' : '')}, g.parked),
                    h('td', {class: 'num'}, memberCount(g))))));
    });
  };

  // drawChart(div, samples): an SVG bar chart, one bar per second, newest
  // on the right.
  function drawChart(div, samples) {
    const NS = 'http://www.w3.org/2000/svg';
    const W = 600, H = 150, top = 18, bottom = 18;
    const s = (tag, attrs, text) => {
      const el = document.createElementNS(NS, tag);
      for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
      if (text !== undefined) el.textContent = text;
      return el;
    };
    const max = Math.max(1, ...samples.map((x) => x.rate));
    const scale = niceCeil(max);
    const svg = s('svg', {
      viewBox: `0 0 ${W} ${H}`,
      width: W,
      height: H,
      role: 'img',
      'aria-label': 'events appended per second, the last minute'
    });
    const plotH = H - top - bottom;
    svg.append(
        s('line', {x1: 0, y1: top, x2: W, y2: top, class: 'grid'}),
        s('line', {x1: 0, y1: top + plotH, x2: W, y2: top + plotH, class: 'axis'}),
        s('text', {x: 2, y: 12, class: 'tick'}, `${scale} events/s`),
        s('text', {x: 2, y: H - 4, class: 'tick'}, `${CHART_SAMPLES} s ago`),
        s('text', {x: W - 2, y: H - 4, class: 'tick', 'text-anchor': 'end'}, 'now'));
    const bw = W / CHART_SAMPLES;
    samples.forEach((x, n) => {
      const bh = (x.rate / scale) * plotH;
      const bar = s('rect', {
        x: (CHART_SAMPLES - samples.length + n) * bw + 1,
        y: top + plotH - bh,
        width: bw - 2,
        height: Math.max(bh, x.rate > 0 ? 1 : 0),
        class: 'bar'
      });
      bar.append(s(
          'title', {}, `${x.at.toLocaleTimeString()}: ${x.delta} events, ${x.rate.toFixed(1)}/s`));
      svg.append(bar);
    });
    div.dataset.samples = String(samples.length);
    div.replaceChildren(svg);
  }

  function niceCeil(v) {
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 5, 10])
      if (m * p >= v) return m * p;
    return 10 * p;
  }

  // ---------------------------------------------------------------- streams

  // searchForm(id, label, value, onSearch): a prefix search box.
  function searchForm(id, label, value, onSearch) {
    const input = h(
        'input',
        {id, type: 'search', placeholder: label, value, spellcheck: 'false', 'aria-label': label});
    const form = h('form', {class: 'search'}, input, h('button', {type: 'submit'}, 'Search'));
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      onSearch(input.value);
    });
    return form;
  }

  // pager(hashOf, after, next): "first page" and "next page" links for a
  // list paged by next_after.
  function pager(hashOf, after, next) {
    return h(
        'div', {class: 'pager'},
        after ? h('a', {href: hashOf(''), class: 'button'}, '« first page') : null,
        next ? h('a', {href: hashOf(next), class: 'button', id: 'next-page'}, 'next page »') :
               null);
  }

  views.streams = async (ctx, root, _arg, params) => {
    const prefix = params.get('prefix') || '';
    const after = params.get('after') || '';
    const hashOf = (p, a) => '#/streams' + query({prefix: p, after: a});
    root.append(
        h('h1', {}, 'Streams'),
        searchForm('stream-prefix', 'stream id prefix, e.g. order-', prefix, (p) => {
          location.hash = hashOf(p, '');
        }));
    const r = await api('/v1/streams' + query({prefix, after, limit: LIST_PAGE}));
    if (!ctx.alive()) return;
    if (!r.streams.length) {
      root.append(
          h('p', {class: 'muted', id: 'stream-list-empty'},
            prefix ? `No stream starts with “${prefix}”.` : 'No streams yet.'));
      return;
    }
    root.append(
        table(
            [
              'stream', 'version', 'first version', 'last position', 'state', 'created', 'head hash'
            ],
            r.streams.map(
                (s) => h(
                    'tr', {'data-stream': s.stream_id},
                    h('td', {},
                      h('a', {href: streamHref(s.stream_id), class: 'mono'}, s.stream_id)),
                    h('td', {class: 'num'}, s.version), h('td', {class: 'num'}, s.first_version),
                    h('td', {class: 'num'}, s.last_position),
                    h('td', {class: 'state-' + s.state}, s.state), h('td', {}, s.created_at || ''),
                    h('td', {class: 'mono', title: s.head_hash || ''}, shortHash(s.head_hash)))),
            {id: 'stream-list'}),
        pager((a) => hashOf(prefix, a), after, r.next_after));
  };

  views.categories = async (ctx, root, _arg, params) => {
    const prefix = params.get('prefix') || '';
    const after = params.get('after') || '';
    const hashOf = (p, a) => '#/categories' + query({prefix: p, after: a});
    root.append(
        h('h1', {}, 'Categories'),
        h('p', {class: 'muted'},
          'A category is a stream id up to its first “-”: order-1 and order-2 are in order.'),
        searchForm('category-prefix', 'category prefix', prefix, (p) => {
          location.hash = hashOf(p, '');
        }));
    const r = await api('/v1/categories' + query({prefix, after, limit: LIST_PAGE}));
    if (!ctx.alive()) return;
    if (!r.categories.length) {
      root.append(h('p', {class: 'muted', id: 'category-list-empty'}, 'No categories match.'));
      return;
    }
    root.append(
        table(
            ['category', '', ''],
            r.categories.map(
                (c) => h(
                    'tr', {'data-category': c}, h('td', {class: 'mono'}, c),
                    h('td', {}, h('a', {href: '#/streams' + query({prefix: c + '-'})}, 'streams')),
                    h('td', {},
                      h('a', {href: '#/live' + query({category: c}), class: 'follow'},
                        'follow live')))),
            {id: 'category-list'}),
        pager((a) => hashOf(prefix, a), after, r.next_after));
  };

  // ---------------------------------------------------------------- one stream

  // The newest verification of each stream this tab ran, by stream id:
  // {result, at, info_head}. The stream page shows it and marks the first
  // broken event.
  const verified = new Map();

  function eventArticle(e, broken) {
    const isBroken = broken && broken.stream_version === e.stream_version;
    return h(
        'article', {
          class: 'event' + (isBroken ? ' broken' : ''),
          id: 'ev-' + e.stream_version,
          'data-version': e.stream_version,
          'data-position': e.global_position
        },
        h('header', {}, h('span', {class: 'ver'}, 'v' + e.stream_version),
          h('span', {class: 'type'}, e.type),
          e.schema_version !== undefined ?
              h('span', {class: 'muted'}, '(schema ' + e.schema_version + ')') :
              null,
          h('span', {class: 'muted'}, 'position ' + e.global_position),
          h('span', {class: 'muted'}, e.recorded_at),
          e.written_by ? h('span', {class: 'muted'}, 'by ' + e.written_by) : null,
          isBroken ? h('span', {class: 'badge bad'}, 'first broken: ' + broken.reason) : null),
        h('div', {class: 'ids muted mono'},
          'id ' + e.event_id + (e.correlation_id ? ' · correlation ' + e.correlation_id : '') +
              (e.causation_id ? ' · causation ' + e.causation_id : '') +
              (e.content_type !== 'application/json' ? ' · ' + e.content_type : '')),
        e.redaction_reason !== undefined ?
            h('p', {class: 'redacted'}, 'redacted: ' + e.redaction_reason) :
            dataBlock(e, 'data'),
        e.metadata !== undefined ?
            h('details', {}, h('summary', {}, 'metadata'), dataBlock(e, 'metadata')) :
            null);
  }

  views.stream = async (ctx, root, id, params) => {
    if (!id) {
      location.hash = '#/streams';
      return;
    }
    const title =
        h('h1', {}, h('span', {class: 'muted'}, 'stream '),
          h('span', {class: 'mono', id: 'stream-id'}, id));
    root.append(title);
    const info = await api('/v1/streams/' + encodeURIComponent(id) + '/info');
    if (!ctx.alive()) return;
    const first = info.first_version || 0;
    const last = info.version;
    const fromParam = params.get('from');
    let from = fromParam !== null && /^\d+$/.test(fromParam) ? Number(fromParam) :
                                                               Math.max(first, last + 1 - PAGE);
    from = Math.max(first, from);

    const verifyBtn = h('button', {id: 'verify', type: 'button'}, 'Verify receipts');
    const verifyOut = h('div', {id: 'verify-result', class: 'verify', hidden: true});
    root.append(
        h('dl', {class: 'info', id: 'stream-info'}, h('dt', {}, 'state'),
          h('dd', {class: 'state-' + info.state}, info.state), h('dt', {}, 'version'),
          h('dd', {id: 'stream-version'}, last), h('dt', {}, 'first version'), h('dd', {}, first),
          h('dt', {}, 'last position'), h('dd', {}, info.last_position), h('dt', {}, 'created'),
          h('dd', {}, info.created_at || ''), h('dt', {}, 'head hash'),
          h('dd', {class: 'mono', id: 'head-hash'}, info.head_hash || '')),
        h('div', {class: 'actions'}, verifyBtn,
          h('a', {class: 'button', href: '#/live' + query({stream: id})}, 'Follow live')),
        verifyOut);

    const v = verified.get(id);
    if (v) showVerify(verifyOut, id, v);
    verifyBtn.addEventListener('click', () => runVerify(ctx, id, info, verifyBtn, verifyOut));

    const page = await api('/v1/streams/' + encodeURIComponent(id) + query({from, limit: PAGE}));
    if (!ctx.alive()) return;
    const events = page.events;
    const to = events.length ? events[events.length - 1].stream_version : from;
    const nav = (f) => streamHref(id, {from: f});
    root.append(
        h('div', {class: 'pager', id: 'event-pager'},
          h('span', {class: 'muted', id: 'event-range'},
            events.length ? `versions ${events[0].stream_version}–${to} of ${first}–${last}` :
                            'no events here'),
          from > first ? h('a', {class: 'button', href: nav(first)}, '« first') : null,
          from > first ?
              h('a', {class: 'button', href: nav(Math.max(first, from - PAGE))}, '‹ older') :
              null,
          to < last ? h('a', {class: 'button', href: nav(to + 1)}, 'newer ›') : null,
          to < last ? h('a', {class: 'button', href: streamHref(id)}, 'latest »') : null));
    const broken = v && !v.result.ok ? v.result.first_broken : null;
    root.append(h('div', {id: 'events'}, events.map((e) => eventArticle(e, broken))));
    if (broken) {
      const el = $('#ev-' + broken.stream_version, root);
      if (el) el.scrollIntoView({block: 'center'});
    }
  };

  // runVerify: GET /v1/streams/{id}/verify as Server-Sent Events
  // (Accept: text/event-stream): "progress" events ({events_checked,
  // events_total}) drive the bar, then "result" (ok, or the first broken
  // event, shown and marked on its page) or "error".
  async function runVerify(ctx, id, info, btn, out) {
    btn.disabled = true;
    const bar = h('progress', {id: 'verify-progress'});
    const label = h('span', {id: 'verify-count'}, 'starting…');
    const elapsed = h('span', {class: 'muted'}, '');
    out.hidden = false;
    out.className = 'verify running';
    delete out.dataset.progress;
    out.replaceChildren(bar, ' checking receipts: ', label, ' ', elapsed);
    const started = performance.now();
    const timer = setInterval(() => {
      elapsed.textContent = ((performance.now() - started) / 1000).toFixed(1) + ' s';
    }, 100);
    try {
      const result = await verifyStream(id, (p) => {
        if (!ctx.alive()) return;
        if (p.events_total) {
          bar.max = p.events_total;
          bar.value = p.events_checked || 0;
        }
        label.textContent = `${p.events_checked || 0} of ${p.events_total || '?'} events`;
        out.dataset.progress = `${p.events_checked || 0}/${p.events_total || 0}`;
      });
      const v = {
        result,
        at: new Date(),
        infoHead: info.head_hash,
        seconds: (performance.now() - started) / 1000
      };
      verified.set(id, v);
      if (!ctx.alive()) return;
      if (result.ok) {
        showVerify(out, id, v);
      } else {
        // Show the page that holds the first broken event, marked.
        const b = result.first_broken;
        const target =
            streamHref(id, {from: Math.max(info.first_version || 0, b.stream_version - 5)});
        if (location.hash === target)
          route();
        else
          location.hash = target;
      }
    } catch (e) {
      if (!ctx.alive()) return;
      out.className = 'verify failed';
      out.replaceChildren(h('strong', {id: 'verify-status'}, 'verification failed: ' + String(e)));
    } finally {
      clearInterval(timer);
      btn.disabled = false;
    }
  }

  // verifyStream(id, onProgress): the stream's VerifyResult JSON; throws
  // ApiError.
  async function verifyStream(id, onProgress) {
    const path = '/v1/streams/' + encodeURIComponent(id) + '/verify';
    let res;
    try {
      res = await fetch(path, {headers: headers({Accept: 'text/event-stream'}), cache: 'no-store'});
    } catch (e) {
      throw new ApiError(0, 'UNREACHABLE', 'cannot reach logbookd: ' + e.message);
    }
    if (!res.ok) throw errorOf(res, await res.text().catch(() => ''));
    try {
      for await (const m of sse(res)) {
        if (m.event === 'progress')
          onProgress(parseJson(m.data));
        else if (m.event === 'result')
          return parseJson(m.data);
        else if (m.event === 'error') {
          const err = parseJson(m.data).error || {};
          throw new ApiError(0, err.code || 'ERROR', err.message || m.data);
        }
      }
    } catch (e) {
      if (e instanceof ApiError) throw e;
      throw new ApiError(0, 'UNREACHABLE', `${path}: the answer broke off: ${e.message}`);
    }
    throw new ApiError(0, 'UNREACHABLE', `${path}: the stream ended without a result`);
  }

  function showVerify(out, id, v) {
    const r = v.result;
    out.hidden = false;
    const when = ` (verified at ${v.at.toLocaleTimeString()}, ${v.seconds.toFixed(1)} s)`;
    if (r.ok) {
      out.className = 'verify ok';
      out.replaceChildren(
          h('strong', {id: 'verify-status'},
            `ok: ${r.events_checked} event${r.events_checked === 1 ? '' : 's'} checked`),
          h('span', {},
            r.head_hash === v.infoHead ?
                ', the head hash matches the stream\'s' :
                `, head hash ${shortHash(r.head_hash)} (the stream has moved since)`),
          h('span', {class: 'muted'}, when));
      return;
    }
    const b = r.first_broken;
    out.className = 'verify bad';
    out.replaceChildren(
        h('strong', {id: 'verify-status'},
          `BROKEN at ${b.stream_id}@${b.stream_version} (position ${b.global_position}): ${
              b.reason}`),
        h('div', {class: 'detail'}, b.detail), h('span', {class: 'muted'}, when.trim() + ' '),
        h('a', {href: '#ev-' + b.stream_version, id: 'show-broken'}, 'show the event'));
    $('#show-broken', out).addEventListener('click', (e) => {
      e.preventDefault();
      const el = document.getElementById('ev-' + b.stream_version);
      if (el)
        el.scrollIntoView({block: 'center'});
      else
        location.hash = streamHref(id, {from: b.stream_version});
    });
  }

  // ---------------------------------------------------------------- live

  // Follows $all, a category or a stream: the last LIVE_BACKLOG events,
  // then live, through GET /v1/subscribe read with fetch() (EventSource
  // cannot send the Authorization header). A dropped connection is resumed
  // after the last event shown.
  views.live = async (ctx, root, _arg, params) => {
    const category = params.get('category') || '';
    const stream = params.get('stream') || '';
    const kind = stream ? 'stream' : category ? 'category' : 'all';
    const what = stream ? `stream ${stream}` : category ? `category ${category}` : '$all';

    const select =
        h('select', {id: 'live-kind', 'aria-label': 'what to follow'},
          h('option', {value: 'all', selected: kind === 'all'}, '$all'),
          h('option', {value: 'category', selected: kind === 'category'}, 'category'),
          h('option', {value: 'stream', selected: kind === 'stream'}, 'stream'));
    const input = h('input', {
      id: 'live-target',
      type: 'text',
      value: stream || category,
      placeholder: 'category or stream id',
      spellcheck: 'false'
    });
    const form =
        h('form', {class: 'search'}, select, input, h('button', {type: 'submit'}, 'Follow'));
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const k = select.value;
      location.hash = '#/live' + query(k === 'all' ? {} : {[k]: input.value.trim()});
    });
    const status = h('span', {id: 'live-status', class: 'status'}, 'connecting…');
    const count = h('span', {id: 'live-count', class: 'muted'}, '');
    const stopBtn = h('button', {type: 'button', id: 'live-stop'}, 'Stop');
    const list = h('div', {id: 'live-events'});
    root.append(
        h('h1', {}, 'Live: ', h('span', {class: 'mono', id: 'live-what'}, what)), form,
        h('div', {class: 'actions'}, status, stopBtn, count), list);

    let controller = null;
    let stopped = false;
    let lastId = null;
    let shown = 0;
    ctx.onCleanup(() => {
      stopped = true;
      if (controller) controller.abort();
    });
    stopBtn.addEventListener('click', () => {
      if (stopped) {
        stopped = false;
        stopBtn.textContent = 'Stop';
        follow();
      } else {
        stopped = true;
        stopBtn.textContent = 'Resume';
        if (controller) controller.abort();
        setStatus('stopped', 'stopped');
      }
    });
    const setStatus = (text, cls) => {
      status.textContent = text;
      status.className = 'status ' + (cls || '');
      status.dataset.state = cls || '';
    };

    let caughtUp = false;  // events after caught_up are new: they flash
    const add = (e) => {
      shown++;
      list.prepend(
          h('article',
            {class: 'event' + (caughtUp ? ' fresh' : ''), 'data-position': e.global_position},
            h('header', {}, h('span', {class: 'ver'}, '#' + e.global_position),
              h('a', {href: streamHref(e.stream_id, {from: e.stream_version}), class: 'mono'},
                `${e.stream_id}@${e.stream_version}`),
              h('span', {class: 'type'}, e.type), h('span', {class: 'muted'}, e.recorded_at)),
            e.redaction_reason !== undefined ?
                h('p', {class: 'redacted'}, 'redacted: ' + e.redaction_reason) :
                dataBlock(e, 'data')));
      while (list.childElementCount > LIVE_KEEP) list.lastElementChild.remove();
      count.textContent = `${shown} event${shown === 1 ? '' : 's'} received`;
    };

    // Where to start: just before the oldest of the last LIVE_BACKLOG events.
    const recent = stream ?
        await api(
            '/v1/streams/' + encodeURIComponent(stream) +
            query({direction: 'backward', limit: LIVE_BACKLOG}))
            .catch((e) => {
              if (e.status === 404) return {events: []};
              throw e;
            }) :
        await api('/v1/all' + query({direction: 'backward', limit: LIVE_BACKLOG, category}));
    if (!ctx.alive()) return;
    if (recent.events.length) lastId = recent.events[recent.events.length - 1].global_position - 1;

    const follow = async () => {
      while (!stopped && ctx.alive()) {
        controller = new AbortController();
        const url =
            '/v1/subscribe' + query({stream, category, from: lastId === null ? undefined : lastId});
        let retry = true;
        try {
          setStatus(
              lastId === null ? 'connecting…' : `connecting after position ${lastId}…`,
              'connecting');
          const res = await fetch(url, {
            headers: headers({Accept: 'text/event-stream'}),
            cache: 'no-store',
            signal: controller.signal
          });
          if (!res.ok) {
            const err = errorOf(res, await res.text());
            setStatus(String(err), 'error');
            showError(err, 'subscribe');
            if (res.status < 500) return;
          } else {
            setStatus('catching up…', 'catching-up');
            for await (const m of sse(res)) {
              if (m.event === 'event') {
                const e = parseJson(m.data);
                lastId = e.global_position;
                add(e);
              } else if (m.event === 'caught_up') {
                caughtUp = true;
                setStatus(
                    `live: caught up at position ${parseJson(m.data).global_position}`, 'live');
              } else if (m.event === 'fell_behind') {
                setStatus(
                    `fell behind at position ${parseJson(m.data).global_position}; catching up…`,
                    'catching-up');
              } else if (m.event === 'error') {
                const err = parseJson(m.data).error || {};
                const ae = new ApiError(0, err.code || 'ERROR', err.message || m.data);
                setStatus(String(ae), 'error');
                showError(ae, 'subscription ended');
                retry = err.code === 'UNAVAILABLE';
                break;
              }
            }
            if (retry && !stopped && ctx.alive())
              setStatus('the server ended the stream; reconnecting in 2 s…', 'connecting');
          }
        } catch (e) {
          if (stopped || !ctx.alive()) return;
          setStatus(`disconnected (${e.message}); reconnecting in 2 s…`, 'connecting');
        }
        if (!retry) return;
        await sleep(2000);
      }
    };
    follow();
  };

  // ---------------------------------------------------------------- groups

  function targetText(t) {
    if (!t) return '';
    let s = t.stream_id !== undefined ? `stream ${t.stream_id}` :
        t.category !== undefined ? `category ${t.category}` :
                                   '$all';
    if (t.filter_category) s += `, category ${t.filter_category}`;
    if (t.prefix) s += `, prefix ${t.prefix}`;
    if (t.types && t.types.length) s += `, types ${t.types.join(',')}`;
    return s;
  }
  const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;
  const memberCount = (g) => (Array.isArray(g.members) ? g.members.length : g.members);
  const secs = (x) => (typeof x === 'number' ? x.toFixed(1) + ' s' : '');

  views.groups = async (ctx, root) => {
    const holder = h('div', {id: 'group-list'}, h('p', {class: 'muted'}, 'loading…'));
    root.append(h('h1', {}, 'Consumer groups'), holder);
    await ctx.every(3000, async () => {
      const r = await api('/v1/groups');
      if (!ctx.alive()) return;
      if (!r.groups.length)
        return holder.replaceChildren(
            h('p', {class: 'muted'}, 'No consumer groups. Create one with logbook group create.'));
      holder.replaceChildren(table(
          [
            'group', 'target', 'strategy', 'checkpoint', 'head', 'lag (events)', 'lag', 'in flight',
            'parked', 'members'
          ],
          r.groups.map(
              (g) =>
                  h('tr', {'data-group': g.group},
                    h('td', {}, h('a', {href: '#/group/' + encodeURIComponent(g.group)}, g.group)),
                    h('td', {}, targetText(g.target)),
                    h('td', {}, g.settings ? g.settings.strategy : g.strategy),
                    h('td', {class: 'num'}, g.checkpoint_position),
                    h('td', {class: 'num'}, g.head_position), h('td', {class: 'num'}, g.lag_events),
                    h('td', {class: 'num'}, secs(g.lag_seconds)),
                    h('td', {class: 'num'}, g.in_flight),
                    h('td', {class: 'num' + (g.parked ? ' warn' : ''), 'data-parked': g.parked},
                      g.parked),
                    h('td', {class: 'num'}, memberCount(g))))));
    });
  };

  views.group = async (ctx, root, name) => {
    if (!name) {
      location.hash = '#/groups';
      return;
    }
    const base = '/v1/groups/' + encodeURIComponent(name);
    const summary = h('div', {id: 'group-summary'}, h('p', {class: 'muted'}, 'loading…'));
    const members = h('div', {id: 'group-members'});
    const parked = h('section', {id: 'parked'}, h('h2', {}, 'Parked events'));
    root.append(
        h('h1', {}, h('span', {class: 'muted'}, 'group '), h('span', {class: 'mono'}, name)),
        summary, h('h2', {}, 'Members'), members, parked);

    const drawGroup = (g) => {
      const s = g.settings || {};
      const row = (k, v, id) => [h('dt', {}, k), h('dd', id ? {id} : {}, v)];
      summary.replaceChildren(
          h('dl', {class: 'info'}, row('target', targetText(g.target)),
            row('strategy', s.strategy || g.strategy || ''),
            s.ack_timeout_ms !== undefined ?
                row('settings',
                    `ack timeout ${s.ack_timeout_ms} ms, max deliveries ${s.max_deliveries}, ` +
                        `retry backoff ${s.retry_backoff_ms} to ${
                            s.retry_backoff_max_ms} ms, max in flight ${s.max_in_flight}`) :
                null,
            row('checkpoint', g.checkpoint_position), row('head', g.head_position),
            row('lag', `${plural(g.lag_events, 'event')}, ${secs(g.lag_seconds)}`, 'group-lag'),
            row('in flight', g.in_flight),
            row('parked',
                g.parked + (g.parked ? ` (oldest ${secs(g.oldest_parked_age_seconds)} ago)` : ''),
                'group-parked'),
            row('delivered', g.delivered), row('acked', g.acked),
            row('created', g.created_at || '')));
      const list = Array.isArray(g.members) ? g.members : [];
      members.replaceChildren(
          list.length ? table(
                            ['consumer', 'instance', 'in flight', 'streams owned', 'connected at'],
                            list.map(
                                (m) =>
                                    h('tr', {}, h('td', {class: 'mono'}, m.consumer),
                                      h('td', {class: 'mono'}, m.instance),
                                      h('td', {class: 'num'}, m.in_flight),
                                      h('td', {class: 'num'}, m.streams_owned),
                                      h('td', {}, m.connected_at || ''))),
                            {id: 'member-list'}) :
                        h('p', {class: 'muted'}, 'No consumer is connected.'));
    };
    const refreshGroup = async () => {
      const g = await api(base);
      if (ctx.alive()) drawGroup(g);
    };

    // Parked events: listing them needs the operator role (ListParked), so
    // a 403 here says this token is no operator, and the replay and drop
    // buttons are not shown. An operator whose action is refused anyway (a
    // scope) sees the 403 next to the buttons.
    const result = h('div', {id: 'parked-result', class: 'result', hidden: true});
    const say = (text, cls) => {
      result.hidden = false;
      result.className = 'result ' + cls;
      result.textContent = text;
    };
    const act = async (verb, body, confirmText) => {
      if (confirmText && !window.confirm(confirmText)) return;
      try {
        const r = await api(`${base}/parked/${verb}`, {method: 'POST', body});
        const n = verb === 'replay' ? r.replayed : r.dropped;
        say(`${verb === 'replay' ? 'replayed' : 'dropped'} ${n} parked event${n === 1 ? '' : 's'}`,
            'ok');
      } catch (e) {
        say(`${verb} refused: ${e}` +
                (e.status === 403 ? ' (replay and drop need the operator role)' : ''),
            'bad');
        if (e.status !== 404) return;
      }
      await Promise.all([loadParked(), refreshGroup().catch((e) => showError(e))]);
    };
    const selected =
        () => [...parked.querySelectorAll('input.pick:checked')].map((c) => Number(c.value));
    const loadParked = async () => {
      let rows = [];
      let after = null;
      let r;
      do {
        r = await api(`${base}/parked` + query({after, limit: 500}));
        rows = rows.concat(r.parked);
        after = r.next_after;
      } while (after !== undefined && after !== null && r.parked.length && rows.length < 5000);
      if (!ctx.alive()) return;
      const tools = h('div', {class: 'actions', id: 'parked-tools'});
      const button = (label, id, fn, cls) => {
        const b = h('button', {type: 'button', id, class: cls || ''}, label);
        b.addEventListener('click', fn);
        return b;
      };
      tools.append(
          button(
              'Replay selected', 'replay-selected',
              () => {
                const ids = selected();
                if (ids.length) act('replay', {delivery_ids: ids});
              }),
          button(
              'Drop selected', 'drop-selected',
              () => {
                const ids = selected();
                if (ids.length)
                  act('drop', {delivery_ids: ids}, `Drop ${ids.length} parked event(s) for good?`);
              },
              'danger'),
          button('Replay all', 'replay-all', () => act('replay', {all: true})),
          button(
              'Drop all', 'drop-all',
              () => act('drop', {all: true}, `Drop every parked event of ${name} for good?`),
              'danger'),
          button('Refresh', 'parked-refresh', () => loadParked().catch((e) => showError(e))));
      const body = rows.length ?
          table(
              ['', 'delivery', 'event', 'type', 'attempts', 'reason', 'parked at', ''],
              rows.map((p) => {
                const replay =
                    button('Replay', null, () => act('replay', {delivery_ids: [p.delivery_id]}));
                replay.className = 'replay';
                const drop = button(
                    'Drop', null,
                    () =>
                        act('drop', {delivery_ids: [p.delivery_id]},
                            `Drop parked delivery ${p.delivery_id} (${p.stream_id}@${
                                p.stream_version}) for good?`),
                    'danger drop');
                return h(
                    'tr', {'data-delivery': p.delivery_id},
                    h('td', {}, h('input', {
                        type: 'checkbox',
                        class: 'pick',
                        value: p.delivery_id,
                        'aria-label': 'select ' + p.delivery_id
                      })),
                    h('td', {class: 'num'}, p.delivery_id),
                    h('td', {},
                      h('a',
                        {class: 'mono', href: streamHref(p.stream_id, {from: p.stream_version})},
                        `${p.stream_id}@${p.stream_version}`)),
                    h('td', {}, p.type), h('td', {class: 'num'}, p.attempts),
                    h('td', {class: 'reason'}, p.reason), h('td', {}, p.parked_at || ''),
                    h('td', {class: 'row-actions'}, replay, drop));
              }),
              {id: 'parked-table'}) :
          h('p', {class: 'muted', id: 'parked-empty'}, 'No parked events.');
      parked.replaceChildren(h('h2', {}, 'Parked events'), tools, result, body);
    };

    await ctx.every(3000, refreshGroup);
    try {
      await loadParked();
    } catch (e) {
      if (!ctx.alive()) return;
      parked.replaceChildren(
          h('h2', {}, 'Parked events'),
          h('p', {class: e.status === 403 ? 'forbidden' : 'result bad', id: 'parked-error'},
            String(e) +
                (e.status === 403 ?
                     ' — parked events, and their replay and drop buttons, are for operators.' :
                     '')));
    }
  };

  // ---------------------------------------------------------------- start

  showLoginState();
  window.addEventListener('hashchange', route);
  route();
})();
