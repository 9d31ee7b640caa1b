// JSON Schema validation outside the request pipeline (merged patches, Mongoose's mixed-type
// paths), with the same Ajv options and formats as Fastify's, and one translation of Ajv's
// errors into field errors that name the offending value.

import { Ajv, type ErrorObject } from 'ajv';
import addFormats from 'ajv-formats';
import type { FieldError } from '../errors.ts';
import { OBJECT_ID_PATTERN } from './types.ts';

/** Ajv options shared with Fastify's validator compiler (see src/app.ts). */
export const AJV_OPTIONS = {
  allErrors: true,
  removeAdditional: false,
  coerceTypes: 'array',
  useDefaults: true,
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
    if (issue.keyword !== 'type' || (issue.params as { type?: unknown } | undefined)?.type !== 'null' || !NULL_ALTERNATIVE.test(schemaPath)) continue;
    const anyOfPath = schemaPath.replace(/\/\d+\/type$/, '');
    const summary = errors.find((e) => e.keyword === 'anyOf' && e.schemaPath === anyOfPath && e.instancePath === issue.instancePath);
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
export function compileValidator(schema: object, part = 'body', { applyDefaults = false } = {}): (value: unknown) => FieldError[] {
  const validate = (applyDefaults ? bodyAjv : ajv).compile(schema);
  return (value) => (validate(value) ? [] : toFieldErrors(validate.errors ?? [], part));
}
