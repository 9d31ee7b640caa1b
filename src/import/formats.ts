// The import's input formats, each read as a stream of records so that memory does not grow with
// the file: NDJSON (one JSON value per line, split2), one JSON array (json-array.ts) and CSV with
// a header row (csv-parse). A JSON record's text goes through the parser of request bodies
// (src/http/plugins/json-body.ts: strict numbers, no prototype members, UTF-8), so a record is
// read exactly as a POST of it would be; a CSV row becomes a record through the mapping.

import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { parse as parseCsv } from 'csv-parse';
import split2 from 'split2';
import { AppError, type FieldError } from '../errors.ts';
import { parseJsonBody } from '../http/plugins/json-body.ts';
import { jsonArrayElements } from './json-array.ts';
import { applyMapping, unmappedColumns, MappingError, type Mapping } from './mapping.ts';

export const FORMATS = ['ndjson', 'json', 'csv'] as const;
export type Format = (typeof FORMATS)[number];

/** One record of the file, read: its value, or why it could not be read. */
export interface SourceRecord {
  /** Its position among the file's records (1-based). */
  record: number;
  /** The line of the file where it starts (CSV: where it ends). */
  line: number;
  /** As in the file (text, or a CSV row's cells by column): what the rejects file keeps. */
  raw: unknown;
  value?: unknown;
  /** Why it could not be read (malformed JSON, a cell of the wrong type). */
  errors?: FieldError[];
}

/** The format a file name suggests. */
export function formatOf(file: string): Format | undefined {
  const extension = /\.([a-z]+)$/i.exec(file)?.[1]?.toLowerCase();
  if (extension === 'ndjson' || extension === 'jsonl') return 'ndjson';
  if (extension === 'json') return 'json';
  if (extension === 'csv') return 'csv';
  return undefined;
}

export interface Reading {
  records: AsyncGenerator<SourceRecord>;
  /** Bytes of the file read so far (for progress). */
  bytesRead(): number;
}

/** Reads `file` as `format`, record by record. */
export function readRecords(file: string, format: Format, mapping?: Mapping): Reading {
  const stream = createReadStream(file, { highWaterMark: 256 * 1024 });
  const reading = (() => {
    switch (format) {
      case 'ndjson':
        return ndjson(stream, mapping);
      case 'json':
        return jsonArray(stream, mapping);
      case 'csv':
        return csv(stream, mapping);
    }
  })();
  return { records: reading, bytesRead: () => stream.bytesRead };
}

/** A JSON text, read as a request body is; then through the mapping when there is one. */
function fromJson(text: Buffer, mapping: Mapping | undefined): Pick<SourceRecord, 'value' | 'errors'> {
  let value: unknown;
  try {
    value = parseJsonBody({ headers: {} }, text);
  } catch (error) {
    if (!(error instanceof AppError)) throw error;
    const errors = error.extensions.errors as FieldError[] | undefined;
    return {
      errors:
        Array.isArray(errors) && errors.length > 0
          ? errors.map((e) => ({ ...e, in: 'record' }))
          : [{ in: 'record', pointer: '', message: error.message }],
    };
  }
  if (mapping === undefined) return { value };
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    return { errors: [{ in: 'record', pointer: '', message: 'must be an object' }] };
  const mapped = applyMapping(mapping, value as Record<string, unknown>);
  return mapped.errors.length > 0 ? { errors: mapped.errors } : { value: mapped.value };
}

/**
 * Lines are split as latin1 text (one character a byte, so nothing is lost and a newline is the
 * byte 0x0A): split2 would decode UTF-8 leniently, turning invalid bytes into U+FFFD, where each
 * line's own bytes must reach the body parser, which refuses them as the API does.
 */
async function* ndjson(stream: NodeJS.ReadableStream, mapping: Mapping | undefined): AsyncGenerator<SourceRecord> {
  let line = 0;
  let record = 0;
  stream.setEncoding('latin1');
  for await (const text of stream.pipe(split2()) as AsyncIterable<string>) {
    line++;
    if (text.trim() === '') continue;
    record++;
    const bytes = Buffer.from(text, 'latin1');
    yield { record, line, raw: bytes.toString('utf8'), ...fromJson(bytes, mapping) };
  }
}

