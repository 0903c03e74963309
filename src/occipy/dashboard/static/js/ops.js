// Live progress of long operations. Answers that start cloud work carry `X-OCCI-Operation: <url>`;
// the record there has `state` (queued, running, succeeded, failed) and `message`. When the
// server offers `GET /-/events` (server-sent events of JSON {type, location, operation, state})
// updates come from that stream; when it answers 404/501, each operation's record is polled.

import {authorization, get} from './api.js';
import {h, pathOf} from './dom.js';

const FINAL = new Set(['succeeded', 'failed']);
const POLL_MS = 400;

const tracked = new Map(); // operation path -> {label, state, message, row, resolve}
const listeners = new Set();
let mode = 'unknown'; // 'events' | 'polling' | 'unknown'
let stream = null;
let received = 0; // events read from the stream since the page loaded
let retry = 3000;
let serverRetry = null; // the stream's `retry:` field (ms), when it sent one
let lastEventId = null; // the stream's last `id:`, sent back as Last-Event-ID after a reconnect
let enabled = false; // startEvents() was called and stopEvents() not since

/** Call `fn(event)` for every change seen (operation updates and stream events). */
export function onChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function notify(event) {
  for (const fn of listeners) {
    try { fn(event); } catch (error) { console.error(error); }
  }
}

export function eventsMode() {
  return mode;
}

function setMode(next, detail = '') {
  mode = next;
  const el = document.getElementById('events-mode');
  if (el) {
    el.textContent = (next === 'events' ? 'Live updates: server-sent events.'
      : next === 'polling' ? 'Live updates: polling operation records.' : '') + (detail ? ' ' + detail : '');
  }
}

function render(op) {
  const state = op.state || 'queued';
  const text = `${op.label}: ${state}${op.message ? ' — ' + op.message : ''}`;
  if (!op.row) {
    op.status = h('span', {class: 'op-state'});
    op.bar = h('progress', {'aria-label': `${op.label} progress`});
    op.row = h('li', {class: 'op', dataset: {operation: op.path}}, op.status, op.bar);
    const list = document.getElementById('activity');
    if (list) list.prepend(op.row);
  }
  op.row.dataset.state = state;
  op.status.textContent = text;
  op.bar.hidden = FINAL.has(state);
}

function update(path, record) {
  const op = tracked.get(path);
  if (!op) return;
  if (record.state) op.state = record.state;
  if (record.message !== undefined) op.message = record.message;
  render(op);
  notify({type: 'operation', operation: path, state: op.state, location: record.location});
  if (FINAL.has(op.state)) {
    tracked.delete(path);
    op.resolve(op);
  }
}

async function poll(path) {
  let round = 0;
  while (tracked.has(path)) {
    // With the event stream, a slow poll is only a safety net (an event sent before the stream
    // connected is not sent again); without it, every round.
    if (mode !== 'events' || round % 12 === 0) {
      try {
        const {data} = await get(path);
        update(path, data || {});
      } catch (error) {
        update(path, {state: 'failed', message: error.message});
        return;
      }
    }
    round += 1;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

/**
 * Follow the operation at `url` (from X-OCCI-Operation); `label` says what it is.
 * Resolves with {state, message} once it has succeeded or failed.
 */
export function track(url, label) {
  const path = pathOf(url);
  let op = tracked.get(path);
  if (op) return op.done;
  op = {path, label, state: 'running', message: ''};
  op.done = new Promise((resolve) => { op.resolve = resolve; });
  tracked.set(path, op);
  render(op);
  poll(path);
  return op.done;
}

/** Note something that finished at once (no operation): shown in the activity log. */
export function note(text) {
  const list = document.getElementById('activity');
  if (list) list.prepend(h('li', {class: 'op', dataset: {state: 'succeeded'}}, text));
}

function handleEvent(data) {
  received += 1;
  if (mode === 'events') setMode('events', `${received} received.`);
  let event;
  try { event = JSON.parse(data); } catch { return; }
  if (event.operation) {
    const path = pathOf(event.operation);
    if (tracked.has(path)) update(path, event);
  }
  notify({...event, type: event.type || 'event'});
}

/** Open the event stream (fetch, so that credentials go with it); fall back to polling. */
export async function startEvents() {
  enabled = true;
  closeStream();
  const controller = new AbortController();
  stream = controller;
  const headers = {Accept: 'text/event-stream'};
  const auth = authorization();
  if (auth) headers.Authorization = auth;
  // Resume where the last stream stopped: the server sends what happened meanwhile (or a `lost`
  // event when it no longer has it, and the page is read again).
  if (lastEventId !== null) headers['Last-Event-ID'] = lastEventId;
  let response;
  try {
    response = await fetch('/-/events', {headers, signal: controller.signal, cache: 'no-store'});
  } catch {
    setMode('polling');
    if (stream === controller) {
      stream = null;
      // Unreachable (the server restarting?): try again if a stream worked before.
      if (lastEventId !== null) reconnectLater();
    }
    return;
  }
  const type = response.headers.get('Content-Type') || '';
  if (!response.ok || !type.startsWith('text/event-stream') || !response.body) {
    // 404 or 501: the server has no event stream; polling the operation records does the job.
    setMode('polling');
    controller.abort();
    return;
  }
  setMode('events');
  retry = serverRetry || 3000;
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  try {
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buffer += value;
      let cut;
      while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut).replace(/^\r?\n\r?\n/, '');
        const lines = block.split(/\r?\n/);
        for (const line of lines) {
          // HTML §9.2.6: an `id:` (even in a block without data) is the id to resume from.
          if (line.startsWith('id:')) lastEventId = line.slice(3).replace(/^ /, '');
          if (line.startsWith('retry:') && /^\s*\d+$/.test(line.slice(6))) {
            serverRetry = Number(line.slice(6));
            retry = serverRetry;
          }
        }
        const data = lines.filter((line) => line.startsWith('data:'))
          .map((line) => line.slice(5).replace(/^ /, '')).join('\n');
        if (data) handleEvent(data);
      }
    }
  } catch { /* aborted or the connection dropped */ }
  if (stream === controller) {
    setMode('polling', `The event stream ended after ${received} event${received === 1 ? '' : 's'}; reconnecting.`);
    stream = null;
    reconnectLater();
  }
}

/** Open the stream again after `retry` ms (the server's `retry:`, else 3 s), doubling to 60 s. */
function reconnectLater() {
  setTimeout(() => { if (enabled && !stream) startEvents(); }, retry);
  retry = Math.min(retry * 2, 60000);
}

export function stopEvents() {
  enabled = false;
  closeStream();
}

function closeStream() {
  if (stream) {
    const old = stream;
    stream = null;
    old.abort();
  }
}
