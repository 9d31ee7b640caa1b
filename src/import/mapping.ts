// The mapping of an import (--mapping M.json): which source column or member becomes which field
// of the record, and how its text is read. A CSV row is all text; the mapping turns it into the
// typed record the entity declares, with numbers read by the service's one strict grammar
// (readNumber), so "1e400", "0x10" or " 12" are the same refusals they are in a request.
//
//   { "columns": { "SKU": "sku", "Price": { "field": "price.amount", "type": "integer" },
//                  "Tags": { "field": "tags", "type": "list", "separator": "|" } },
//     "ignore": ["Internal note"] }
//
// A field with dots is nested (price.amount). An empty cell leaves the field out, so the
// entity's default applies. A column of the file that the mapping neither maps nor ignores
// stops the import before it starts: data is never dropped silently.

import { readFile } from 'node:fs/promises';
import { Type } from 'typebox';
import type { FieldError } from '../errors.ts';
import { compileValidator, readNumber } from '../domain/validation.ts';
import { parseJsonBody } from '../http/plugins/json-body.ts';
import { AppError } from '../errors.ts';

export const FIELD_TYPES = ['string', 'number', 'integer', 'boolean', 'date', 'json', 'list'] as const;
export type FieldType = (typeof FIELD_TYPES)[number];

const FIELD_PATTERN = '^[A-Za-z_][A-Za-z0-9_]*(\\.[A-Za-z_][A-Za-z0-9_]*)*$';

const MappingSchema = Type.Object(
  {
    columns: Type.Record(
      Type.String({ minLength: 1 }),
      Type.Union([
        Type.String({ pattern: FIELD_PATTERN }),
        Type.Object(
          {
            field: Type.String({ pattern: FIELD_PATTERN }),
            type: Type.Optional(Type.Enum(FIELD_TYPES)),
            separator: Type.Optional(Type.String({ minLength: 1, maxLength: 8 })),
          },
          { additionalProperties: false },
        ),
      ]),
      { minProperties: 1 },
    ),
    ignore: Type.Optional(Type.Array(Type.String())),
  },
  { additionalProperties: false },
);

const checkMapping = compileValidator(MappingSchema, 'mapping');

export interface ColumnMapping {
  column: string;
  /** The field's path in the record. */
  path: string[];
  pointer: string;
  type: FieldType;
  separator: string;
}

export interface Mapping {
  columns: ColumnMapping[];
  ignore: Set<string>;
}

export class MappingError extends Error {
  override name = 'MappingError';
}

export async function loadMapping(file: string): Promise<Mapping> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    throw new MappingError(`cannot read the mapping ${file}: ${(error as Error).message}`);
  }
  return mappingOf(raw, file);
}

export function mappingOf(raw: unknown, name = 'the mapping'): Mapping {
  const errors = checkMapping(raw);
  if (errors.length > 0) {
    throw new MappingError(
      `${name} is not a mapping: ${errors.map((e) => `${e.pointer || '/'} ${e.message}`).join('; ')}`,
    );
  }
  const { columns, ignore = [] } = raw as {
    columns: Record<string, string | { field: string; type?: FieldType; separator?: string }>;
    ignore?: string[];
  };
  const mapped = Object.entries(columns).map(([column, target]): ColumnMapping => {
    const { field, type = 'string', separator = '|' } = typeof target === 'string' ? { field: target } : target;
    const path = field.split('.');
    return { column, path, pointer: `/${path.join('/')}`, type, separator };
  });
  return { columns: mapped, ignore: new Set(ignore) };
}

/** The columns of a file's header that the mapping neither maps nor ignores. */
export function unmappedColumns(mapping: Mapping, header: readonly string[]): string[] {
  const known = new Set(mapping.columns.map((column) => column.column));
  return header.filter((column) => !known.has(column) && !mapping.ignore.has(column));
}

/** A source row (CSV, or a JSON record's top-level members) as the record the mapping makes of it. */
export function applyMapping(
  mapping: Mapping,
  source: Record<string, unknown>,
): { value: Record<string, unknown>; errors: FieldError[] } {
  const value: Record<string, unknown> = {};
  const errors: FieldError[] = [];
  for (const column of mapping.columns) {
    const cell = source[column.column];
    if (cell === undefined || cell === '') continue;
    const read = typeof cell === 'string' ? readCell(cell, column) : { value: cell };
    if ('problem' in read) {
      errors.push({ in: 'record', pointer: column.pointer, message: `(column ${column.column}) ${read.problem}` });
      continue;
    }
    setAt(value, column.path, read.value);
  }
  return { value, errors };
}

const DATE = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/;

function readCell(text: string, column: ColumnMapping): { value: unknown } | { problem: string } {
  switch (column.type) {
    case 'string':
      return { value: text };
    case 'number':
    case 'integer': {
      const number = readNumber(text);
      if (typeof number !== 'number') return { problem: number.problem };
      if (column.type === 'integer' && !Number.isInteger(number))
        return { problem: `must be a whole number, got ${text}` };
      return { value: number };
    }
    case 'boolean':
      if (text === 'true') return { value: true };
      if (text === 'false') return { value: false };
      return { problem: `must be true or false, got ${JSON.stringify(text.slice(0, 40))}` };
    case 'date': {
      const date = new Date(text);
      if (!DATE.test(text) || Number.isNaN(date.getTime()))
        return { problem: `must be an ISO 8601 date or date-time, got ${JSON.stringify(text.slice(0, 40))}` };
      return { value: date.toISOString() };
    }
    case 'json':
      try {
        return { value: parseJsonBody({ headers: {} }, Buffer.from(text)) };
      } catch (error) {
        return { problem: `is not JSON: ${error instanceof AppError ? error.message : String(error)}` };
      }
    case 'list':
      return {
        value: text
          .split(column.separator)
          .map((item) => item.trim())
          .filter((item) => item !== ''),
      };
  }
}

function setAt(target: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let at = target;
  for (const segment of path.slice(0, -1)) {
    const next = at[segment];
    if (next === null || typeof next !== 'object' || Array.isArray(next)) at[segment] = {};
    at = at[segment] as Record<string, unknown>;
  }
  at[path[path.length - 1] as string] = value;
}
