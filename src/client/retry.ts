// The retry contract of the README, on the client's side: a fetch that sends a request again
// only when the answer proves the request did nothing (429, a 503 that says nothing was written,
// 409 idempotency-in-progress), or when repeating it cannot do its work twice (a read; a POST
// under the same Idempotency-Key, which every POST gets; a write under If-Match, which a second
// application would fail with 412). It waits what Retry-After asks, within a bound on attempts
// and on the total wait of one call.

import { randomUUID } from 'node:crypto';
import { problemCodeOf } from './problems.ts';

export interface RetryOptions {
  /** Attempts of one call in all, the first included: 1 never retries. Default 3. */
  attempts?: number;
  /**
   * The longest one call waits between its attempts, in all. An answer asking (Retry-After)
   * for more than what is left is returned as it is, not retried early. Default 10,000 ms.
   */
  maxDelayMs?: number;
  /** How to wait between attempts (default: a timer); a test passes one that records the waits. */
  sleep?: (ms: number) => Promise<void>;
}

export type Fetch = (request: Request) => Promise<Response>;

const DEFAULT_ATTEMPTS = 3;
const DEFAULT_MAX_DELAY_MS = 10_000;
/** The wait after no answer at all (a reset connection), which gives no Retry-After: doubled each time. */
const BACKOFF_BASE_MS = 200;
const BACKOFF_CAP_MS = 2_000;

const READS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** What an answer (or its absence) says about the request's effect, for the decision to repeat it. */
type Outcome = 'nothing-done' | 'unknown';

/**
 * Whether a request may be sent again after `outcome`. Nothing done: always. Unknown (503
 * outcome-unknown, no answer): only when a second sending cannot write twice.
 */
function mayRepeat(request: Request, outcome: Outcome): boolean {
  if (outcome === 'nothing-done' || READS.has(request.method)) return true;
  if (request.method === 'POST') return request.headers.has('idempotency-key');
  return request.headers.has('if-match');
}

/** The outcome of an answer that may be retried, or undefined for one that is final. */
async function outcomeOf(request: Request, response: Response): Promise<Outcome | undefined> {
  if (response.status === 429) return 'nothing-done';
  if (response.status !== 409 && response.status !== 503) return undefined;
  const code = problemCodeOf(
    await response
      .clone()
      .json()
      .catch(() => undefined),
  );
  if (response.status === 409)
    // The key's first request still runs: the same key later gets its one answer.
    return code === 'idempotency-in-progress' && request.headers.has('idempotency-key') ? 'nothing-done' : undefined;
  // A 503 of this service says whether anything was written; a 503 from something in front of
  // it (no problem document of ours) does not, so it is taken as unknown.
  return code === undefined || code === 'outcome-unknown' ? 'unknown' : 'nothing-done';
}

/** Retry-After in milliseconds: delta-seconds or an HTTP date; undefined when absent or unreadable. */
function retryAfterMs(response: Response): number | undefined {
  const value = response.headers.get('retry-after');
  if (value === null) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

const backoffMs = (attempt: number) => Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** (attempt - 1));

const timer = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * `send` with the retry contract. Every POST gets an Idempotency-Key (unless it has one) before
 * its first attempt, so all its attempts carry the same key and the service does its work once.
 */
export function retrying(send: Fetch, options: RetryOptions = {}): Fetch {
  const attempts = Math.max(1, options.attempts ?? DEFAULT_ATTEMPTS);
  const maxDelayMs = options.maxDelayMs ?? DEFAULT_MAX_DELAY_MS;
  const sleep = options.sleep ?? timer;

  return async (original) => {
    const headers = new Headers(original.headers);
    if (original.method === 'POST' && !headers.has('idempotency-key')) headers.set('idempotency-key', randomUUID());
    // Read once: every attempt sends the same bytes.
    const body = original.body === null ? undefined : await original.arrayBuffer();
    const attempt = () =>
      new Request(original.url, {
        method: original.method,
        headers,
        body,
        signal: original.signal,
        redirect: original.redirect,
      });

    let waited = 0;
    for (let sent = 1; ; sent++) {
      const request = attempt();
      let response: Response;
      try {
        response = await send(request);
      } catch (error) {
        // No answer: as outcome-unknown, unless the caller gave up (aborted) itself.
        const delay = backoffMs(sent);
        if (sent >= attempts || original.signal.aborted || !mayRepeat(request, 'unknown')) throw error;
        if (waited + delay > maxDelayMs) throw error;
        waited += delay;
        await sleep(delay);
        continue;
      }
      const outcome = await outcomeOf(request, response);
      if (outcome === undefined || sent >= attempts || !mayRepeat(request, outcome)) return response;
      const delay = retryAfterMs(response) ?? backoffMs(sent);
      if (waited + delay > maxDelayMs) return response;
      await response.body?.cancel();
      waited += delay;
      await sleep(delay);
    }
  };
}
