// The runbooks of docs/operations/ run as written. Every fenced block of a page that is not output
// or data is a command block, and says how it is checked:
//   ```sh env                 the variables the page asks the operator to export: only names this
//                             test can give (a shop's URL, its instances, a key, its database);
//                             nothing of it is run;
//   ```sh runnable            run, in page order, by one bash per page (set -euo pipefail, so a
//                             command that fails, or a variable the page never set, fails the block)
//                             against a shop of its own (startShop on the test replica set), with the
//                             exported variables set to that shop's and nothing else of this process;
//   ```sh exercised-by=F operation=W
//                             cannot run on one node (stepping a primary down): F is a test file that
//                             performs W, and the block's command names W too.
// Besides: each alert of ops/prometheus/alerts.yml has its section in dashboard-and-alerts.md with its
// expression, and each panel of the Grafana dashboard is named there; each migration has its row in
// migration-rollback.md; the index lists every runbook; the log messages quoted are the service's;
// and every metric the pages name is one the running shop's /metrics declares.
// RUNBOOK_DEBUG=1 prints what each block printed, to write a page's sample output from.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { parse } from 'yaml';
import { describe, expect, inject, it } from 'vitest';
import { exposedNames } from '../../src/cli/ops-check.ts';
import { startShop } from '../../src/testing/index.ts';
import { getPort } from '../helpers/net.ts';
import { ROOT } from '../helpers/process.ts';
import { pagesIn, parsePage, readPage, sections, type FencedBlock, type Page } from './markdown.ts';

const FOLDER = 'docs/operations';
const PAGES = pagesIn(FOLDER).map(readPage);
const RUNBOOKS = PAGES.filter((page) => basename(page.path) !== 'README.md');

/** Blocks that show output or data: nothing in them is run. */
const NOT_COMMANDS = new Set(['text', 'json', 'yaml', 'promql', 'http']);
/** What a page may ask to export, and what each is on the page's shop. */
const PROVIDED = ['STOREKEEPER_URL', 'STOREKEEPER_INSTANCES', 'KEY', 'MONGODB_URI', 'MONGODB_DB'] as const;
type Provided = (typeof PROVIDED)[number];
/** How long one page's commands may take, all together. */
const PAGE_TIMEOUT_MS = 150_000;

const runnableBlocks = (page: Page) => page.blocks.filter((block) => 'runnable' in block.markers);

/** The names an env block exports; throws on any line that is not an export or a comment. */
function exportedBy(page: Page, block: FencedBlock): string[] {
  return block.text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const name = /^export ([A-Z_][A-Z0-9_]*)=/.exec(line)?.[1];
      if (name === undefined) throw new Error(`${page.path}:${block.line}: an env block only exports, got: ${line}`);
      return name;
    });
}

function declaredVariables(page: Page): Provided[] {
  const names = page.blocks.filter((block) => 'env' in block.markers).flatMap((block) => exportedBy(page, block));
  const unknown = names.filter((name) => !(PROVIDED as readonly string[]).includes(name));
  if (unknown.length > 0)
    throw new Error(
      `${page.path} asks for ${unknown.join(', ')}, which the docs test cannot give (${PROVIDED.join(', ')})`,
    );
  return names as Provided[];
}

/** What is wrong with how a page marks its command blocks. */
function markingProblems(page: Page): string[] {
  const problems: string[] = [];
  for (const block of page.blocks) {
    const where = `${page.path}:${block.line}`;
    const kinds = ['runnable', 'exercised-by', 'env'].filter((marker) => marker in block.markers);
    if (NOT_COMMANDS.has(block.language)) {
      if (kinds.length > 0)
        problems.push(`${where}: a ${block.language} block is not a command, yet marked ${kinds[0]}`);
      continue;
    }
    if (block.language === '') problems.push(`${where}: a block without a language: output is \`\`\`text`);
    if (kinds.length !== 1) {
      problems.push(`${where}: a ${block.language} block must be marked runnable, exercised-by=FILE or env`);
      continue;
    }
    const file = block.markers['exercised-by'];
    if (file === undefined) continue;
    const operation = block.markers.operation ?? '';
    if (operation === '') problems.push(`${where}: exercised-by needs operation=WORD, what the command performs`);
    else if (!block.text.includes(operation)) problems.push(`${where}: the command does not name ${operation}`);
    if (!existsSync(resolve(ROOT, file))) problems.push(`${where}: ${file} does not exist`);
    else if (operation !== '' && !readFileSync(resolve(ROOT, file), 'utf8').includes(operation))
      problems.push(`${where}: ${file} does not perform ${operation}`);
  }
  return problems;
}

