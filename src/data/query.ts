// Turns a validated list request into a MongoDB query: allowlisted fields and operators only,
// values typed by the entity's schema (so no client value can become an operator), a sort that
// always ends in _id, and keyset pagination through opaque cursors bound to their query and
// signed (HMAC-SHA256), so that a client can neither edit one nor forge one. The change feed signs
// its positions with the same functions, in a domain of their own.

import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import mongoose from 'mongoose';
import { PREFIX_MAX_LENGTH, schemaAt, type Entity, type FilterOp, type JsonSchema } from '../domain/entity.ts';
import { AppError } from '../errors.ts';

const { ObjectId } = mongoose.Types;

export interface FilterClause {
  field: string;
  op: FilterOp;
  /** A scalar, or a list of scalars for in/nin/all, as the HTTP layer validated it. */
  value: unknown;
}

export interface ListRequest {
  filters: FilterClause[];
  q?: string;
  sort: { field: string; direction: 1 | -1 };
  fields?: string[];
  limit: number;
  cursor?: string;
  count: boolean;
}

export type MongoFilter = Record<string, unknown>;

/** A validated query value as MongoDB stores it: dates as Date, ids as ObjectId. */
export function toStoredValue(schema: JsonSchema, value: unknown): unknown {
  if (value !== null && typeof value === 'object') {
    // Values reach here typed by JSON Schema; an object would mean a bug upstream, and could
    // smuggle an operator, so it is refused outright.
    throw new Error('query values must be scalars');
  }
  if (schema.format === 'date-time' && typeof value === 'string') return new Date(value);
  if (schema.format === 'objectid' && typeof value === 'string') return new ObjectId(value);
  return value;
}

const OPERATORS: Record<Exclude<FilterOp, 'eq' | 'prefix'>, string> = {
  ne: '$ne',
  in: '$in',
  nin: '$nin',
  gt: '$gt',
  gte: '$gte',
  lt: '$lt',
  lte: '$lte',
  exists: '$exists',
  all: '$all',
};

/**
 * Every ASCII punctuation and space character written as a \xHH escape, which means exactly
 * that character in PCRE (MongoDB) and in JavaScript (unicode mode included), inside a class or
 * out: the result matches the text literally, whatever syntax it holds. Letters, digits and
 * non-ASCII characters have no syntax of their own and stay as they are.
 */
export function escapeRegExp(text: string): string {
  return text.replace(
    /[\x20-\x2f\x3a-\x40\x5b-\x60\x7b-\x7e]/g,
    (character) => `\\x${character.charCodeAt(0).toString(16)}`,
  );
}

/**
 * "Starts with", literally. Without a collation: an anchored regular expression of the escaped
 * text, which an index on the field serves as a range. With the collection's collation (case-
 * insensitive customers) a regex could not use the collated index and would ignore the collation;
 * a range does both: U+FFFF sorts after every character in collation order (CLDR keeps it so for
 * exactly this use), so [text, text + U+FFFF) holds every value starting with text.
 */
function prefixCondition(entity: Entity, value: unknown): Record<string, unknown> {
  if (
    typeof value !== 'string' ||
    value.length === 0 ||
    value.length > PREFIX_MAX_LENGTH ||
    // eslint-disable-next-line no-control-regex -- control characters are what this refuses
    /[\u0000-\u001f\u007f]/.test(value)
  ) {
    throw AppError.badRequest(`A prefix must be 1-${PREFIX_MAX_LENGTH} characters, none of them a control character.`);
  }
  if (entity.collation !== undefined) return { $gte: value, $lt: `${value}\uffff` };
  return { $regex: `^${escapeRegExp(value)}` };
}

