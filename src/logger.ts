// The process's one pino logger: JSON lines on stdout, pretty only on a terminal, secrets
// redacted before anything is written.

import { createRequire } from 'node:module';
import { redactConnectionString } from 'mongodb-connection-string-url';
import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';
import type { Config } from './config.ts';

/** Paths pino censors wherever they appear in a log object. */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'headers.authorization',
  'headers.cookie',
  'headers["x-api-key"]',
  '*.password',
  '*.apiKey',
  '*.secret',
  '*.token',
  'password',
  'apiKey',
  'secret',
  'token',
];

const CONNECTION_STRING = /mongodb(?:\+srv)?:\/\/[^\s"'<>]+/g;

/** Replaces the credentials of every MongoDB connection string inside a text. */
export function redactSecrets(text: string): string {
  // Called from the error path with whatever a thrown value carries: it must never throw itself.
  if (typeof text !== 'string' || !text.includes('mongodb')) return text;
  return text.replace(CONNECTION_STRING, (uri) => {
    try {
      return redactConnectionString(uri);
    } catch {
      return 'mongodb://[redacted]';
    }
  });
}

const MAX_THROWN_TEXT = 2000;

interface PrototypeOf {
  constructor?: { name?: string };
}

/**
 * The log form of anything thrown. pino's serializer returns a value that is not error-like (a
 * plain object, a string, null) as it is, and reads getters that may throw; neither may stop the
 * line from being written, or the error handler that writes it.
 */
export function serializeThrown(thrown: unknown): Record<string, unknown> {
  try {
    if (
      thrown instanceof Error ||
      (thrown !== null && typeof thrown === 'object' && typeof (thrown as { message?: unknown }).message === 'string')
    ) {
      const serialized = pino.stdSerializers.err(thrown as Error) as unknown as Record<string, unknown>;
      if (typeof serialized.message === 'string') serialized.message = redactSecrets(serialized.message);
      if (typeof serialized.stack === 'string') serialized.stack = redactSecrets(serialized.stack);
      return serialized;
    }
    let text: string | undefined;
    try {
      text = typeof thrown === 'string' ? thrown : JSON.stringify(thrown);
    } catch {
      text = undefined;
    }
    // Object.create(null) has no prototype, and a prototype need not have a constructor.
    const prototype = typeof thrown === 'object' ? (Object.getPrototypeOf(thrown) as PrototypeOf | null) : null;
    const type =
      thrown === null
        ? 'null'
        : typeof thrown === 'object'
          ? (prototype?.constructor?.name ?? 'Object')
          : typeof thrown;
    return {
      type,
      message: redactSecrets((text ?? Object.prototype.toString.call(thrown)).slice(0, MAX_THROWN_TEXT)),
    };
  } catch {
    return { type: 'unknown', message: 'a thrown value that could not be read' };
  }
}

function prettyAvailable(): boolean {
  try {
    createRequire(import.meta.url).resolve('pino-pretty');
    return true;
  } catch {
    return false;
  }
}

export function createLogger(options: Config['log'], destination?: DestinationStream): Logger {
  const base: LoggerOptions = {
    level: options.level,
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    // Error messages from the driver can echo a connection string: scrub strings and errors.
    hooks: {
      logMethod(args, method) {
        for (let i = 0; i < args.length; i++) {
          const arg = args[i];
          if (typeof arg === 'string') args[i] = redactSecrets(arg);
        }
        method.apply(this, args);
      },
    },
    serializers: { err: serializeThrown },
  };
  if (destination) return pino(base, destination);

  const pretty =
    options.format === 'pretty' || (options.format === 'auto' && process.stdout.isTTY && prettyAvailable());
  if (pretty) {
    return pino({ ...base, transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l' } } });
  }
  // Synchronous writes: lines reach stdout in order and none are lost when the process exits
  // (an asynchronous destination reorders or drops the last lines at exit). One write per
  // line is cheap next to the work of a request.
  return pino(base, pino.destination({ dest: 1, sync: true }));
}
