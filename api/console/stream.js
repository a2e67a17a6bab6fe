// The live updates of GET /api/v1/stream, read with fetch() because the
// stream needs an `Authorization: Bearer` header, which EventSource cannot
// send. `EventStreamParser` parses the text/event-stream format as the
// HTML standard defines it; `LiveStream` keeps one stream open, remembers
// the last `id:` and reconnects after an error with `Last-Event-ID` and a
// growing, jittered back-off, so no event is missed or seen twice.

import { authorizedFetch, ApiError } from './api.js';

/** Parses text/event-stream text fed in arbitrary chunks. */
export class EventStreamParser {
  constructor(onEvent, onRetry = () => {}) {
    this.onEvent = onEvent;
    this.onRetry = onRetry;
    this.buffer = '';
    this.started = false;
    this.lastEventId = '';
    this.resetEvent();
  }

  resetEvent() {
    this.eventType = '';
    this.data = '';
  }

  /** Feeds decoded text; complete lines are handled, the rest waits. */
  feed(text) {
    this.buffer += text;
    if (!this.started && this.buffer.length > 0) {
      this.started = true;
      if (this.buffer.charCodeAt(0) === 0xfeff) this.buffer = this.buffer.slice(1);
    }
    // A line ends at CRLF, LF or CR; a CR at the very end may be the first
    // half of a CRLF, so it waits for the next chunk.
    let start = 0;
    for (let i = 0; i < this.buffer.length; i += 1) {
      const c = this.buffer[i];
      if (c !== '\n' && c !== '\r') continue;
      if (c === '\r' && i === this.buffer.length - 1) break;
      this.line(this.buffer.slice(start, i));
      if (c === '\r' && this.buffer[i + 1] === '\n') i += 1;
      start = i + 1;
    }
    this.buffer = this.buffer.slice(start);
  }

  line(line) {
    if (line === '') {
      this.dispatch();
      return;
    }
    if (line.startsWith(':')) return; // a comment: the server's heartbeat
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'event':
        this.eventType = value;
        break;
      case 'data':
        this.data += `${value}\n`;
        break;
      case 'id':
        if (!value.includes('\u0000')) this.lastEventId = value;
        break;
      case 'retry':
        if (/^[0-9]+$/.test(value)) this.onRetry(Number(value));
        break;
      default:
        break; // unknown fields are ignored
    }
  }

  dispatch() {
    if (this.data === '') {
      this.resetEvent();
      return;
    }
    const event = {
      type: this.eventType || 'message',
      data: this.data.endsWith('\n') ? this.data.slice(0, -1) : this.data,
      id: this.lastEventId,
    };
    this.resetEvent();
    this.onEvent(event);
  }
}

const INITIAL_DELAY_MS = 1000;
const MAX_DELAY_MS = 30000;

/**
 * One live stream for the session. `on(type, listener)` subscribes to an
 * event type (`bot_status`, `trade`, `position`, `notification`,
 * `notification_read`) and gets `{kind, data, position, recorded_at,
 * user_id}`; `on('state', …)` gets `connecting`, `open`, `retrying` or
 * `closed`; `on('open', …)` fires on each (re)connection, when a view may
 * read again what it shows.
 */
export class LiveStream {
  /** `path`: the stream's path under /api/v1, or a function giving it at each connection. */
  constructor(path = '/stream') {
    this.path = path;
    this.listeners = new Map();
    this.lastEventId = null;
    this.state = 'closed';
    this.controller = null;
    this.baseDelay = INITIAL_DELAY_MS;
    this.failures = 0;
    this.timer = null;
  }

  on(type, listener) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(listener);
    return () => this.listeners.get(type)?.delete(listener);
  }

  emit(type, value) {
    for (const listener of this.listeners.get(type) || []) {
      try {
        listener(value);
      } catch (error) {
        console.warn('a live update listener failed', error);
      }
    }
  }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.emit('state', state);
  }

  start() {
    if (this.controller) return;
    this.controller = new AbortController();
    this.run(this.controller.signal);
  }

  stop() {
    clearTimeout(this.timer);
    this.timer = null;
    if (this.controller) this.controller.abort();
    this.controller = null;
    this.lastEventId = null;
    this.failures = 0;
    this.setState('closed');
  }

  async run(signal) {
    while (!signal.aborted) {
      this.setState(this.failures === 0 ? 'connecting' : 'retrying');
      let waitMs = null;
      try {
        waitMs = await this.connect(signal);
      } catch (error) {
        if (signal.aborted) return;
        if (error instanceof StreamRefused) {
          if (error.final) {
            this.controller = null;
            this.setState('closed');
            return;
          }
          waitMs = error.retryAfterMs;
        }
      }
      if (signal.aborted) return;
      this.failures += 1;
      const backoff = Math.min(MAX_DELAY_MS, this.baseDelay * 2 ** Math.min(this.failures - 1, 5));
      const delay = Math.max(waitMs ?? 0, backoff * (0.5 + Math.random() / 2));
      this.setState('retrying');
      await new Promise((resolve) => {
        this.timer = setTimeout(resolve, delay);
        signal.addEventListener('abort', resolve, { once: true });
      });
    }
  }

  /** Reads one connection until it ends; resolves when it ended normally. */
  async connect(signal) {
    const headers = { Accept: 'text/event-stream', 'Cache-Control': 'no-store' };
    if (this.lastEventId) headers['Last-Event-ID'] = this.lastEventId;
    let response;
    try {
      const path = typeof this.path === 'function' ? this.path() : this.path;
      response = await authorizedFetch(path, { headers, signal, cache: 'no-store' });
    } catch (error) {
      if (error instanceof ApiError) return null; // unreachable: back off
      throw error;
    }
    if (response.status === 401 || response.status === 403) {
      // The refresh was refused too (or the role may not stream): the
      // session's owner decides what comes next.
      throw new StreamRefused(true, 0);
    }
    if (!response.ok || !response.body) {
      const retryAfter = Number(response.headers.get('retry-after')) || 0;
      throw new StreamRefused(false, retryAfter * 1000);
    }
    const parser = new EventStreamParser(
      (event) => this.deliver(event),
      (ms) => {
        this.baseDelay = ms;
      },
    );
    if (this.lastEventId) parser.lastEventId = this.lastEventId;
    this.failures = 0;
    this.setState('open');
    this.emit('open', { resumed: Boolean(this.lastEventId) });
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        parser.feed(value);
      }
    } finally {
      reader.releaseLock();
    }
    return null;
  }

  deliver(event) {
    if (event.id) this.lastEventId = event.id;
    let payload;
    try {
      payload = JSON.parse(event.data);
    } catch {
      return; // not one of the API's events
    }
    if (!payload || typeof payload !== 'object') return;
    this.emit(event.type, { ...payload, id: event.id });
    this.emit('*', { type: event.type, ...payload, id: event.id });
  }
}

class StreamRefused extends Error {
  constructor(final, retryAfterMs) {
    super('the stream was refused');
    this.final = final;
    this.retryAfterMs = retryAfterMs;
  }
}
