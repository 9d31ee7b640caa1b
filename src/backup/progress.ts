// What the backup, verification and restore say while they work: events with a name, a sentence
// for people and the figures for machines. On a terminal the sentences are printed (a running
// count rewrites its own line); anywhere else each event is one JSON line, for log collectors
// and scripts.

export interface ProgressEvent {
  /** What happened, e.g. "collection-done"; names ending in "-progress" are running counts. */
  event: string;
  /** The same for people: one line. */
  message: string;
  [field: string]: unknown;
}

export type Progress = (event: ProgressEvent) => void;

/** Discards events: for callers that only want the result. */
export const silent: Progress = () => {};

/** A reporter writing to `stream`: sentences on a terminal, JSON lines otherwise. */
export function progressReporter(stream: NodeJS.WriteStream = process.stderr, tty: boolean = stream.isTTY): Progress {
  if (!tty) {
    return (event) => {
      stream.write(`${JSON.stringify({ time: new Date().toISOString(), ...event })}\n`);
    };
  }
  let overwriting = false;
  return (event) => {
    const running = event.event.endsWith('-progress');
    // \r and "erase line": the next running count, or the next sentence, replaces this one.
    const prefix = overwriting ? '\r\x1b[2K' : '';
    stream.write(running ? `${prefix}${event.message}` : `${prefix}${event.message}\n`);
    overwriting = running;
  };
}

/** At most one running count per interval: enough to see movement, never a flood of lines. */
export function throttled(intervalMs: number): () => boolean {
  // Counted from the start: work done within the first interval needs no running count.
  let last = Date.now();
  return () => {
    const now = Date.now();
    if (now - last < intervalMs) return false;
    last = now;
    return true;
  };
}

export const megabytes = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
export const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
export const plural = (count: number, one: string, many: string): string => `${count} ${count === 1 ? one : many}`;