export function compileFilter(entity: Entity, clauses: FilterClause[], q?: string): MongoFilter {
  // No prototype: a field name can only ever be a key of this object, never reach Object's members.
  const filter = Object.create(null) as Record<string, Record<string, unknown>>;
  const prefixes: MongoFilter[] = [];
  for (const { field, op, value } of clauses) {
    const allowed = Object.hasOwn(entity.filters, field) ? entity.filters[field] : undefined;
    if (!allowed?.includes(op)) throw AppError.badRequest(`Filtering ${field} with ${op} is not supported.`);
    if (op === 'prefix') {
      // Kept apart in $and: a range on the field could not share its operators with gte/lt filters.
      prefixes.push({ [field]: prefixCondition(entity, value) });
      continue;
    }
    const schema = schemaAt(entity, field);
    const operand =
      op === 'exists'
        ? Boolean(value)
        : Array.isArray(value)
          ? value.map((item) => toStoredValue(schema, item))
          : toStoredValue(schema, value);
    (filter[field] ??= {})[op === 'eq' ? '$eq' : OPERATORS[op]] = operand;
  }
  const compiled: MongoFilter = { ...filter };
  if (prefixes.length > 0) compiled.$and = prefixes;
  if (q !== undefined) {
    if (!entity.textSearch) throw AppError.badRequest(`${entity.collection} cannot be searched with q.`);
    compiled.$text = { $search: q };
  }
  return compiled;
}

// --- keyset pagination ---------------------------------------------------------------------

interface CursorContent {
  /** Which query the cursor belongs to. */
  h: string;
  /** Sort key of the last document of the previous page, typed. */
  v: { d: string } | { o: string } | { s: unknown };
  /** _id of that document. */
  i: string;
}

/**
 * Identifies a query (its collection, filters, search and sort, not the page or the fields) so a
 * cursor cannot be reused elsewhere.
 */
export function queryFingerprint(request: Pick<ListRequest, 'filters' | 'q' | 'sort'>, collection: string): string {
  const canonical = JSON.stringify({
    c: collection,
    f: [...request.filters]
      .map((c) => [c.field, c.op, c.value])
      .sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))),
    q: request.q ?? null,
    s: [request.sort.field, request.sort.direction],
  });
  return createHash('sha256').update(canonical).digest('base64url').slice(0, 16);
}

function encodeValue(value: unknown): CursorContent['v'] {
  if (value instanceof Date) return { d: value.toISOString() };
  if (value instanceof ObjectId) return { o: value.toHexString() };
  return { s: value };
}

function decodeValue(value: CursorContent['v']): unknown {
  if ('d' in value) {
    const date = new Date(value.d);
    if (Number.isNaN(date.getTime())) throw new Error('bad date');
    return date;
  }
  if ('o' in value) return new ObjectId(value.o);
  if (value.s !== null && typeof value.s === 'object') throw new Error('bad value');
  return value.s;
}

const invalidCursor = (detail: string) =>
  new AppError(400, 'invalid-cursor', 'Invalid Cursor', {
    detail,
    extensions: { errors: [{ in: 'query', pointer: '/cursor', message: detail }] },
  });

/** Bytes of the signature kept in a cursor or a feed position: 128 bits, far beyond guessing. */
const SIGNATURE_BYTES = 16;

/** What a signature signs: its domain first, so a cursor can never pass for a feed position, nor the reverse. */
export type SignedDomain = 'cursor.v1.' | 'feed.v1.';

const signatureOf = (key: Buffer, domain: SignedDomain, payload: string) =>
  createHmac('sha256', key).update(`${domain}${payload}`).digest().subarray(0, SIGNATURE_BYTES);

/**
 * base64url as this service writes it, and nothing else: Buffer.from skips characters it does not
 * know and ignores the unused bits of the last one, so two tokens could decode alike; only the
 * canonical spelling is accepted, so that altering any character of a cursor changes what it says.
 */
function strictBase64url(text: string): Buffer | undefined {
  if (!/^[A-Za-z0-9_-]+$/.test(text)) return undefined;
  const bytes = Buffer.from(text, 'base64url');
  return bytes.toString('base64url') === text ? bytes : undefined;
}

