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
  if (!text.includes('mongodb')) return text;
  return text.replace(CONNECTION_STRING, (uri) => redactConnectionString(uri));
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
        method.apply(this, args as Parameters<typeof method>);
      },
    },
    serializers: {
      err: (error: Error) => {
        const serialized = pino.stdSerializers.err(error);
        serialized.message = redactSecrets(serialized.message);
        if (serialized.stack) serialized.stack = redactSecrets(serialized.stack);
        return serialized;
      },
    },
  };
  if (destination) return pino(base, destination);

  const pretty =
    options.format === 'pretty' || (options.format === 'auto' && process.stdout.isTTY === true && prettyAvailable());
  if (pretty) {
    return pino({ ...base, transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l' } } });
  }
  // Synchronous writes: lines reach stdout in order and none are lost when the process exits
  // (an asynchronous destination reorders or drops the last lines at exit). One write per
  // line is cheap next to the work of a request.
  return pino(base, pino.destination({ dest: 1, sync: true }));
}
