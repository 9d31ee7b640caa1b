// HTTP/1.1 on a bare TCP socket, for requests no HTTP client would send (malformed framing, bad
// headers, slow drips): writes bytes as they are and reads the answer until the server closes.

import { connect } from 'node:net';

export interface RawAnswer {
  /** Everything the server sent. */
  raw: string;
  status: number;
  headers: Record<string, string>;
  body: string;
  /** Whether the server closed the connection (rather than the wait running out). */
  closed: boolean;
  /** From the first byte written to the close (or the end of the wait). */
  elapsedMs: number;
}

export interface RawOptions {
  /** Pieces written with a pause between them (a slow client); the last one is not followed by a pause. */
  pieces?: string[];
  pauseMs?: number;
  /** Longest wait for the server to close the connection. */
  waitMs?: number;
}

/** Sends `request` (or `pieces`) on a fresh connection and reads until the server closes it or the wait runs out. */
export function rawRequest(port: number, request: string | Buffer, options: RawOptions = {}): Promise<RawAnswer> {
  const { pieces, pauseMs = 0, waitMs = 10_000 } = options;
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const started = Date.now();
    let closed = false;
    const finish = () => {
      clearTimeout(timer);
      const raw = Buffer.concat(chunks).toString('latin1');
      const split = raw.indexOf('\r\n\r\n');
      const head = split === -1 ? raw : raw.slice(0, split);
      const [statusLine = '', ...lines] = head.split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const colon = line.indexOf(':');
        if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      const rest = split === -1 ? '' : raw.slice(split + 4);
      const length = headers['content-length'] === undefined ? rest.length : Number(headers['content-length']);
      resolve({
        raw,
        status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0),
        headers,
        body: Buffer.from(rest, 'latin1').subarray(0, length).toString('utf8'),
        closed,
        elapsedMs: Date.now() - started,
      });
    };
    const timer = setTimeout(() => {
      socket.destroy();
      finish();
    }, waitMs);
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('error', (error: NodeJS.ErrnoException) => {
      // A reset after the answer arrived is the server closing hard: the answer still counts.
      if (error.code === 'ECONNRESET' || error.code === 'EPIPE') return;
      clearTimeout(timer);
      reject(error);
    });
    socket.on('close', () => {
      closed = true;
      finish();
    });
    const send = async () => {
      for (const [index, piece] of (pieces ?? [request]).entries()) {
        if (socket.destroyed) return;
        socket.write(piece);
        if (pieces !== undefined && index < pieces.length - 1) await new Promise((wait) => setTimeout(wait, pauseMs));
      }
    };
    socket.on('connect', () => void send());
  });
}
