// `npm run ops:dashboard`: draws ops/grafana/storekeeper.json as ops/dashboard.svg from a real
// run, since no Grafana runs here. It starts the sandbox (`npm run sandbox`: the service with the
// demo data on a mongod of its own, as a process of its own, so that its CPU and memory panels are
// the service's alone), drives a minute of a shop's traffic at it (dashboard/load.ts), scrapes
// /metrics every 2 s as Prometheus would (job "storekeeper", instance "sandbox"), evaluates every
// panel's queries at each scrape in the PromQL subset the dashboard uses (dashboard/promql.ts) and
// writes the SVG (dashboard/svg.ts). A panel of a kind or with a query the subset cannot draw stops
// it before anything starts. `--save-samples FILE` keeps the scraped series and `--from-samples
// FILE` draws them again without a service: the same samples give the same SVG.

import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { errorMessage } from '../errors.ts';
import { driveLoad, readCatalog, type LoadReport, type Target } from './dashboard/load.ts';
import { DashboardError, evaluatePanel, rateInterval, readDashboard, type Dashboard } from './dashboard/panels.ts';
import { ScrapeStore, parseExposition } from './dashboard/scrapes.ts';
import { renderSvg } from './dashboard/svg.ts';

const REPO_DIR = fileURLToPath(new URL('../../', import.meta.url));
export const DASHBOARD_FILE = `${REPO_DIR}ops/grafana/storekeeper.json`;
const SVG_FILE = `${REPO_DIR}ops/dashboard.svg`;
const SANDBOX = fileURLToPath(new URL('./sandbox.ts', import.meta.url));

export const SCRAPE_INTERVAL_MS = 2000;
const SCRAPE_TIMEOUT_MS = 1500;
// Under Wine a cold mongod takes seconds, more on a busy machine.
const SANDBOX_START_TIMEOUT_MS = 180_000;
const SANDBOX_STOP_TIMEOUT_MS = 60_000;

const USAGE = `usage: npm run ops:dashboard -- [--seconds N] [--out FILE] [--save-samples FILE | --from-samples FILE]
  Draws ${DASHBOARD_FILE.slice(REPO_DIR.length)} as ${SVG_FILE.slice(REPO_DIR.length)} from a sandbox under load.
  --seconds N          seconds of load (default 60)
  --out FILE           where the SVG goes (default ${SVG_FILE.slice(REPO_DIR.length)})
  --save-samples FILE  also write the scraped series there (JSON)
  --from-samples FILE  draw series saved by --save-samples, starting nothing`;

const log = (line: string) => process.stderr.write(`ops:dashboard: ${line}\n`);

/** The dashboard as the renderer reads it; its problems, each naming a panel, if it cannot be drawn. */
export async function loadDashboard(): Promise<Dashboard> {
  return readDashboard(JSON.parse(await readFile(DASHBOARD_FILE, 'utf8')), SCRAPE_INTERVAL_MS);
}

interface Sandbox {
  target: Target;
  stop(): Promise<void>;
}

