// A server-sent-events client for the feed tests: opens a stream with fetch against a listening
// app and parses its body into events as EventSource would (fields id, event, data, retry, and
// comments), keeping every one in arrival order. Reading can be held back, to play a client that
// stops reading.

import type { App } from '../../src/app.ts';
import { waitFor } from './app.ts';

/** Waits until the app's change feed serves streams (its feed routes answer 503 until it has started). */
export async function waitForFeed(app: App, timeoutMs = 60_000): Promise<void> {
  await waitFor(
    async () => (await app.inject({ method: 'HEAD', url: '/v1/products/changes' })).statusCode === 200,
    timeoutMs,
    'the change feed',
  );
}

export interface SseEvent {
  id?: string;
  event?: string;
  /** The data lines, joined with newlines; absent when the event had none. */
  data?: string;
  retry?: number;
  comments: string[];
}

/** A change event's data, parsed. */
export interface ChangeData {
  collection: string;
  id: string;
  version?: number;
  operationTime: string;
  document?: Record<string, unknown>;
}

export interface OpenOptions {
  headers?: Record<string, string>;
  /** Start without reading the body: the client reads nothing until resume(). */
  paused?: boolean;
}

export class SseStream {
  readonly events: SseEvent[] = [];
  /** Change events so far, counted as they come (waiting for thousands need not parse them all again). */
  changeCount = 0;
  /** The body ended (the server closed the stream) or the read failed. */
  ended = false;
  error: unknown;
  private readonly waiters = new Set<() => void>();
  private reading: Promise<void> | undefined;

  private constructor(
    readonly response: Response,
    private readonly controller: AbortController,
  ) {}

  /** GET `url`; resolves once the answer's head arrived (any status: see `status` and `problem()`). */
  static async open(url: string, options: OpenOptions = {}): Promise<SseStream> {
    const controller = new AbortController();
    const response = await fetch(url, {
      headers: { accept: 'text/event-stream', ...options.headers },
      signal: controller.signal,
    });
    const stream = new SseStream(response, controller);
    if (!options.paused && response.ok) stream.resume();
    return stream;
  }

  get status(): number {
    return this.response.status;
  }

  /** The problem document of an answer other than 200. */
  async problem(): Promise<Record<string, unknown>> {
    return (await this.response.json()) as Record<string, unknown>;
  }

  /** Starts (or goes on) reading the body. */
  resume(): void {
    this.reading ??= this.read();
  }

  /** Change events (insert, update, replace, delete) so far, parsed. */
  changes(): (ChangeData & { type: string; position: string })[] {
    return this.events
      .filter((event) => event.event !== undefined && event.event !== 'close')
      .map((event) => ({
        ...(JSON.parse(event.data ?? '{}') as ChangeData),
        type: event.event as string,
        position: event.id as string,
      }));
  }

  /** The close event's data, once the service closed the stream. */
  closeData(): { reason: string; lastEventId: string } | undefined {
    const close = this.events.find((event) => event.event === 'close');
    return close === undefined
      ? undefined
      : (JSON.parse(close.data ?? '{}') as { reason: string; lastEventId: string });
  }

  /** The id of the last event that carried one: where EventSource would resume. */
  lastEventId(): string | undefined {
    return this.events.findLast((event) => event.id !== undefined)?.id;
  }

  /** Waits until `check` holds (checked on every event and at the end), or fails after `timeoutMs`. */
  async until(check: (stream: SseStream) => boolean, what: string, timeoutMs = 30_000): Promise<void> {
    if (check(this)) return;
    await new Promise<void>((resolve, reject) => {
      const waiter = () => {
        if (check(this)) {
          done();
          resolve();
        } else if (this.ended) {
          done();
          reject(new Error(`the stream ended before ${what} (${this.events.length} events)`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out waiting for ${what} (${this.events.length} events)`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
      };
      this.waiters.add(waiter);
    });
  }

  /** Waits for `count` change events in all. */
  untilChanges(count: number, timeoutMs?: number): Promise<void> {
    return this.until((stream) => stream.changeCount >= count, `${count} changes`, timeoutMs);
  }

  /** Waits until the server ends the stream. */
  untilEnded(timeoutMs?: number): Promise<void> {
    return this.until((stream) => stream.ended, 'the end of the stream', timeoutMs);
  }

  /** Leaves: the connection is closed from this side. */
  close(): void {
    this.controller.abort();
  }

  private notify(): void {
    for (const waiter of [...this.waiters]) waiter();
  }

  private async read(): Promise<void> {
    const decoder = new TextDecoder();
    let buffer = '';
    let event: SseEvent = { comments: [] };
    let fields = false;
    try {
      for await (const chunk of this.response.body as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        let newline: number;
        while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
          const line = buffer.slice(0, newline);
          buffer = buffer.slice(newline + (buffer.startsWith('\r\n', newline) ? 2 : 1));
          if (line === '') {
            if (fields) this.events.push(event);
            if (fields && event.event !== undefined && event.event !== 'close') this.changeCount++;
            event = { comments: [] };
            fields = false;
            continue;
          }
          fields = true;
          if (line.startsWith(':')) {
            event.comments.push(line.slice(1).trim());
            continue;
          }
          const colon = line.indexOf(':');
          const name = colon < 0 ? line : line.slice(0, colon);
          const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
          if (name === 'id') event.id = value;
          else if (name === 'event') event.event = value;
          else if (name === 'data') event.data = event.data === undefined ? value : `${event.data}\n${value}`;
          else if (name === 'retry') event.retry = Number(value);
        }
        this.notify();
      }
    } catch (error) {
      this.error = error;
    } finally {
      this.ended = true;
      this.notify();
    }
  }
}

/**
 * Reads `count` changes as EventSource would: whenever the service closes the stream, it opens it
 * again with Last-Event-ID, from the last event received. Answers the changes and the reconnects.
 */
export async function collectChanges(
  open: (lastEventId: string | undefined) => Promise<SseStream>,
  count: number,
  from?: string,
  timeoutMs = 60_000,
): Promise<{ changes: ReturnType<SseStream['changes']>; reconnects: number }> {
  const changes: ReturnType<SseStream['changes']> = [];
  let lastEventId = from;
  for (let reconnects = 0; ; reconnects++) {
    const stream = await open(lastEventId);
    if (stream.status !== 200) throw new Error(`the feed answered ${stream.status}`);
    const needed = count - changes.length;
    await stream.until(
      (s) => s.changes().length >= needed || s.closeData() !== undefined,
      `${needed} changes or a close`,
      timeoutMs,
    );
    changes.push(...stream.changes().slice(0, needed));
    if (changes.length >= count) {
      stream.close();
      return { changes, reconnects };
    }
    lastEventId = stream.closeData()?.lastEventId;
  }
}
