// What the docs tests read in a Markdown page: its fenced blocks (the info string's language and
// markers, and the line each starts on), its headings as GitHub anchors them, its relative links,
// and the repository paths it names. Only what these pages use: no Markdown library.

import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ROOT } from '../helpers/process.ts';

export interface FencedBlock {
  /** The info string's first word (`sh` of ```sh runnable), lower-cased; '' when there is none. */
  language: string;
  /** The info string's other words: `runnable` as { runnable: '' }, `exercised-by=F` as { 'exercised-by': 'F' }. */
  markers: Record<string, string>;
  /** The block's text, without its fences and the fence's indentation. */
  text: string;
  /** 1-based line of the opening fence. */
  line: number;
}

export interface Section {
  /** The heading's text, as written. */
  heading: string;
  level: number;
  /** Everything up to the next heading of the same or a higher level. */
  text: string;
}

export interface Page {
  /** Path from the repository's root, e.g. docs/operations/keys.md. */
  path: string;
  source: string;
  blocks: FencedBlock[];
  /** The page's text outside its fenced blocks. */
  prose: string;
}

export function readPage(path: string): Page {
  return parsePage(path, readFileSync(resolve(ROOT, path), 'utf8'));
}

/** A page from its text; `path` only names it in messages. */
export function parsePage(path: string, source: string): Page {
  return { path, source, ...splitFences(path, source) };
}

/** The Markdown files of a folder of the repository (not of its subfolders), sorted. */
export function pagesIn(folder: string): string[] {
  return readdirSync(resolve(ROOT, folder))
    .filter((name) => name.endsWith('.md'))
    .sort()
    .map((name) => join(folder, name));
}

const FENCE = /^( {0,3})(`{3,}|~{3,})(.*)$/;

function splitFences(path: string, source: string): { blocks: FencedBlock[]; prose: string } {
  const lines = source.split('\n');
  const blocks: FencedBlock[] = [];
  const prose: string[] = [];
  for (let index = 0; index < lines.length; index++) {
    const opening = FENCE.exec(lines[index] ?? '');
    if (opening === null) {
      prose.push(lines[index] ?? '');
      continue;
    }
    const [, indent = '', fence = '', info = ''] = opening;
    const line = index + 1;
    const [language = '', ...words] = info.trim().split(/\s+/);
    const markers: Record<string, string> = {};
    for (const word of words) {
      const equals = word.indexOf('=');
      if (equals < 0) markers[word] = '';
      else markers[word.slice(0, equals)] = word.slice(equals + 1);
    }
    const body: string[] = [];
    let closed = false;
    for (index++; index < lines.length; index++) {
      const text = lines[index] ?? '';
      // A closing fence: the same character, at least as many, nothing after it.
      if (text.trim().startsWith(fence) && new RegExp(`^\\s{0,3}\\${fence[0]}+\\s*$`).test(text)) {
        closed = true;
        break;
      }
      body.push(text.startsWith(indent) ? text.slice(indent.length) : text.trimStart());
    }
    if (!closed) throw new Error(`${path}:${line}: a fenced block that is never closed`);
    blocks.push({ language: language.toLowerCase(), markers, text: body.join('\n'), line });
  }
  return { blocks, prose: prose.join('\n') };
}

/** The page's headings (outside fenced blocks) with the text under each. */
export function sections(page: Page): Section[] {
  const lines = page.source.split('\n');
  const found: { heading: string; level: number; start: number }[] = [];
  let inFence: string | undefined;
  lines.forEach((text, index) => {
    const fence = FENCE.exec(text)?.[2];
    if (fence !== undefined) {
      if (inFence === undefined) inFence = fence[0];
      else if (fence.startsWith(inFence)) inFence = undefined;
      return;
    }
    const heading = inFence === undefined ? /^(#{1,6})\s+(.*?)\s*#*\s*$/.exec(text) : null;
    if (heading !== null) found.push({ heading: heading[2] ?? '', level: heading[1]?.length ?? 0, start: index });
  });
  return found.map(({ heading, level, start }, i) => {
    const next = found.slice(i + 1).find((other) => other.level <= level);
    return { heading, level, text: lines.slice(start + 1, next?.start ?? lines.length).join('\n') };
  });
}

/** The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces as hyphens, repeats numbered. */
export function anchors(page: Page): Set<string> {
  const seen = new Map<string, number>();
  const result = new Set<string>();
  for (const { heading } of sections(page)) {
    const slug = heading
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const count = seen.get(slug) ?? 0;
    seen.set(slug, count + 1);
    result.add(count === 0 ? slug : `${slug}-${count}`);
  }
  return result;
}

/** The targets of the page's Markdown links and images, outside code: `[text](target)`. */
export function links(page: Page): { target: string; line: number }[] {
  const found: { target: string; line: number }[] = [];
  let inFence: string | undefined;
  page.source.split('\n').forEach((text, index) => {
    const fence = FENCE.exec(text)?.[2];
    if (fence !== undefined) {
      if (inFence === undefined) inFence = fence[0];
      else if (fence.startsWith(inFence)) inFence = undefined;
      return;
    }
    if (inFence !== undefined) return;
    const outsideCode = text.replace(/`[^`]*`/g, '``');
    for (const match of outsideCode.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g))
      found.push({ target: match[1] ?? '', line: index + 1 });
  });
  return found;
}

/**
 * The paths under src/ and test/ the page names anywhere (prose, inline code, code blocks), as
 * paths from the repository's root: `src/data/query.ts`, `../../src/shop/` from a nested page.
 */
export function repositoryPaths(page: Page): { path: string; line: number }[] {
  const found: { path: string; line: number }[] = [];
  page.source.split('\n').forEach((text, index) => {
    // Not part of a longer path (examples/shop-tests/test/...), nor a package name (storekeeper/testing).
    for (const match of text.matchAll(/(?<![\w./@-])(?:\.\.\/)*((?:src|test)\/[\w./*-]*)/g)) {
      const path = (match[1] ?? '').replace(/[.]+$/, '');
      found.push({ path, line: index + 1 });
    }
  });
  return found;
}
