// How the service process stops. The first SIGINT or SIGTERM stops it gracefully and exits 0;
// a second one exits at once with 1. Started by `npm start`, one Ctrl-C reaches the service
// twice and npm's death would leave it running unseen; both cases are handled here.

import closeWithGrace from 'close-with-grace';
import type { Logger } from 'pino';

export interface StopHandlingOptions {
  /** How long a graceful stop may take before the process exits 1 anyway. */
  graceMs: number;
  logger: Logger;
  /**
   * The parent forwards the signals it receives, as npm does for its scripts (`npm start`,
   * `npm run dev`). A terminal signals its whole foreground process group, so one Ctrl-C then
   * arrives twice; and if that parent is killed, nothing is left to pass a signal on.
   */
  parentForwardsSignals: boolean;
}

export interface StopHandling {
  /**
   * Hands over the graceful stop once the service is up. A stop asked for during start-up was
   * only noted (nothing could be closed yet); it runs now.
   */
  ready(close: () => Promise<void>): void;
  /** Removes every listener and timer, for a start that failed. */
  uninstall(): void;
}

// 'other': an uncaught error, or close-with-grace finding the event loop empty.
type StopCause = NodeJS.Signals | 'parent exited' | 'other';

const STOP_SIGNALS = ['SIGINT', 'SIGTERM'] as const;
// npm forwards a signal from its event loop, which is idle while its script runs: the copy came
// 2-6 ms after the terminal's here. Both can also arrive as one, when the kernel merges a signal
// into the same one still pending (the service not yet scheduled on a busy machine), so it is
// not one copy per signal that is absorbed but every repeat this soon. A person's second Ctrl-C
// comes later; one within the window only needs pressing again.
export const FORWARDED_COPY_WINDOW_MS = 1_000;
const PARENT_CHECK_INTERVAL_MS = 1_000;

/**
 * Installs the signal handling; meant to be called before anything is started, so that a signal
 * during a slow start (mongod under Wine takes seconds) never finds Node's default handling, which
 * kills the process on the spot.
 */
export function handleStopRequests({ graceMs, logger, parentForwardsSignals }: StopHandlingOptions): StopHandling {
  let first: { cause: StopCause; at: number } | undefined;
  let graceful: ReturnType<typeof closeWithGrace> | undefined;

  const parentPid = process.ppid;
  // With its parent gone the service would serve on, orphaned, with nobody to stop it and its
  // port taken from the next start. Only when a forwarding parent started it: a service started
  // from a shell with `&` or nohup is meant to outlive that shell.
  const parentCheck = parentForwardsSignals
    ? setInterval(() => {
        if (process.ppid !== parentPid) requestStop('parent exited');
      }, PARENT_CHECK_INTERVAL_MS).unref()
    : undefined;

  const onSignal = (signal: NodeJS.Signals) => {
    if (first === undefined) {
      requestStop(signal);
      return;
    }
    const sinceFirst = performance.now() - first.at;
    if (parentForwardsSignals && signal === first.cause && sinceFirst < FORWARDED_COPY_WINDOW_MS) {
      logger.debug(
        { signal, afterMs: Math.round(sinceFirst) },
        'the same signal again this soon: taken for the copy the parent passed on, one stop request',
      );
      return;
    }
    logger.warn({ signal }, `second ${signal}: exiting now, without waiting for in-flight requests`);
    // The embedded mongod is left to mongodb-memory-server's killer process, which stops it
    // (SIGTERM, a clean shutdown) once it sees this process gone.
    process.exit(1);
  };
  for (const signal of STOP_SIGNALS) process.on(signal, onSignal);

  function requestStop(cause: StopCause): void {
    if (first !== undefined) return;
    first = { cause, at: performance.now() };
    clearInterval(parentCheck);
    if (cause === 'parent exited') logger.warn({ parentPid }, 'the process that started the service is gone');
    if (graceful === undefined) {
      logger.info(causeFields(cause), 'stop requested during start-up: stopping once started');
      return;
    }
    logger.info(causeFields(cause), 'shutting down: finishing in-flight requests');
    graceful.close();
  }

  function causeFields(cause: StopCause): Record<string, unknown> {
    return cause === 'parent exited' ? { parentPid } : { signal: cause };
  }

  return {
    ready(close) {
      // close-with-grace still covers the other events it knows (SIGHUP, uncaught errors...) and
      // the time limit. SIGINT and SIGTERM are handled above instead: it takes npm's forwarded
      // copy for a second signal and exits 1, and it listens with process.once, so from the
      // moment its listener fires until it attaches the next one, no listener is there and
      // Node's default handling kills the process on a signal.
      graceful = closeWithGrace({ delay: graceMs, logger, skip: [...STOP_SIGNALS] }, async ({ signal, err }) => {
        first ??= { cause: signal ?? 'other', at: performance.now() };
        clearInterval(parentCheck);
        if (err) logger.error({ err }, 'fatal error, shutting down');
        else if (signal) logger.info({ signal }, 'shutting down: finishing in-flight requests');
        await close();
        logger.info('shutdown complete');
      });
      if (first !== undefined) {
        logger.info(causeFields(first.cause), 'shutting down: finishing in-flight requests');
        graceful.close();
      }
    },
    uninstall() {
      for (const signal of STOP_SIGNALS) process.removeListener(signal, onSignal);
      clearInterval(parentCheck);
      graceful?.uninstall();
    },
  };
}
