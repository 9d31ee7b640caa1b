// A client that retries exactly as the service's contract tells clients to, and the ledger of
// everything it was told: every attempt (status, problem type, how long the answer took) and,
// per logical write, where its retries ended. The checks judge the service by this record.

export const PROBLEM = {
  inProgress: 'urn:storekeeper:problem:idempotency-in-progress',
  unavailable: 'urn:storekeeper:problem:service-unavailable',
  queryTimeout: 'urn:storekeeper:problem:query-timeout',
  outcomeUnknown: 'urn:storekeeper:problem:outcome-unknown',
} as const;

/** How long one logical write is retried before it is recorded as unresolved. */
export const KEY_BUDGET_MS = 60_000;
/** A request with no answer after this long counts as a network failure (outcome unknown). */
export const CLIENT_TIMEOUT_MS = 45_000;
/** The suite does not wait the service's full Retry-After on a 503: more retries, more evidence. */
const MAX_503_WAIT_MS = 1000;
const MAX_409_WAIT_MS = 5000;
const NETWORK_RETRY_MS = 250;

export type Kind = 'product' | 'order';
export type Phase = 'load' | 'recovery';

export interface Attempt {
  requestId: string;
  phase: Phase;
  startedAt: number;
  elapsedMs: number;
  /** Absent when no answer came (connection refused or reset, or no answer in time). */
  status?: number;
  problemType?: string;
  replayed: boolean;
  retryAfterSeconds?: number;
  error?: string;
}

/** Where the retries of a logical write stopped. */
export type Ending = 'answered' | 'server-error' | 'gave-up' | 'load-stopped';

export interface LogicalWrite {
  id: string;
  kind: Kind;
  path: string;
  key: string;
  body: Record<string, unknown>;
  /** Products: the SKU generated for this write, which finds it in the database. */
  sku?: string;
  attempts: Attempt[];
  /** The id in the 2xx answer. */
  createdId?: string;
  ending?: Ending;
}

/** What an answer tells a client following the contract. */
export type Verdict =
  | { final: true; outcome: 'acknowledged' | 'refused' | 'server-error' }
  | { final: false; outcome: 'said-not-written' | 'outcome-unknown' | 'in-progress' | 'no-answer'; waitMs: number };

export function judge(attempt: Attempt): Verdict {
  const { status, problemType } = attempt;
  const retryAfterMs = (attempt.retryAfterSeconds ?? 1) * 1000;
  if (status === undefined) return { final: false, outcome: 'no-answer', waitMs: NETWORK_RETRY_MS };
  if (status >= 200 && status < 300) return { final: true, outcome: 'acknowledged' };
  if ((status === 409 && problemType === PROBLEM.inProgress) || status === 429) {
    return { final: false, outcome: 'in-progress', waitMs: Math.min(retryAfterMs, MAX_409_WAIT_MS) };
  }
  if (status < 500) return { final: true, outcome: 'refused' };
  if (status === 503) {
    const saidNotWritten = problemType === PROBLEM.unavailable || problemType === PROBLEM.queryTimeout;
    return {
      final: false,
      outcome: saidNotWritten ? 'said-not-written' : 'outcome-unknown',
      waitMs: Math.min(retryAfterMs, MAX_503_WAIT_MS),
    };
  }
  return { final: true, outcome: 'server-error' };
}

export const saidNotWritten = (attempt: Attempt) => judge(attempt).outcome === 'said-not-written';

export interface SendOptions {
  phase: Phase;
  budgetMs: number;
  /** Checked between attempts: true ends the retries (the load is over). */
  stop?: () => boolean;
}

export class FaultClient {
  readonly writes: LogicalWrite[] = [];

  constructor(
    readonly baseUrl: string,
    private readonly apiKey: string,
    private readonly runTag: string,
  ) {}

  newWrite(kind: Kind, id: string, path: string, body: Record<string, unknown>, sku?: string): LogicalWrite {
    const write: LogicalWrite = {
      id,
      kind,
      path,
      key: `${this.runTag}-${id}`,
      body,
      attempts: [],
      ...(sku !== undefined && { sku }),
    };
    this.writes.push(write);
    return write;
  }

  /** Sends the write with its key until a definitive answer, the budget, or the stop. */
  async send(write: LogicalWrite, { phase, budgetMs, stop = () => false }: SendOptions): Promise<void> {
    const started = Date.now();
    for (;;) {
      const attempt = await this.attempt(write, phase);
      const verdict = judge(attempt);
      if (verdict.final) {
        write.ending = verdict.outcome === 'server-error' ? 'server-error' : 'answered';
        return;
      }
      write.ending = undefined;
      if (Date.now() - started >= budgetMs) return void (write.ending = 'gave-up');
      if (stop()) return void (write.ending = 'load-stopped');
      await sleep(verdict.waitMs);
    }
  }

  private async attempt(write: LogicalWrite, phase: Phase): Promise<Attempt> {
    const requestId = `${write.id}.${write.attempts.length + 1}`;
    const startedAt = Date.now();
    const clock = performance.now();
    const attempt: Attempt = { requestId, phase, startedAt, elapsedMs: 0, replayed: false };
    try {
      const res = await fetch(`${this.baseUrl}${write.path}`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${this.apiKey}`,
          'content-type': 'application/json',
          'idempotency-key': write.key,
          'x-request-id': requestId,
        },
        body: JSON.stringify(write.body),
        signal: AbortSignal.timeout(CLIENT_TIMEOUT_MS),
      });
      const text = await res.text();
      attempt.elapsedMs = performance.now() - clock;
      attempt.status = res.status;
      attempt.replayed = res.headers.get('idempotency-replayed') === 'true';
      const retryAfter = Number(res.headers.get('retry-after'));
      if (res.headers.has('retry-after') && Number.isFinite(retryAfter)) attempt.retryAfterSeconds = retryAfter;
      const parsed = parseJson(text);
      if (res.status >= 200 && res.status < 300) {
        if (typeof parsed?.id === 'string') write.createdId = parsed.id;
      } else if (typeof parsed?.type === 'string') {
        attempt.problemType = parsed.type;
      }
    } catch (error) {
      attempt.elapsedMs = performance.now() - clock;
      attempt.error = errorCode(error);
    }
    write.attempts.push(attempt);
    return attempt;
  }
}

/** One GET /health/ready: its status (absent without an answer) and how long it took. */
export interface Probe {
  startedAt: number;
  elapsedMs: number;
  status?: number;
}

export async function probeReadiness(baseUrl: string): Promise<Probe> {
  const startedAt = Date.now();
  const clock = performance.now();
  try {
    const res = await fetch(`${baseUrl}/health/ready`, { signal: AbortSignal.timeout(CLIENT_TIMEOUT_MS) });
    await res.arrayBuffer();
    return { startedAt, elapsedMs: performance.now() - clock, status: res.status };
  } catch {
    return { startedAt, elapsedMs: performance.now() - clock };
  }
}

function parseJson(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function errorCode(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = (error as { cause?: unknown }).cause;
  const code = typeof cause === 'object' && cause !== null && 'code' in cause ? String(cause.code) : undefined;
  return code ?? error.name;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
