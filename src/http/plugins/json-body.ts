// The request bodies the service reads: JSON (application/json) and JSON Merge Patch
// (application/merge-patch+json), in UTF-8, and nothing else (any other media type is a 415).
// Fastify's own JSON parser decodes leniently: invalid UTF-8 silently becomes U+FFFD, so the
// service would store something the client never sent. This one reads the bytes, refuses what is
// not UTF-8 or names another charset, refuses __proto__ and constructor.prototype members (naming
// where they are), refuses numbers that JSON.parse would silently change (1e400 to Infinity,
// 1e-400 to 0, 9007199254740993 to ...992) and reads -0 as 0 (see readNumber), and keeps the body
// limit (BODY_LIMIT_BYTES, 413) Fastify enforces as it reads.

import fp from 'fastify-plugin';
import type { FastifyRequest } from 'fastify';
import { AppError, type FieldError } from '../../errors.ts';
import {
  INPUT_LIMITS,
  PROTOTYPE_PATHS,
  jsonPointer,
  pointerOf,
  prototypePath,
  tooDeep,
  type PathNode,
} from './input-guard.ts';
import { readNumber } from '../../domain/validation.ts';

export const MERGE_PATCH_MEDIA_TYPE = 'application/merge-patch+json';
export const JSON_MEDIA_TYPES = ['application/json', MERGE_PATCH_MEDIA_TYPE] as const;

/** The preValidation of a merge-patch route: plain JSON would be ambiguous about null. */
export async function mergePatchOnly(request: { headers: { 'content-type'?: string } }): Promise<void> {
  const type = request.headers['content-type']?.split(';')[0]?.trim().toLowerCase();
  if (type !== MERGE_PATCH_MEDIA_TYPE) {
    throw AppError.unsupportedMediaType(
      `PATCH takes ${MERGE_PATCH_MEDIA_TYPE} (RFC 7396), not ${type ?? 'a body without Content-Type'}.`,
    );
  }
}

/** Throws on the first byte sequence that is not UTF-8 (a leading byte order mark is dropped). */
const utf8 = new TextDecoder('utf-8', { fatal: true });

const malformed = (detail: string, errors?: FieldError[]) =>
  new AppError(400, 'malformed-body', 'Bad Request', { detail, ...(errors && { extensions: { errors } }) });

/** The charset parameter of the Content-Type, lower-cased, or undefined when there is none. */
function charsetOf(request: Pick<FastifyRequest, 'headers'>): string | undefined {
  const header = request.headers['content-type'] ?? '';
  const match = /;\s*charset\s*=\s*"?([^";\s]*)"?/i.exec(header);
  return match?.[1]?.toLowerCase();
}

interface Node extends PathNode {
  value: object;
  parent: Node | undefined;
}

/**
 * Where the parsed value holds one of the paths to a prototype (PROTOTYPE_PATHS: what merging it
 * into another object could turn into prototype pollution); null when nowhere. Iterative and
 * linear: it never grows the call stack, whatever the nesting.
 */
export function prototypePoisoning(root: unknown): string | null {
  if (root === null || typeof root !== 'object') return null;
  const pending: Node[] = [{ value: root, key: '', parent: undefined }];
  for (let node = pending.pop(); node !== undefined; node = pending.pop()) {
    const path = prototypePath(node.value);
    if (path !== undefined) return pointerOf(node, ...path);
    for (const [key, child] of Object.entries(node.value as Record<string, unknown>)) {
      if (child !== null && typeof child === 'object') pending.push({ value: child, key, parent: node });
    }
  }
  return null;
}

interface Scan {
  /** Nests objects and arrays deeper than the limit. */
  tooDeep: boolean;
  /**
   * Offsets of the number tokens that could mean something other than they say: with an
   * exponent, with more digits than a double holds, or a negative zero. Any other number token
   * (most of them) reads as exactly what it spells.
   */
  suspectNumbers: number[];
}

const isNumberChar = (code: number) =>
  (code >= 0x30 && code <= 0x39) || code === 0x2d || code === 0x2b || code === 0x2e || code === 0x65 || code === 0x45;

/**
 * One pass over JSON text, before parsing: how deep it nests (a body nested 100,000 levels deep
 * costs JSON.parse several times what a flat body of the same size does, and the input guard
 * would refuse it anyway), and where its suspect numbers are (JSON.parse reads 1e400 as Infinity
 * and 1e-400 as 0, and says nothing).
 */
function scanJson(text: string, depthLimit: number): Scan {
  const suspectNumbers: number[] = [];
  let depth = 0;
  let inString = false;
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index);
    if (inString) {
      if (code === 0x5c)
        index++; // a backslash escapes the next character
      else if (code === 0x22) inString = false;
    } else if (code === 0x22) inString = true;
    else if (code === 0x7b || code === 0x5b) {
      if (++depth > depthLimit) return { tooDeep: true, suspectNumbers };
    } else if (code === 0x7d || code === 0x5d) depth--;
    else if ((code >= 0x30 && code <= 0x39) || code === 0x2d) {
      let end = index + 1;
      let exponent = false;
      while (end < text.length && isNumberChar(text.charCodeAt(end))) {
        if ((text.charCodeAt(end) | 0x20) === 0x65) exponent = true;
        end++;
      }
      if (exponent || end - index > 15 || (code === 0x2d && text.charCodeAt(index + 1) === 0x30))
        suspectNumbers.push(index);
      index = end - 1;
    }
  }
  return { tooDeep: false, suspectNumbers };
}

