// A JSON array read as a stream of its elements' text, so a file of any size is imported in the
// memory of one element. None of the installed packages does this (csv-parse and split2 split
// lines; the JSON parsers read whole documents), and a streaming JSON tokenizer would build every
// value token by token where the element's bytes, handed whole to the same parser as a request
// body, are what the import needs. So this splitter only finds where each top-level element
// starts and ends (strings, escapes and nesting followed byte by byte) and leaves reading it to
// that parser; what is malformed inside an element is that element's reject, what is malformed
// around them (no opening bracket, text after the closing one) ends the import.

export interface ArrayElement {
  /** The element's bytes, as in the file. */
  bytes: Buffer;
  /** Line of the file where the element starts (1-based). */
  line: number;
}

/** The file is not one JSON array: where and why. */
export class JsonArrayError extends Error {
  override name = 'JsonArrayError';
}

const SPACE = new Set([0x20, 0x09, 0x0a, 0x0d]);
const OPEN = new Set([0x5b, 0x7b]);
const CLOSE = new Set([0x5d, 0x7d]);

/** Splits a byte stream holding one JSON array into its elements, in order. */
export async function* jsonArrayElements(chunks: AsyncIterable<Buffer>): AsyncGenerator<ArrayElement> {
  let line = 1;
  // before: nothing read yet; between: inside the array, between elements; after: past its end.
  let state: 'before' | 'between' | 'element' | 'after' = 'before';
  let depth = 0;
  let inString = false;
  let escaped = false;
  let parts: Buffer[] = [];
  let start = 0;
  let startLine = 1;
  let afterComma = false;
  let bom = true;

  const fail = (what: string): never => {
    throw new JsonArrayError(`the file is not a JSON array: ${what} (line ${line})`);
  };

  for await (const chunk of chunks) {
    let index = 0;
    if (bom && chunk.length >= 3 && chunk[0] === 0xef && chunk[1] === 0xbb && chunk[2] === 0xbf) index = 3;
    bom = false;
    start = state === 'element' ? 0 : index;
    for (; index < chunk.length; index++) {
      const byte = chunk[index] as number;
      if (byte === 0x0a) line++;
      if (state === 'element') {
        if (inString) {
          if (escaped) escaped = false;
          else if (byte === 0x5c) escaped = true;
          else if (byte === 0x22) inString = false;
          continue;
        }
        if (byte === 0x22) inString = true;
        else if (OPEN.has(byte)) depth++;
        else if (CLOSE.has(byte) && depth > 0) depth--;
        else if (depth === 0 && (byte === 0x2c || byte === 0x5d)) {
          parts.push(chunk.subarray(start, index));
          yield { bytes: trimEnd(Buffer.concat(parts)), line: startLine };
          parts = [];
          afterComma = byte === 0x2c;
          state = byte === 0x2c ? 'between' : 'after';
        }
        continue;
      }
      if (SPACE.has(byte)) continue;
      if (state === 'before') {
        if (byte !== 0x5b) fail('it does not start with [');
        state = 'between';
      } else if (state === 'between') {
        if (byte === 0x5d && !afterComma) {
          state = 'after';
          continue;
        }
        if (byte === 0x2c || byte === 0x5d) fail('an element is missing');
        state = 'element';
        start = index;
        startLine = line;
        depth = OPEN.has(byte) ? 1 : 0;
        inString = byte === 0x22;
        escaped = false;
        afterComma = false;
      } else fail('there is more after the closing ]');
    }
    if (state === 'element') parts.push(Buffer.from(chunk.subarray(start)));
  }
  // Read through a wider type: the compiler cannot follow the assignments across the yields.
  const ended: string = state;
  if (ended === 'before') fail('it is empty');
  if (ended !== 'after') fail('it ends before its closing ]');
}

function trimEnd(bytes: Buffer): Buffer {
  let end = bytes.length;
  while (end > 0 && SPACE.has(bytes[end - 1] as number)) end--;
  return bytes.subarray(0, end);
}