interface BlockRun {
  block: FencedBlock;
  output: string;
}

/**
 * Runs the page's runnable blocks in order in one bash, so that what one block sets the next can
 * use; resolves with each block's output, and the block it stopped in when one failed.
 */
async function runPage(
  page: Page,
  variables: Record<string, string>,
  scratch: string,
): Promise<{ runs: BlockRun[]; failed?: { block: FencedBlock; output: string; reason: string } }> {
  const blocks = runnableBlocks(page);
  const tag = `@@runbook-${randomBytes(4).toString('hex')}`;
  const script = [
    'set -euo pipefail',
    'exec 2>&1',
    `trap 'printf "\\n${tag}-failed: exit %s: %s\\n" "$?" "$BASH_COMMAND"' ERR`,
    ...blocks.flatMap((block, index) => [`printf '\\n${tag} %s\\n' ${index}`, block.text]),
    `printf '\\n${tag} done\\n'`,
  ].join('\n');
  const file = join(scratch, 'runbook.sh');
  await writeFile(file, `${script}\n`);
  const passed = Object.fromEntries(
    ['PATH', 'HOME', 'XDG_CACHE_HOME', 'MONGOD_BINARY', 'MONGOMS_SYSTEM_BINARY'].flatMap((name) =>
      process.env[name] === undefined ? [] : [[name, process.env[name]]],
    ),
  );
  const child = spawn('bash', [file], {
    cwd: ROOT,
    env: {
      ...passed,
      LANG: 'C.UTF-8',
      NO_COLOR: '1',
      TMPDIR: scratch,
      // A page that forgot MONGODB_URI must not reach the working tree's embedded database.
      DATA_DIR: join(scratch, 'data'),
      EMBEDDED_MONGODB_PORT: String(await getPort()),
      ...variables,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), PAGE_TIMEOUT_MS);
  const code = await new Promise<number | null>((done) => child.on('close', (exit) => done(exit)));
  clearTimeout(timer);
  try {
    // What a failed block started in the background (a service) must not outlive the page.
    process.kill(-child.pid!, 'SIGKILL');
  } catch {
    // Nothing left of the group.
  }

  const runs: BlockRun[] = [];
  const parts = output.split(new RegExp(`\\n${tag} `));
  for (const part of parts.slice(1)) {
    const [head = '', ...rest] = part.split('\n');
    const index = Number(head);
    const block = blocks[index];
    if (block !== undefined) runs.push({ block, output: rest.join('\n') });
  }
  const done = output.includes(`\n${tag} done\n`);
  if (code === 0 && done) return { runs };
  const last = runs.at(-1);
  const failure = /failed: exit (\d+): (.*)/.exec(last?.output ?? '');
  return {
    runs,
    failed: {
      block: last?.block ?? blocks[0]!,
      output: last?.output ?? output,
      reason:
        failure === null
          ? `bash exited ${code ?? 'by a signal (over the page timeout?)'}`
          : `\`${failure[2]}\` exited ${failure[1]}`,
    },
  };
}

describe('the runbooks test itself', () => {
  const fence = '```';
  it('refuses an unmarked command block, an operation its test does not perform, and a variable it cannot give', () => {
    const page = parsePage(
      'example.md',
      [
        `${fence}sh`,
        'npm run keys -- list',
        fence,
        `${fence}sh exercised-by=test/faults/cluster.ts operation=replSetFreeze`,
        'mongosh --eval "db.adminCommand({ replSetFreeze: 60 })"',
        fence,
        `${fence}sh env`,
        'export SOMEWHERE=elsewhere',
        fence,
        `${fence}text`,
        'output, never run',
        fence,
      ].join('\n'),
    );
    expect(markingProblems(page)).toEqual([
      'example.md:1: a sh block must be marked runnable, exercised-by=FILE or env',
      'example.md:4: test/faults/cluster.ts does not perform replSetFreeze',
    ]);
    expect(() => declaredVariables(page)).toThrow(/asks for SOMEWHERE/);
  });

  it('stops a page at the first command that fails, and says which', async () => {
    const page = parsePage(
      'example.md',
      [
        `${fence}sh runnable`,
        'GREETING=hello',
        fence,
        `${fence}sh runnable`,
        'echo "$GREETING"',
        'false',
        'echo never',
        fence,
        `${fence}sh runnable`,
        'echo never either',
        fence,
      ].join('\n'),
    );
    const scratch = await mkdtemp(join(tmpdir(), 'runbook-'));
    try {
      const { runs, failed } = await runPage(page, {}, scratch);
      expect(runs.map((run) => run.block.line)).toEqual([1, 4]);
      expect(runs[1]?.output).toContain('hello');
      expect(runs[1]?.output).not.toContain('never');
      expect(failed).toMatchObject({ block: { line: 4 }, reason: '`false` exited 1' });
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  });
});

describe('the runbooks in docs/operations/', () => {
  it('are there, and the index links every one of them', () => {
    expect(RUNBOOKS.length).toBeGreaterThan(0);
    const index = PAGES.find((page) => basename(page.path) === 'README.md');
    expect(index, `${FOLDER}/README.md, the index`).toBeDefined();
    const unlisted = RUNBOOKS.map((page) => basename(page.path)).filter(
      (name) => !index!.source.includes(`](${name})`),
    );
    expect(unlisted).toEqual([]);
  });

  it.each(PAGES.map((page) => [page.path, page] as const))(
    '%s: every command block is marked runnable, exercised-by a test that performs it, or env',
    (_path, page) => {
      expect(markingProblems(page)).toEqual([]);
      expect(() => declaredVariables(page)).not.toThrow();
    },
  );

  it('quote only log messages the service writes', () => {
    const sources = readdirSync(resolve(ROOT, 'src'), { recursive: true, encoding: 'utf8' })
      .filter((name) => name.endsWith('.ts'))
      .map((name) => readFileSync(resolve(ROOT, 'src', name), 'utf8'))
      .join('\n');
    const quoted = PAGES.flatMap((page) =>
      [...page.source.matchAll(/"msg":"([^"]+)"/g)].map((match) => ({ page: page.path, msg: match[1] ?? '' })),
    );
    expect(quoted.length).toBeGreaterThan(0);
    expect(quoted.filter(({ msg }) => !sources.includes(msg))).toEqual([]);
  });

  describe('dashboard-and-alerts.md', () => {
    const page = PAGES.find((candidate) => basename(candidate.path) === 'dashboard-and-alerts.md');
    const rules = (
      parse(readFileSync(resolve(ROOT, 'ops/prometheus/alerts.yml'), 'utf8')) as {
        groups: { rules: { alert?: string; expr: string }[] }[];
      }
    ).groups.flatMap((group) => group.rules.filter((rule) => rule.alert !== undefined));

    it('exists', () => {
      expect(page).toBeDefined();
    });

    it.each(rules.map((rule) => [rule.alert!, rule] as const))(
      'has a section on %s with its expression and the runbook to follow',
      (alert, rule) => {
        const section = sections(page!).find((candidate) => candidate.heading === alert);
        expect(section, `a heading "${alert}"`).toBeDefined();
        const shown = readPage(page!.path).blocks.filter(
          (block) => block.language === 'promql' && section!.text.includes(block.text),
        );
        const normalize = (text: string) => text.replace(/\s+/g, ' ').trim();
        expect(shown.map((block) => normalize(block.text))).toContain(normalize(rule.expr));
        expect(section!.text).toMatch(/\]\([a-z-]+\.md(#[a-z0-9-]+)?\)/);
      },
    );

    it('has no section on an alert that is gone', () => {
      const names = new Set(rules.map((rule) => rule.alert));
      const stale = sections(page!)
        .map((section) => section.heading)
        .filter((heading) => /^Storekeeper[A-Za-z0-9]+$/.test(heading) && !names.has(heading));
      expect(stale).toEqual([]);
    });

    it('names every panel of the Grafana dashboard', () => {
      const dashboard = JSON.parse(readFileSync(resolve(ROOT, 'ops/grafana/storekeeper.json'), 'utf8')) as {
        panels: { title: string; type: string; panels?: { title: string }[] }[];
      };
      const titles = dashboard.panels.flatMap((panel) => [panel.title, ...(panel.panels ?? []).map((p) => p.title)]);
      expect(titles.filter((title) => !page!.source.includes(title))).toEqual([]);
    });
  });

  it('migration-rollback.md says of every migration what rolling it back does', () => {
    const page = PAGES.find((candidate) => basename(candidate.path) === 'migration-rollback.md');
    expect(page).toBeDefined();
    const migrations = readdirSync(resolve(ROOT, 'migrations')).filter((name) => name.endsWith('.js'));
    expect(migrations.filter((name) => !page!.source.includes(`\`${name}\``))).toEqual([]);
  });

  describe('run as written', () => {
    it.each(RUNBOOKS.filter((page) => runnableBlocks(page).length > 0).map((page) => [page.path, page] as const))(
      '%s',
      { timeout: PAGE_TIMEOUT_MS + 60_000 },
      async (_path, page) => {
        const shop = await startShop({
          mongodbUri: inject('mongoUri'),
          seed: { products: 20, customers: 5 },
          fixtures: { customers: [{ email: 'ada@example.com', name: 'Ada Lovelace' }] },
        });
        const scratch = await mkdtemp(join(tmpdir(), 'runbook-'));
        const values: Record<Provided, string> = {
          STOREKEEPER_URL: shop.url,
          STOREKEEPER_INSTANCES: shop.url,
          KEY: shop.apiKey,
          MONGODB_URI: inject('mongoUri'),
          MONGODB_DB: shop.db.databaseName,
        };
        const variables = Object.fromEntries(declaredVariables(page).map((name) => [name, values[name]]));
        try {
          const { runs, failed } = await runPage(page, variables, scratch);
          if (process.env.RUNBOOK_DEBUG)
            for (const run of runs) console.log(`--- ${page.path}:${run.block.line}\n${run.output}`);
          if (failed !== undefined) {
            const tail = failed.output.split('\n').slice(-60).join('\n');
            expect.fail(
              `${page.path}:${failed.block.line}: ${failed.reason}\n--- the block ---\n${failed.block.text}\n` +
                `--- its output ---\n${tail}`,
            );
          }
          expect(runs.map((run) => run.block.line)).toEqual(runnableBlocks(page).map((block) => block.line));

          // Every metric the page names is one this shop declares: a name of one of its families
          // (storekeeper_mongodb_..., not a database called storekeeper_drill).
          const metrics = await fetch(`${shop.url}/metrics`, { headers: { authorization: `Bearer ${shop.apiKey}` } });
          const exposed = exposedNames(await metrics.text());
          const families = new Set([...exposed].map((name) => name.split('_')[1]));
          const named = new Set(
            [...page.source.matchAll(/\bstorekeeper_([a-z0-9]+)[a-z0-9_]*[a-z0-9]\b/g)]
              .filter((match) => families.has(match[1]))
              .map((match) => match[0]),
          );
          expect([...named].filter((name) => !exposed.has(name))).toEqual([]);
        } finally {
          // The page's databases go when it ends, not with the file: the test replica set is every
          // test file's, and each database costs it open files.
          const client = shop.db.client;
          const { databases } = await client.db('admin').admin().listDatabases({ nameOnly: true });
          for (const { name } of databases)
            if (name.startsWith(`${shop.db.databaseName}_`)) await client.db(name).dropDatabase();
          await shop.stop();
          await rm(scratch, { recursive: true, force: true });
        }
      },
    );
  });
});
