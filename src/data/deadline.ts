// A request's deadline: the moment by which its answer must leave, whatever MongoDB does. Every
// wait a request makes (a turn, a transaction attempt, a commit, an idempotency claim) is bounded by
// the time left, so a frozen or failing database turns into a prompt, truthful answer instead of a
// request that hangs on the driver's own timeouts.

/** The deadline passed while a promise was still pending; the promise itself goes on. */
export class DeadlineExceeded extends Error {
  constructor() {
    super('the request ran out of time');
    this.name = 'DeadlineExceeded';
  }
}

export class Deadline {
  /**
   * `requestId`: the request whose deadline it is. MongoDB commands run by it carry the id (see
   * served-requests.ts), so that the slow-operation log, and mongod's own, name the request.
   */
  private constructor(
    readonly at: number,
    readonly requestId: string | undefined,
  ) {}

  static after(ms: number, requestId?: string): Deadline {
    return new Deadline(performance.now() + ms, requestId);
  }

  /** Milliseconds left, never below 0. */
  remaining(): number {
    return Math.max(0, this.at - performance.now());
  }

  expired(): boolean {
    return this.remaining() === 0;
  }

  /** This deadline, or an earlier one `ms` from now, whichever comes first. */
  within(ms: number): Deadline {
    return new Deadline(Math.min(this.at, performance.now() + ms), this.requestId);
  }

  /**
   * Settles as `promise` does, or rejects with DeadlineExceeded when the deadline comes first. The
   * promise is not cancelled: a caller that stops waiting must make sure its outcome does no harm
   * (the transaction helper never commits an attempt it stopped waiting for).
   */
  race<T>(promise: Promise<T>): Promise<T> {
    const left = this.remaining();
    if (left === 0) {
      promise.catch(() => undefined);
      return Promise.reject(new DeadlineExceeded());
    }
    let timer: NodeJS.Timeout | undefined;
    const expiry = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new DeadlineExceeded()), left);
    });
    return Promise.race([promise, expiry]).finally(() => clearTimeout(timer));
  }

  /** Waits `ms`, or until the deadline if that is sooner. */
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, Math.min(ms, this.remaining())));
  }
}

/** `promise`, raced with `deadline` when there is one (a request's), as it is otherwise (a command-line tool's). */
export function bounded<T>(promise: Promise<T>, deadline: Deadline | undefined): Promise<T> {
  return deadline === undefined ? promise : deadline.race(promise);
}
