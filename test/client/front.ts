// A small HTTP server in front of a listening app, for the client's retry tests: it passes every
// request on, except those it is told to answer itself, as the service would when MongoDB is out
// of reach (503 service-unavailable: nothing done) or when the answer of a write that committed
// was lost (the request goes on to the app, then 503 outcome-unknown comes back instead of its
// answer). It records every request it saw and what it answered.

import {
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Seen {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
  /** What the client got back. */
  status: number;
}

export interface StandIn {
  /** 'refuse': answered here, the app never sees it; 'lose': the app runs it, its answer is dropped. */
  kind: 'refuse' | 'lose';
  status: number;
  code: string;
  /** Retry-After, in seconds (none when undefined). */
  retryAfter?: number;
}

export class Front {
  readonly seen: Seen[] = [];
  private readonly planned: StandIn[] = [];
  private readonly server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => this.answer(req, res, Buffer.concat(chunks)));
  });
  /** Where the front listens (set by before()). */
  url = '';

  private constructor(private readonly upstream: URL) {}

  static async before(upstream: string): Promise<Front> {
    const front = new Front(new URL(upstream));
    await new Promise<void>((resolve) => front.server.listen(0, '127.0.0.1', resolve));
    front.url = `http://127.0.0.1:${(front.server.address() as AddressInfo).port}`;
    return front;
  }

  private answer(req: IncomingMessage, res: ServerResponse, body: Buffer): void {
    const stand = this.planned.shift();
    const seen: Seen = {
      method: req.method!,
      url: req.url!,
      headers: req.headers,
      body: body.toString('utf8'),
      status: 0,
    };
    this.seen.push(seen);
    const answerProblem = (stood: StandIn) => {
      seen.status = stood.status;
      res.writeHead(stood.status, {
        'content-type': 'application/problem+json',
        ...(stood.retryAfter !== undefined && { 'retry-after': String(stood.retryAfter) }),
      });
      res.end(
        JSON.stringify({
          type: `urn:storekeeper:problem:${stood.code}`,
          title: 'Stand-in',
          status: stood.status,
          detail: `answered by the test's front server (${stood.kind})`,
          requestId: 'front',
        }),
      );
    };
    if (stand?.kind === 'refuse') {
      answerProblem(stand);
      return;
    }
    const passed = httpRequest(
      {
        host: this.upstream.hostname,
        port: this.upstream.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
      },
      (answer) => {
        if (stand?.kind === 'lose') {
          answer.resume();
          answer.on('end', () => answerProblem(stand));
          return;
        }
        seen.status = answer.statusCode!;
        res.writeHead(answer.statusCode!, answer.headers);
        answer.pipe(res);
      },
    );
    passed.on('error', (error) => res.destroy(error));
    passed.end(body);
  }

  /** The next requests (one each, in order) get these answers instead of the app's. */
  plan(...stands: StandIn[]): void {
    this.planned.push(...stands);
  }

  /** Forgets what it saw and what was planned, between tests. */
  reset(): void {
    this.seen.length = 0;
    this.planned.length = 0;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
