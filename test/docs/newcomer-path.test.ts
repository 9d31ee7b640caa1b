// A newcomer's path through the documentation: from README.md, every page of docs/ and
// docs/operations/ is at most two links away, so a page added without a way to reach it (or
// reachable only through a chain of pages) fails here until something near the top links it.

import { dirname, join, normalize } from 'node:path';
import { describe, expect, it } from 'vitest';
import { links, pagesIn, readPage } from './markdown.ts';

const PAGES = [...pagesIn('docs'), ...pagesIn('docs/operations')];
const MOST_CLICKS = 2;

/** The Markdown pages `path` links to, as paths from the repository's root. */
function linkedPages(path: string): string[] {
  return links(readPage(path))
    .map(({ target }) => target.split('#')[0] ?? '')
    .filter((target) => target.endsWith('.md') && !/^[a-z]+:/i.test(target))
    .map((target) => normalize(join(dirname(path), target)));
}

/** Clicks from README.md to each page reached, breadth first. */
function clicksFromReadme(): Map<string, number> {
  const clicks = new Map<string, number>([['README.md', 0]]);
  let frontier = ['README.md'];
  for (let depth = 1; depth <= MOST_CLICKS; depth++) {
    const next: string[] = [];
    for (const page of frontier)
      for (const linked of linkedPages(page))
        if (!clicks.has(linked)) {
          clicks.set(linked, depth);
          next.push(linked);
        }
    frontier = next;
  }
  return clicks;
}

describe("a newcomer's path through the documentation", () => {
  it(`reaches every page of docs/ from README.md in at most ${MOST_CLICKS} clicks`, () => {
    const clicks = clicksFromReadme();
    expect(PAGES.length).toBeGreaterThan(10);
    expect(PAGES.filter((page) => !clicks.has(page))).toEqual([]);
  });
});
