// JSON Schema validation outside the request pipeline (merged patches, Mongoose's mixed-type
// paths), with the same Ajv options and formats as Fastify's; one translation of Ajv's errors
// into field errors that name the offending value; and the one grammar of numbers written as
// text, which JSON bodies and the text parts of requests (query string, path, headers) share.

import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import type { FieldError } from '../errors.ts';
import { OBJECT_ID_PATTERN } from './types.ts';

/** Ajv options shared with Fastify's validator compiler (see src/app.ts). */
export const AJV_OPTIONS = {
  allErrors: true,
  removeAdditional: false,
  coerceTypes: 'array',
  useDefaults: true,
  // NaN and ±Infinity are no numbers of any schema here (JSON cannot spell them; text parts are
  // read by readNumber before Ajv sees them).
  strictNumbers: true,
  // Entity declarations mark ObjectIds with a format of their own.
  formats: { objectid: new RegExp(OBJECT_ID_PATTERN) },
} as const;

const ajv = new Ajv({ ...AJV_OPTIONS, coerceTypes: false, useDefaults: false, formats: { ...AJV_OPTIONS.formats } });
(addFormats as unknown as (a: Ajv) => void)(ajv);
// As Fastify validates a JSON body: strict types, defaults filled in (for bodies validated
// outside the request pipeline, such as a batch's documents).
const bodyAjv = new Ajv({ ...AJV_OPTIONS, coerceTypes: false, formats: { ...AJV_OPTIONS.formats } });
(addFormats as unknown as (a: Ajv) => void)(bodyAjv);

