// `npm run schema:print`: prints every entity's collection options, `$jsonSchema` validator and
// indexes as a JavaScript literal, for a migration author to paste. Migrations never import
// src/, so each one keeps the snapshot it was written against; test/data/schema-drift.test.ts
// fails when the declarations move on without a migration that follows them.

import { fileURLToPath } from 'node:url';
import { ENTITIES } from '../domain/entities/index.ts';
import type { Entity } from '../domain/entity.ts';
import { toMongoJsonSchema } from '../data/json-schema.ts';

export interface CollectionSpec {
  name: string;
  collation?: { locale: string; strength: number };
  validator: { $jsonSchema: Record<string, unknown> };
  indexes: { spec: Record<string, unknown>; serves: string }[];
}

export function collectionSpec(entity: Entity): CollectionSpec {
  return {
    name: entity.collection,
    ...(entity.collation ? { collation: entity.collation } : {}),
    validator: { $jsonSchema: toMongoJsonSchema(entity.stored) },
    indexes: entity.indexes.map(({ serves, ...spec }) => ({ spec, serves })),
  };
}

/** The specs as a `const COLLECTIONS = [...]` statement. */
export function renderCollections(specs: CollectionSpec[]): string {
  const lines = ['const COLLECTIONS = ['];
  for (const spec of specs) {
    lines.push('  {', `    name: ${toLiteral(spec.name)},`);
    if (spec.collation) lines.push(`    collation: ${toLiteral(spec.collation)},`);
    lines.push(`    validator: ${toLiteral(spec.validator, '    ')},`, '    indexes: [');
    for (const index of spec.indexes) {
      lines.push(`      // ${index.serves}`, `      ${toLiteral(index.spec, '      ')},`);
    }
    lines.push('    ],', '  },');
  }
  lines.push('];');
  return lines.join('\n');
}

const WIDTH = 110;
const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

/** A JavaScript literal of plain data: single-quoted strings, short values kept on one line. */
export function toLiteral(value: unknown, indent = ''): string {
  if (typeof value === 'string') return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'").replace(/\n/g, '\\n')}'`;
  if (typeof value === 'number')
    return Number.isInteger(value) && Math.abs(value) >= 10_000 ? groupDigits(value) : String(value);
  if (typeof value === 'boolean' || value === null) return String(value);
  if (typeof value !== 'object') throw new Error(`cannot print ${typeof value} as a literal`);

  const inner = `${indent}  `;
  const isArray = Array.isArray(value);
  const parts = isArray
    ? value.map((item) => toLiteral(item, inner))
    : Object.entries(value as Record<string, unknown>).map(
        ([key, item]) => `${IDENTIFIER.test(key) ? key : toLiteral(key)}: ${toLiteral(item, inner)}`,
      );
  const [open, close] = isArray ? ['[', ']'] : ['{', '}'];
  if (parts.length === 0) return `${open}${close}`;
  const oneLine = isArray ? `[${parts.join(', ')}]` : `{ ${parts.join(', ')} }`;
  if (!oneLine.includes('\n') && indent.length + oneLine.length <= WIDTH) return oneLine;
  return `${open}\n${parts.map((part) => `${inner}${part},`).join('\n')}\n${indent}${close}`;
}

function groupDigits(value: number): string {
  const sign = value < 0 ? '-' : '';
  return sign + String(Math.abs(value)).replace(/\B(?=(\d{3})+$)/g, '_');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.stdout.write(`${renderCollections(ENTITIES.map((entity) => collectionSpec(entity)))}\n`);
}