/** The number token of valid JSON text that starts at `offset`. */
function numberTokenAt(text: string, offset: number): string {
  let end = offset + 1;
  while (end < text.length && isNumberChar(text.charCodeAt(end))) end++;
  return text.slice(offset, end);
}

/**
 * The JSON Pointer of each value that starts at one of these offsets of valid JSON text, by
 * offset, in one pass that follows the member names and array positions. Only run on a body
 * being refused.
 */
function pointersAt(text: string, offsets: readonly number[]): Map<number, string> {
  const wanted = new Set(offsets);
  const found = new Map<number, string>();
  const path: (string | number)[] = [];
  const inObject: boolean[] = [];
  let expectingName = false;
  for (let index = 0; index < text.length && found.size < wanted.size; index++) {
    const character = text[index];
    if (character === '"') {
      let end = index + 1;
      while (text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
      if (inObject.at(-1) === true && expectingName) {
        path[path.length - 1] = JSON.parse(text.slice(index, end + 1)) as string;
        expectingName = false;
      }
      index = end;
    } else if (character === '{' || character === '[') {
      inObject.push(character === '{');
      path.push(character === '{' ? '' : 0);
      expectingName = character === '{';
    } else if (character === '}' || character === ']') {
      inObject.pop();
      path.pop();
    } else if (character === ',') {
      if (inObject.at(-1) === true) expectingName = true;
      else path[path.length - 1] = (path.at(-1) as number) + 1;
    } else if (wanted.has(index)) found.set(index, jsonPointer(path.map(String)));
  }
  return found;
}

/** A parsed value with every -0 read as 0 (JSON.parse keeps the sign of a zero). */
const withoutNegativeZero = (text: string) =>
  JSON.parse(text, (_key, value: unknown) => (Object.is(value, -0) ? 0 : value)) as unknown;

/** Numbers must mean what their text says (readNumber): refuses those that do not, and reads -0 as 0. */
function checkedNumbers(text: string, offsets: number[], parsed: unknown): unknown {
  const refused: { offset: number; problem: string }[] = [];
  let negativeZero = false;
  for (const offset of offsets) {
    const read = readNumber(numberTokenAt(text, offset));
    if (typeof read !== 'number') refused.push({ offset, problem: read.problem });
    else if (read === 0) negativeZero ||= text.charCodeAt(offset) === 0x2d;
  }
  if (refused.length > 0) {
    const shown = refused.slice(0, MAX_NUMBER_FINDINGS);
    const pointers = pointersAt(
      text,
      shown.map((finding) => finding.offset),
    );
    throw AppError.validation(
      shown.map(({ offset, problem }) => ({ in: 'body', pointer: pointers.get(offset) ?? '', message: problem })),
    );
  }
  return negativeZero ? withoutNegativeZero(text) : parsed;
}

/** Findings listed in one answer; past them the client has enough to fix. */
const MAX_NUMBER_FINDINGS = 20;

/** Bytes to a value, or the 4xx that says why not (also each record of npm run import). */
export function parseJsonBody(request: Pick<FastifyRequest, 'headers'>, body: Buffer): unknown {
  const charset = charsetOf(request);
  if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
    throw AppError.unsupportedMediaType(`JSON bodies are read as UTF-8 only, not ${charset || 'an empty charset'}.`);
  }
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    throw malformed('The body is not valid UTF-8.');
  }
  if (text.trim() === '')
    throw malformed('The body is empty; send a JSON value, or no Content-Type when there is nothing to send.');
  const scan = scanJson(text, INPUT_LIMITS.depth);
  if (scan.tooDeep) {
    throw AppError.validation([tooDeep('')]);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw malformed(`The body is not valid JSON: ${(error as Error).message}`);
  }
  if (scan.suspectNumbers.length > 0) value = checkedNumbers(text, scan.suspectNumbers, value);
  // Only a body that spells the first name of a path, literally or through \u escapes, can hold one.
  if (PROTOTYPE_PATHS.some(([name]) => text.includes(name)) || text.includes('\\u')) {
    const pointer = prototypePoisoning(value);
    if (pointer !== null) {
      throw malformed('The body has a member that could alter object prototypes; it is refused.', [
        { in: 'body', pointer, message: 'is a member name this service refuses' },
      ]);
    }
  }
  return value;
}

export default fp(
  async (app) => {
    // Text bodies are no input here (Fastify would hand them to handlers as strings).
    app.removeContentTypeParser(['text/plain', 'application/json']);
    app.addContentTypeParser(
      [...JSON_MEDIA_TYPES],
      { parseAs: 'buffer' },
      async (request: FastifyRequest, body: Buffer) => parseJsonBody(request, body),
    );
  },
  { name: 'json-body', fastify: '5.x' },
);