/** `payload` as a client may hold it: base64url, a dot, and its signature by `key` in `domain`. */
export function signed(key: Buffer, domain: SignedDomain, payload: Buffer): string {
  const encoded = payload.toString('base64url');
  return `${encoded}.${signatureOf(key, domain, encoded).toString('base64url')}`;
}

/** The payload of a text `signed` made with `key` in `domain`; undefined when it was altered, forged or garbled. */
export function verified(key: Buffer, domain: SignedDomain, text: string): Buffer | undefined {
  const parts = text.split('.');
  const [encodedPayload, encodedSignature] = parts.length === 2 ? parts : [];
  const payload = encodedPayload === undefined ? undefined : strictBase64url(encodedPayload);
  const signature = encodedSignature === undefined ? undefined : strictBase64url(encodedSignature);
  if (
    encodedPayload === undefined ||
    payload === undefined ||
    signature === undefined ||
    signature.length !== SIGNATURE_BYTES ||
    !timingSafeEqual(signature, signatureOf(key, domain, encodedPayload))
  ) {
    return undefined;
  }
  return payload;
}

/** A cursor: the position (base64url JSON) and its signature by `key`, joined by a dot. */
export function encodeCursor(key: Buffer, fingerprint: string, sortValue: unknown, id: unknown): string {
  const content: CursorContent = { h: fingerprint, v: encodeValue(sortValue), i: String(id) };
  return signed(key, 'cursor.v1.', Buffer.from(JSON.stringify(content)));
}

export function decodeCursor(
  token: string,
  fingerprint: string,
  key: Buffer,
): { value: unknown; id: InstanceType<typeof ObjectId> } {
  const payload = verified(key, 'cursor.v1.', token);
  if (payload === undefined) {
    throw invalidCursor(
      'The cursor was not issued by this service, or was altered; use the `next` link of the previous page.',
    );
  }
  let content: CursorContent;
  try {
    const parsed: unknown = JSON.parse(payload.toString('utf8'));
    if (typeof parsed !== 'object' || parsed === null) throw new Error('shape');
    const { h, i } = parsed as Partial<Record<keyof CursorContent, unknown>>;
    if (typeof h !== 'string' || typeof i !== 'string') throw new Error('shape');
    content = parsed as CursorContent;
  } catch {
    throw invalidCursor('The cursor is malformed; use the `next` link of the previous page.');
  }
  if (content.h !== fingerprint) {
    throw invalidCursor('The cursor belongs to another query; keep the filters, q and sort of the page it came from.');
  }
  try {
    if (!/^[0-9a-f]{24}$/.test(content.i)) throw new Error('id');
    return { value: decodeValue(content.v), id: new ObjectId(content.i) };
  } catch {
    throw invalidCursor('The cursor is malformed; use the `next` link of the previous page.');
  }
}

/**
 * The condition "after this document" in the sort order (sort key, then _id): the key beyond the
 * cursor's, or the same key and the _id beyond. Written as "key up to the cursor's, and then one
 * of the two", which means the same: the outer range gives the planner one index scan that
 * starts at the cursor, like the first page's, where the plain $or is planned branch by branch
 * and merged (SUBPLAN, two scans and a SORT_MERGE on every page but the first).
 */
export function afterCursor(field: string, direction: 1 | -1, value: unknown, id: unknown): MongoFilter {
  const beyond = direction === 1 ? '$gt' : '$lt';
  const upTo = direction === 1 ? '$gte' : '$lte';
  return { [field]: { [upTo]: value }, $or: [{ [field]: { [beyond]: value } }, { _id: { [beyond]: id } }] };
}

/** Reads a dotted path from a plain document. */
export function valueAt(document: Record<string, unknown>, path: string): unknown {
  let current: unknown = document;
  for (const segment of path.split('.')) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<string, unknown>)[segment];
  }
  return current;
}