async function* jsonArray(stream: AsyncIterable<Buffer>, mapping: Mapping | undefined): AsyncGenerator<SourceRecord> {
  let record = 0;
  for await (const element of jsonArrayElements(stream)) {
    record++;
    yield { record, line: element.line, raw: element.bytes.toString('utf8'), ...fromJson(element.bytes, mapping) };
  }
}

/** Throws on a byte sequence that is not UTF-8. */
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A cell or column name csv-parse read as latin1 (one character a byte), as the UTF-8 it must be. */
const utf8Text = (latin1: string): string | undefined => {
  try {
    return utf8.decode(Buffer.from(latin1, 'latin1'));
  } catch {
    return undefined;
  }
};

/** The stream without a leading UTF-8 byte order mark. */
async function* withoutByteOrderMark(stream: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  let first = true;
  for await (const chunk of stream) {
    if (first && chunk[0] === 0xef && chunk[1] === 0xbb && chunk[2] === 0xbf) yield chunk.subarray(3);
    else yield chunk;
    first = false;
  }
}

/**
 * CSV rows. csv-parse would decode UTF-8 leniently (invalid bytes become U+FFFD) and, given a byte
 * order mark, whatever encoding it was told; so it reads latin1 (one character a byte, nothing
 * lost) after the mark is dropped here, and each name and cell is decoded strictly: a row with a
 * cell that is not UTF-8 is a reject naming its column, a header that is not stops the import.
 */
async function* csv(stream: AsyncIterable<Buffer>, mapping: Mapping | undefined): AsyncGenerator<SourceRecord> {
  const parser = Readable.from(withoutByteOrderMark(stream)).pipe(
    parseCsv({
      encoding: 'latin1',
      columns: (read: string[]) => {
        const header = read.map((name) => {
          const text = utf8Text(name);
          if (text === undefined) throw new MappingError('the header row is not UTF-8');
          return text;
        });
        const unmapped = mapping === undefined ? [] : unmappedColumns(mapping, header);
        if (unmapped.length > 0) {
          throw new MappingError(
            `the mapping neither maps nor ignores the column${unmapped.length === 1 ? '' : 's'} ` +
              `${unmapped.map((column) => JSON.stringify(column)).join(', ')}: map ${unmapped.length === 1 ? 'it' : 'them'} ` +
              'or list them under "ignore"',
          );
        }
        return header;
      },
      info: true,
      skip_empty_lines: true,
    }),
  );
  let record = 0;
  for await (const row of parser as AsyncIterable<{ record: Record<string, string>; info: { lines: number } }>) {
    record++;
    const cells: Record<string, string> = {};
    const errors: FieldError[] = [];
    for (const [column, latin1] of Object.entries(row.record)) {
      const text = utf8Text(latin1);
      cells[column] = text ?? Buffer.from(latin1, 'latin1').toString('utf8');
      if (text === undefined)
        errors.push({ in: 'record', pointer: `/${pointerToken(column)}`, message: `(column ${column}) is not UTF-8` });
    }
    const line = row.info.lines;
    if (errors.length > 0) {
      yield { record, line, raw: cells, errors };
      continue;
    }
    if (mapping === undefined) {
      yield { record, line, raw: cells, value: withoutEmptyCells(cells) };
      continue;
    }
    const mapped = applyMapping(mapping, cells);
    yield {
      record,
      line,
      raw: cells,
      ...(mapped.errors.length > 0 ? { errors: mapped.errors } : { value: mapped.value }),
    };
  }
}

/** A column name as a JSON Pointer token. */
const pointerToken = (name: string) => name.replace(/~/g, '~0').replace(/\//g, '~1');

/** Without a mapping, a CSV row's column names are fields and every cell is text; empty ones are left out. */
function withoutEmptyCells(cells: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(cells).filter(([, cell]) => cell !== ''));
}
