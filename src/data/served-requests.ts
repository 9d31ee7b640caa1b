// Which request a MongoDB command serves, known from the command itself, so that the slow-operation
// log (monitoring.ts) can name it without following every request through its asynchronous work
// (on Node 20 an AsyncLocalStorage in use hooks every promise of the process: with one, some of 200
// concurrent order placements answered 503, none without it).
// - A request's reads and single-document writes carry its id as the command's `comment`, which
//   mongod also shows in its own slow-query log, `$currentOp` and the profiler.
// - The commands of a transaction (its commit among them, which no `comment` option reaches) are
//   known by their session: the transaction helper says which request a session serves while it
//   runs, and a command names its session (`lsid`).

import mongoose, { type ClientSession, type mongo } from 'mongoose';
import type { Deadline } from './deadline.ts';

/** The `comment` option of a command run for `deadline`'s request (or, without a deadline, `requestId`'s): spread into the command's options. */
export function commentOf(deadline: Deadline | undefined, requestId?: string): { comment?: string } {
  const id = deadline?.requestId ?? requestId;
  return id === undefined ? {} : { comment: id };
}

/** Sessions (their lsid, in hex) serving a request, by the request's id. */
const bySession = new Map<string, string>();

/** A session id's UUID (a BSON Binary) in hex. */
const sessionKey = (lsid: unknown): string | undefined => {
  const id = (lsid as { id?: unknown } | undefined)?.id;
  return id instanceof mongoose.mongo.Binary ? id.toString('hex') : undefined;
};

/** Marks `session`'s commands as serving `requestId` until the returned function is called. */
export function serveInSession(session: ClientSession, requestId: string | undefined): () => void {
  if (requestId === undefined) return () => undefined;
  const key = sessionKey(session.id);
  if (key === undefined) return () => undefined;
  bySession.set(key, requestId);
  return () => {
    bySession.delete(key);
  };
}

/** The request a command serves, if it says or its session does. */
export function requestServed(command: mongo.Document): string | undefined {
  if (typeof command.comment === 'string') return command.comment;
  const key = sessionKey(command.lsid);
  return key === undefined ? undefined : bySession.get(key);
}
