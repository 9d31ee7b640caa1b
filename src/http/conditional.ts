// Conditional requests: a document's version goes out as its ETag and comes back in If-Match (write
// only while the document is still at it, else 412) or If-None-Match (304 while it is). Every route
// that reads or writes one document speaks them the same way, and a batch operation's ifMatch too.
// A read document says `Cache-Control: private, no-cache`: kept by whoever wants, revalidated by ETag.

import { Type } from 'typebox';
import { AppError } from '../errors.ts';

export const etagOf = (version: number) => `"${version}"`;

export const etagHeader = {
  etag: { type: 'string', description: 'Version of the document, for If-Match and If-None-Match.' },
};

/** A read document may be kept by the client and private caches, which revalidate it with its ETag. */
export const DOCUMENT_CACHE_CONTROL = 'private, no-cache';

export const cacheControlHeader = {
  'cache-control': { type: 'string', description: `${DOCUMENT_CACHE_CONTROL}: keep it, revalidate with its ETag.` },
};

export const ConditionalHeaders = Type.Object({
  'if-match': Type.Optional(
    Type.String({ description: 'Write only if the document is still at this ETag (else 412).' }),
  ),
});

/** If-Match as the version it names: undefined when absent or `*` (any current version). */
export function expectedVersion(header: string | undefined): number | undefined {
  if (header === undefined || header.trim() === '*') return undefined;
  const match = /^\s*"(\d{1,15})"\s*$/.exec(header);
  if (match?.[1] === undefined) {
    throw AppError.preconditionFailed('If-Match must be one strong entity tag from an ETag header, such as "3", or *.');
  }
  return Number(match[1]);
}

/** True when If-None-Match names the current version (or is *). */
export function notModified(header: string | undefined, version: number): boolean {
  if (header === undefined) return false;
  if (header.trim() === '*') return true;
  return header.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etagOf(version));
}
