// What a MongoDB error means for the caller, decided in one place. The driver reports the same
// situation in several shapes (a network error, a cleared pool, a server that stepped down, an
// error wrapped in a MongoBulkWriteError, a client-side timeout), and only some of them carry the
// labels the transaction specification defines; the write path, the error handler and the
// idempotency store all ask here instead of testing error classes themselves.

import mongoose from 'mongoose';

const { mongo } = mongoose;

export type FailureKind =
  /** The transaction was aborted by the server (write conflict, failover mid-transaction): running it again is safe. */
  | 'transient'
  /**
   * MongoDB could not be reached or stopped answering: no server, no connection, no primary, shutting
   * down, or out of time.
   */
  | 'unavailable'
  /** The server stopped a query at its maxTimeMS. */
  | 'query-timeout'
  /** Anything else: a refusal that is the request's (duplicate key, validation) or a bug. */
  | 'other';

/** Server error codes that say the server could not do the work now, not that the work was wrong. */
const UNAVAILABLE_CODES = new Set([
  6, // HostUnreachable
  7, // HostNotFound
  89, // NetworkTimeout
  91, // ShutdownInProgress
  189, // PrimarySteppedDown
  262, // ExceededTimeLimit
  9001, // SocketException
  10107, // NotWritablePrimary
  11600, // InterruptedAtShutdown
  11602, // InterruptedDueToReplStateChange
  13435, // NotPrimaryNoSecondaryOk
  13436, // NotPrimaryOrSecondary
]);
const MAX_TIME_EXPIRED = 50;

/** Driver errors that are not exported as classes (or are Mongoose's own), by name. */
const UNAVAILABLE_NAMES = new Set([
  'MongooseServerSelectionError',
  'MongoWaitQueueTimeoutError',
  'MongoPoolClearedError',
  'PoolClearedOnNetworkError',
  'MongoPoolClosedError',
]);

/** The error a wrapper carries: a MongoBulkWriteError keeps the driver error it wraps as its errorResponse. */
function wrapped(error: Error): Error | undefined {
  const inner = (error as { errorResponse?: unknown }).errorResponse;
  if (inner instanceof Error && inner !== error) return inner;
  return error.cause instanceof Error && error.cause !== error ? error.cause : undefined;
}

export function failureKind(error: unknown): FailureKind {
  for (let current = error, depth = 0; current instanceof Error && depth < 5; current = wrapped(current), depth++) {
    if (current instanceof mongo.MongoError && current.hasErrorLabel('TransientTransactionError')) return 'transient';
    if (
      current instanceof mongo.MongoNetworkError ||
      current instanceof mongo.MongoServerSelectionError ||
      current instanceof mongo.MongoNotConnectedError ||
      current instanceof mongo.MongoTopologyClosedError ||
      current instanceof mongo.MongoServerClosedError ||
      current instanceof mongo.MongoClientClosedError ||
      current instanceof mongo.MongoOperationTimeoutError ||
      UNAVAILABLE_NAMES.has(current.name)
    ) {
      return 'unavailable';
    }
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'number' && UNAVAILABLE_CODES.has(code)) return 'unavailable';
    if (code === MAX_TIME_EXPIRED) return 'query-timeout';
    // Mongoose's own message when an operation runs before the first connection succeeded.
    if (current instanceof mongoose.Error && /before initial connection is complete/.test(current.message))
      return 'unavailable';
  }
  return 'other';
}