const escapePointer = (segment: string) => segment.replace(/~/g, '~0').replace(/\//g, '~1');

const NULL_ALTERNATIVE = /\/anyOf\/\d+\/type$/;

/**
 * A member that may also be null (an optional member of a merge patch is anyOf [schema, null])
 * fails three times when its value is wrong: the real failure, "must be null" and "must match a
 * schema in anyOf". Only the first says what to fix; the other two go.
 */
function withoutNullAlternatives(errors: readonly Partial<ErrorObject>[]): readonly Partial<ErrorObject>[] {
  const dropped = new Set<Partial<ErrorObject>>();
  for (const issue of errors) {
    const schemaPath = issue.schemaPath ?? '';
    if (
      issue.keyword !== 'type' ||
      (issue.params as { type?: unknown } | undefined)?.type !== 'null' ||
      !NULL_ALTERNATIVE.test(schemaPath)
    )
      continue;
    const anyOfPath = schemaPath.replace(/\/\d+\/type$/, '');
    const summary = errors.find(
      (e) => e.keyword === 'anyOf' && e.schemaPath === anyOfPath && e.instancePath === issue.instancePath,
    );
    // Without its summary this null was not an alternative that lost: keep what Ajv said.
    if (summary === undefined) continue;
    dropped.add(issue).add(summary);
  }
  return dropped.size === 0 ? errors : errors.filter((issue) => !dropped.has(issue));
}

/** Ajv's errors as field errors whose pointer names the offending value itself. */
export function toFieldErrors(errors: readonly Partial<ErrorObject>[], part: string): FieldError[] {
  return withoutNullAlternatives(errors).map((issue) => {
    const params = (issue.params ?? {}) as Record<string, unknown>;
    let pointer = issue.instancePath ?? '';
    let message = issue.message ?? 'is invalid';
    if (typeof params.missingProperty === 'string') {
      pointer += `/${escapePointer(params.missingProperty)}`;
      message = 'is required';
    } else if (typeof params.additionalProperty === 'string') {
      pointer += `/${escapePointer(params.additionalProperty)}`;
      message = 'is not an allowed property';
    } else if (Array.isArray(params.allowedValues)) {
      message = `must be one of: ${params.allowedValues.join(', ')}`;
    }
    return { in: part, pointer, message };
  });
}

/**
 * Compiles a schema once; the returned check lists field errors (empty when valid). With
 * applyDefaults it fills in the schema's defaults as it validates, as for a request body.
 */
export function compileValidator(
  schema: object,
  part = 'body',
  { applyDefaults = false } = {},
): (value: unknown) => FieldError[] {
  const validate = (applyDefaults ? bodyAjv : ajv).compile(schema);
  return (value) => (validate(value) ? [] : toFieldErrors(validate.errors ?? [], part));
}

// --- numbers written as text ------------------------------------------------------------------

/** JSON's number grammar (RFC 8259), whole: no whitespace, no leading + or zeros, no hex, no Infinity or NaN. */
const NUMBER_TEXT = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$/;

/** The significant digits of a number's text, whatever its spelling (9007199254740993.0, 90071992547409930e-1). */
const significantDigits = (text: string): string =>
  (text.replace(/^-/, '').split(/[eE]/)[0] ?? '').replace('.', '').replace(/^0+/, '').replace(/0+$/, '');
/** A double holds every integer of up to 15 significant digits exactly; past 2^53 some longer ones are rounded. */
const EXACT_DIGITS = 15;

const quoted = (text: string) => JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}...` : text);

/**
 * What a number written as text means, or why it is refused: JSON's grammar and nothing around
 * it; finite (1e400 is no number); not read as 0 when its digits say otherwise (1e-400 would
 * silently become 0); an integer with no more digits than a double holds exactly. -0 reads as 0:
 * the same number, and MongoDB's validators refuse the double -0 where an integer belongs.
 */
export function readNumber(text: string): number | { problem: string } {
  if (!NUMBER_TEXT.test(text)) {
    return {
      problem:
        `must be a decimal number such as 12, -3 or 4.5 (no spaces, no + sign, no hex, no Infinity); ` +
        `got ${quoted(text)}`,
    };
  }
  const value = Number(text);
  if (!Number.isFinite(value)) return { problem: `is too large to be a number: ${quoted(text)}` };
  if (value === 0 && /[1-9]/.test(text.split(/[eE]/)[0] ?? ''))
    return { problem: `is too close to 0 to be told from 0: ${quoted(text)}` };
  if (Number.isInteger(value) && !Number.isSafeInteger(value) && significantDigits(text).length > EXACT_DIGITS) {
    return { problem: `has more digits than a number holds exactly: ${quoted(text)}` };
  }
  return value === 0 ? 0 : value;
}

const escapeSegment = (segment: string) => segment.replace(/~/g, '~0').replace(/\//g, '~1');

/** The members of a flat schema (query string, path parameters, headers) that hold numbers, or lists of them. */
function numericMembers(schema: unknown): string[] {
  const properties =
    (schema as { properties?: Record<string, { type?: unknown; items?: { type?: unknown } }> } | undefined)
      ?.properties ?? {};
  const numeric = (type: unknown) => [type].flat().some((name) => name === 'integer' || name === 'number');
  return Object.entries(properties)
    .filter(
      ([, member]) => numeric(member.type) || ([member.type].flat().includes('array') && numeric(member.items?.type)),
    )
    .map(([name]) => name);
}

/**
 * Wraps a coercing validator of a text part: its numbers are read by readNumber before Ajv sees
 * them, so Ajv's own coercion (which takes " " as 0, "0x10" as 16 and "1e400" as Infinity, and
 * then skips minimum and maximum) never reads a number. Refusals join Ajv's errors, one per value.
 */
export function readingNumbersStrictly(schema: unknown, validate: (data: unknown) => unknown): ValidateFunction {
  const members = numericMembers(schema);
  if (members.length === 0) return validate as ValidateFunction;
  const wrapped = ((data: unknown) => {
    const refused: Partial<ErrorObject>[] = [];
    if (data !== null && typeof data === 'object') {
      const values = data as Record<string, unknown>;
      for (const name of members) {
        const value = values[name];
        if (value === undefined) continue;
        const list = Array.isArray(value);
        const read = (list ? value : [value]).map((item: unknown, index: number) => {
          if (typeof item !== 'string') return item;
          const number = readNumber(item);
          if (typeof number === 'number') return number;
          const instancePath = `/${escapeSegment(name)}${list ? `/${index}` : ''}`;
          refused.push({
            keyword: 'number',
            instancePath,
            schemaPath: '#/properties',
            params: {},
            message: number.problem,
          });
          return undefined;
        });
        // A refused value is taken out: Ajv would otherwise coerce it its own way and say nothing.
        if (read.includes(undefined)) Reflect.deleteProperty(values, name);
        else values[name] = list ? read : read[0];
      }
    }
    const valid = validate(data);
    const own = (validate as { errors?: Partial<ErrorObject>[] | null }).errors ?? [];
    if (refused.length === 0) {
      wrapped.errors = own as ErrorObject[];
      return valid;
    }
    const named = new Set(refused.map((error) => (error.instancePath ?? '').split('/')[1]));
    const others = own.filter(
      (error) => !named.has(String(error.params?.missingProperty ?? error.instancePath?.split('/')[1] ?? '')),
    );
    wrapped.errors = [...refused, ...others] as ErrorObject[];
    return false;
  }) as ValidateFunction;
  return wrapped;
}
