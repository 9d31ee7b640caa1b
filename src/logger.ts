// The process's one pino logger: JSON lines on stdout, pretty only on a terminal, secrets and
// personal data (e-mail addresses, names, phone numbers, addresses: in URLs' query strings, bodies,
// and what MongoDB's errors echo of a document) redacted before anything is written, and the trace
// a line belongs to named on it when tracing is on (telemetry.ts).

import { createRequire } from 'node:module';
import { redactConnectionString } from 'mongodb-connection-string-url';
import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';
import type { Config } from './config.ts';
import { traceFields } from './telemetry.ts';

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
  // A body holds a customer's personal data; a line about a request names it by its id instead.
  'body',
  '*.body',
  'payload',
  '*.payload',
  'email',
  '*.email',
  'phone',
  '*.phone',
  'addresses',
  '*.addresses',
];

/** Query-string parameters whose values are personal data: filters on e-mail, names, phones, addresses. */
const PERSONAL_PARAMETER = /e-?mail|name|phone|address|line[12]|city|region|postal|street/i;

/**
 * A URL as logs show it: the values of query parameters that may hold personal data (e.g. the
 * filter of `?email=...`) replaced; the path and every other parameter kept.
 */
export function redactUrl(url: string): string {
  const query = url.indexOf('?');
  if (query < 0) return url;
  const parameters = url
    .slice(query + 1)
    .split('&')
    .map((parameter) => {
      const equals = parameter.indexOf('=');
      if (equals < 0) return parameter;
      let key = parameter.slice(0, equals);
      try {
        key = decodeURIComponent(key);
      } catch {
        // A key that does not decode is tested as it came.
      }
      return PERSONAL_PARAMETER.test(key) ? `${parameter.slice(0, equals)}=[redacted]` : parameter;
    });
  return `${url.slice(0, query)}?${parameters.join('&')}`;
}

/** Members of MongoDB's errors that echo a document's values: the key of a duplicate, a validator's details, a write. */
const ECHOING_MEMBERS = new Set(['keyValue', 'errInfo', 'op', 'document', 'documents', 'q', 'u', 'writeErrors']);
/** `dup key: { email: "a@example.com" }` in a duplicate-key message: the key's fields stay, its values do not. */
const DUPLICATE_KEY = /dup key: \{[^}]*\}/g;

/** A serialized error with what MongoDB echoed of a document replaced. */
function withoutDocumentValues(value: unknown, depth = 0): unknown {
  if (typeof value === 'string')
    return value.includes('dup key') ? value.replace(DUPLICATE_KEY, 'dup key: { [redacted] }') : value;
  if (value === null || typeof value !== 'object' || depth > 6) return value;
  if (Array.isArray(value)) return value.map((item: unknown) => withoutDocumentValues(item, depth + 1));
  const scrubbed: Record<string, unknown> = {};
  for (const [key, member] of Object.entries(value as Record<string, unknown>))
    scrubbed[key] = ECHOING_MEMBERS.has(key) ? '[redacted]' : withoutDocumentValues(member, depth + 1);
  return scrubbed;
}

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
      const serialized = withoutDocumentValues(pino.stdSerializers.err(thrown as Error)) as Record<string, unknown>;
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
      message: withoutDocumentValues(
        redactSecrets((text ?? Object.prototype.toString.call(thrown)).slice(0, MAX_THROWN_TEXT)),
      ),
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
  const mixin = traceFields();
  const base: LoggerOptions = {
    level: options.level,
    // Tracing off, no mixin: a line costs nothing more.
    ...(mixin !== undefined && { mixin }),
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
