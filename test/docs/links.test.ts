// The documentation points at things that exist: every path under src/ or test/ that a page of
// docs/ or docs/operations/ names, and every relative link (and its #anchor) of those pages. A file
// moved or renamed in the code fails here until the pages that name it follow.

import { existsSync, readdirSync } from 'node:fs';
import { dirname, join, normalize, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/process.ts';
import { anchors, links, pagesIn, readPage, repositoryPaths } from './markdown.ts';

const PAGES = [...pagesIn('docs'), ...pagesIn('docs/operations')];

/** Whether a path from the root exists; a `*` stands for any characters within one name. */
function exists(path: string): boolean {
  if (!path.includes('*')) return existsSync(resolve(ROOT, path));
  const [before = ''] = path.split('*');
  const folder = before.endsWith('/') ? before : dirname(before);
  const pattern = new RegExp(
    `^${relative(folder, path)
      .replace(/[.+?^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '[^/]*')}$`,
  );
  return existsSync(resolve(ROOT, folder)) && readdirSync(resolve(ROOT, folder)).some((name) => pattern.test(name));
}

describe('the documentation points at what exists', () => {
  it('finds the pages', () => {
    expect(PAGES).toContain('docs/operations.md');
    expect(PAGES).toContain('docs/operations/README.md');
  });

  it.each(PAGES)('%s: every src/ and test/ path it names exists', (path) => {
    const missing = repositoryPaths(readPage(path))
      .filter((found) => !exists(found.path))
      .map((found) => `${path}:${found.line}: ${found.path}`);
    expect(missing).toEqual([]);
  });

  it.each(PAGES)('%s: every relative link leads to a file, and every #anchor to a heading', (path) => {
    const page = readPage(path);
    const broken: string[] = [];
    for (const { target, line } of links(page)) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:
      const [file = '', anchor] = target.split('#');
      const linked = file === '' ? path : normalize(join(dirname(path), decodeURI(file)));
      if (linked.startsWith('..') || !existsSync(resolve(ROOT, linked))) {
        broken.push(`${path}:${line}: ${target} (no ${linked})`);
        continue;
      }
      if (anchor !== undefined && anchor !== '' && linked.endsWith('.md') && !anchors(readPage(linked)).has(anchor))
        broken.push(`${path}:${line}: ${target} (no heading of ${linked} is anchored #${anchor})`);
    }
    expect(broken).toEqual([]);
  });
});