/** `npm run sandbox` as a child process in a process group of its own: only this process stops it. */
async function startSandbox(): Promise<Sandbox> {
  const child = spawn(process.execPath, ['--import', 'tsx', SANDBOX], {
    cwd: REPO_DIR,
    // As under npm, it stops by itself if this process dies without stopping it.
    env: { ...process.env, LOG_LEVEL: 'warn', npm_lifecycle_event: 'ops:dashboard' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let output = '';
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), SANDBOX_STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
  };
  try {
    const target = await new Promise<Target>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the sandbox did not start in time')), SANDBOX_START_TIMEOUT_MS);
      let url: string | undefined;
      createInterface({ input: child.stdout }).on('line', (line) => {
        output += `${line}\n`;
        url ??= /^\s*URL:\s+(\S+)/.exec(line)?.[1];
        const apiKey = /^\s*Key:\s+(\S+)/.exec(line)?.[1];
        if (url !== undefined && apiKey !== undefined) {
          clearTimeout(timer);
          resolve({ url, apiKey });
        }
      });
      void exited.then(() => {
        clearTimeout(timer);
        reject(new Error(`the sandbox exited (${String(child.exitCode ?? child.signalCode)}):\n${output}`));
      });
    });
    return { target, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Scrapes `target` at 0, 2, 4... s from `origin` until `until` resolves, into a new store. */
function scrapeEvery(target: Target, origin: number, store: ScrapeStore, until: Promise<unknown>) {
  const state = { done: false };
  void until.finally(() => (state.done = true));
  return (async () => {
    for (let k = 0; ; k++) {
      const wait = origin + k * SCRAPE_INTERVAL_MS - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      if (state.done && k > 0) return;
      // The scrape's time is when it began, as Prometheus stamps it.
      const t = Math.round(performance.now() - origin);
      try {
        const response = await fetch(`${target.url}/metrics`, {
          headers: { authorization: `Bearer ${target.apiKey}` },
          signal: AbortSignal.timeout(SCRAPE_TIMEOUT_MS),
        });
        if (response.status !== 200) throw new Error(`answered ${response.status}`);
        store.add(t, parseExposition(await response.text()));
      } catch (error) {
        // Prometheus would record up == 0 and mark every series stale: the panels show the gap.
        log(`the scrape at ${t} ms failed (${errorMessage(error)}): the panels have a gap there`);
        store.add(t, []);
      }
    }
  })();
}

function describeLoad(report: LoadReport): string {
  const lines = Object.entries(report.answered)
    .sort(([a], [b]) => a.localeCompare(b, 'en'))
    .map(([kind, byStatus]) => {
      const statuses = Object.entries(byStatus).map(([status, count]) => `${count} × ${status}`);
      return `  ${kind}: ${statuses.join(', ')}`;
    });
  return [...lines, `  no answer: ${report.failed}; not sent (too many in flight): ${report.skipped}`].join('\n');
}

async function scrapeUnderLoad(seconds: number): Promise<ScrapeStore> {
  log('starting the sandbox (the service and a mongod with the demo data)');
  const sandbox = await startSandbox();
  const stopOnSignal = () => void sandbox.stop().finally(() => process.exit(130));
  process.once('SIGINT', stopOnSignal);
  process.once('SIGTERM', stopOnSignal);
  try {
    log(`sandbox at ${sandbox.target.url}; reading its catalog`);
    const catalog = await readCatalog(sandbox.target);
    const store = new ScrapeStore({ job: 'storekeeper', instance: 'sandbox' });
    const origin = performance.now();
    log(`${seconds} s of load, /metrics scraped every ${SCRAPE_INTERVAL_MS / 1000} s`);
    // The first scrape, at 0, is the service before the load.
    const load = new Promise((resolve) => setTimeout(resolve, 10)).then(() =>
      driveLoad(sandbox.target, catalog, seconds),
    );
    const scraping = scrapeEvery(sandbox.target, origin, store, load);
    const report = await load;
    await scraping;
    log(`requests answered, by kind:\n${describeLoad(report)}`);
    return store;
  } finally {
    process.removeListener('SIGINT', stopOnSignal);
    process.removeListener('SIGTERM', stopOnSignal);
    log('stopping the sandbox');
    await sandbox.stop();
  }
}

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      seconds: { type: 'string', default: '60' },
      out: { type: 'string', default: SVG_FILE },
      'save-samples': { type: 'string' },
      'from-samples': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) {
    console.log(USAGE);
    return 0;
  }
  const seconds = Number(values.seconds);
  if (!Number.isInteger(seconds) || seconds < 10 || seconds > 600) {
    process.stderr.write(`ops:dashboard: --seconds must be a whole number from 10 to 600\n${USAGE}\n`);
    return 2;
  }

  // Checked first: a panel the rendering cannot draw costs no sandbox.
  const dashboard = await loadDashboard();
  const store =
    values['from-samples'] !== undefined
      ? ScrapeStore.load(JSON.parse(await readFile(values['from-samples'], 'utf8')) as ReturnType<ScrapeStore['save']>)
      : await scrapeUnderLoad(seconds);
  if (values['save-samples'] !== undefined)
    await writeFile(values['save-samples'], `${JSON.stringify(store.save())}\n`);

  const steps = store.scrapeTimes;
  const panels = dashboard.panels
    .filter((panel) => panel.type !== 'row')
    .map((panel) => ({ panel, series: evaluatePanel(panel, store, steps) }));
  const lastSecond = Math.round((steps.at(-1) ?? 0) / 1000);
  const svg = renderSvg({
    dashboard,
    steps,
    panels,
    subtitle: [
      `npm run ops:dashboard: the sandbox (demo data) under ${lastSecond} s of reads, lists, orders and their refusals;`,
      `/metrics scraped every ${SCRAPE_INTERVAL_MS / 1000} s, each query evaluated at every scrape, ` +
        `$__rate_interval = ${rateInterval(SCRAPE_INTERVAL_MS) / 1000}s. Times: seconds since the load began.`,
    ],
  });
  await writeFile(values.out, svg);
  const empty = panels.filter(({ series }) => !series.some((s) => s.values.some((v) => v !== null)));
  log(`wrote ${values.out} (${svg.length} bytes, ${panels.length} panels, ${steps.length} steps)`);
  if (empty.length > 0)
    log(`panels with no data (nothing of theirs happened): ${empty.map(({ panel }) => panel.title).join('; ')}`);
  return 0;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error: unknown) => {
      if (error instanceof DashboardError)
        process.stderr.write(`ops:dashboard: the dashboard cannot be drawn:\n${error.message}\n`);
      else
        process.stderr.write(
          `ops:dashboard: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
        );
      process.exit(1);
    },
  );
}
