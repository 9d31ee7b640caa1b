// `npm run ops:check`: checks ops/ against the service. The alert rules (ops/prometheus/alerts.yml)
// are validated by promtool when it is on the PATH (Debian's prometheus package; `-- --promtool`
// makes its absence a failure) and always by the checks below (structure, names, durations,
// severities); and every metric name the rules and the Grafana dashboard (ops/grafana/*.json) use
// must be one a running app exposes: the app is built in this process on a throwaway database
// (MONGODB_URI's deployment, or an embedded mongod started for the check) and /metrics is read.

import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

const OPS_DIR = fileURLToPath(new URL('../../ops/', import.meta.url));
export const RULES_FILE = `${OPS_DIR}prometheus/alerts.yml`;
export const DASHBOARD_DIR = `${OPS_DIR}grafana/`;

/** Names Prometheus makes up itself for every target: no /metrics has them. */
const PROMETHEUS_OWN = new Set(['up']);
const SEVERITIES = new Set(['critical', 'warning', 'info']);
const DURATION = /^(\d+(ms|s|m|h|d|w|y))+$/;

/** The metric names a PromQL expression reads: ours (storekeeper_*) and Prometheus's own it uses. */
export function metricNamesIn(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""') // label values
    .replace(/\{[^}]*\}/g, '{}') // label matchers
    .replace(/\[[^\]]*\]/g, '[]') // ranges
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ''); // label lists
  const names = new Set<string>();
  for (const [token] of bare.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g))
    if (token.startsWith('storekeeper_') || PROMETHEUS_OWN.has(token)) names.add(token);
  return [...names];
}

interface Rule {
  alert?: unknown;
  record?: unknown;
  expr?: unknown;
  for?: unknown;
  labels?: Record<string, unknown>;
  annotations?: Record<string, unknown>;
}

/** What is wrong with a rules document, beyond what YAML itself allows; and the expressions it holds. */
export function checkRules(document: unknown): { problems: string[]; exprs: string[] } {
  const problems: string[] = [];
  const exprs: string[] = [];
  const groups = (document as { groups?: unknown } | null)?.groups;
  if (!Array.isArray(groups) || groups.length === 0) return { problems: ['no groups'], exprs };
  const groupNames = new Set<string>();
  const alerts = new Set<string>();
  for (const group of groups as { name?: unknown; rules?: unknown }[]) {
    const name = typeof group.name === 'string' ? group.name : '';
    if (name === '') problems.push('a group without a name');
    if (groupNames.has(name)) problems.push(`group ${name}: named twice`);
    groupNames.add(name);
    if (!Array.isArray(group.rules) || group.rules.length === 0) {
      problems.push(`group ${name}: no rules`);
      continue;
    }
    for (const rule of group.rules as Rule[]) {
      const id = typeof rule.alert === 'string' ? rule.alert : typeof rule.record === 'string' ? rule.record : '?';
      if (typeof rule.alert === 'string') {
        if (alerts.has(rule.alert)) problems.push(`${id}: an alert of that name exists already`);
        alerts.add(rule.alert);
        if (!SEVERITIES.has(String(rule.labels?.severity)))
          problems.push(`${id}: labels.severity must be one of ${[...SEVERITIES].join(', ')}`);
        if (typeof rule.annotations?.summary !== 'string' || rule.annotations.summary.trim() === '')
          problems.push(`${id}: no annotations.summary`);
      } else if (typeof rule.record !== 'string') {
        problems.push(`group ${name}: a rule that is neither an alert nor a recording rule`);
      }
      if (rule.for !== undefined && !(typeof rule.for === 'string' && DURATION.test(rule.for)))
        problems.push(`${id}: for must be a duration such as 5m`);
      if (typeof rule.expr !== 'string' || rule.expr.trim() === '') {
        problems.push(`${id}: no expr`);
        continue;
      }
      exprs.push(rule.expr);
      let depth = 0;
      for (const char of rule.expr.replace(/"(?:[^"\\]|\\.)*"/g, '')) {
        if (char === '(') depth++;
        if (char === ')' && --depth < 0) break;
      }
      if (depth !== 0) problems.push(`${id}: unbalanced parentheses in expr`);
    }
  }
  return { problems, exprs };
}

/** Every query of a Grafana dashboard, rows' panels included. */
export function dashboardExprs(dashboard: unknown): string[] {
  const exprs: string[] = [];
  const visit = (panels: unknown) => {
    if (!Array.isArray(panels)) return;
    for (const panel of panels as { targets?: { expr?: unknown }[]; panels?: unknown }[]) {
      for (const target of panel.targets ?? []) if (typeof target.expr === 'string') exprs.push(target.expr);
      visit(panel.panels);
    }
  };
  visit((dashboard as { panels?: unknown } | null)?.panels);
  return exprs;
}

/** The series names a /metrics text declares (a histogram's _bucket, _sum and _count), observed yet or not. */
export function exposedNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const [, name = '', type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    names.add(name);
    if (type === 'histogram' || type === 'summary') {
      names.add(`${name}_sum`);
      names.add(`${name}_count`);
      if (type === 'histogram') names.add(`${name}_bucket`);
    }
  }
  return names;
}

/** promtool's verdict on the rules, or undefined when it is not installed. */
function promtool(file: string): { ok: boolean; output: string } | undefined {
  const run = spawnSync('promtool', ['check', 'rules', file], { encoding: 'utf8' });
  if (run.error !== undefined) return undefined;
  return { ok: run.status === 0, output: `${run.stdout}${run.stderr}`.trim() };
}

/** GET /metrics of the app, built in this process on a throwaway database. */
async function scrapeRunningApp(log: (line: string) => void): Promise<string> {
  const [{ default: mongoose }, { buildApp }, { loadConfig }, { createLogger }, { migrateUp }, { ApiKeyStore }] =
    await Promise.all([
      import('mongoose'),
      import('../app.ts'),
      import('../config.ts'),
      import('../logger.ts'),
      import('../data/migrations.ts'),
      import('../data/api-keys.ts'),
    ]);
  let embedded: { uri: string; stop(): Promise<void> } | undefined;
  let uri = process.env.MONGODB_URI;
  if (uri === undefined) {
    log('starting an embedded mongod for the check');
    const { startEmbeddedMongo } = await import('../mongod/embedded.ts');
    embedded = await startEmbeddedMongo({ log: () => undefined });
    uri = embedded.uri;
  }
  const dbName = `ops_check_${randomBytes(4).toString('hex')}`;
  const client = await new mongoose.mongo.MongoClient(uri).connect();
  try {
    await migrateUp(client.db(dbName), client);
    const { key } = await ApiKeyStore.of(client.db(dbName)).create({ name: 'ops-check', scopes: ['operations:read'] });
    const config = loadConfig({ MONGODB_URI: uri, MONGODB_DB: dbName, LOG_LEVEL: 'silent', LOG_FORMAT: 'json' });
    const app = await buildApp({
      config: { ...config, mongo: { ...config.mongo, uri } },
      logger: createLogger(config.log),
    });
    try {
      for (let waited = 0; app.db.state !== 'connected'; waited += 100) {
        if (waited > 30_000) throw new Error('the app did not connect to MongoDB within 30 s');
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const res = await app.inject({ url: '/metrics', headers: { authorization: `Bearer ${key}` } });
      if (res.statusCode !== 200) throw new Error(`GET /metrics answered ${res.statusCode}: ${res.body}`);
      return res.body;
    } finally {
      await app.close();
    }
  } finally {
    await client
      .db(dbName)
      .dropDatabase()
      .catch(() => undefined);
    await client.close();
    await embedded?.stop();
  }
}

async function main(): Promise<number> {
  const log = (line: string) => process.stdout.write(`ops:check: ${line}\n`);
  const problems: string[] = [];

  const rules = checkRules(parse(await readFile(RULES_FILE, 'utf8')));
  problems.push(...rules.problems.map((problem) => `alerts.yml: ${problem}`));
  const verdict = promtool(RULES_FILE);
  if (verdict === undefined) {
    if (process.argv.includes('--promtool')) problems.push('promtool is not installed (apt-get install prometheus)');
    else log('promtool not found: the rules are checked by ops:check alone');
  } else if (!verdict.ok) problems.push(`promtool check rules failed:\n${verdict.output}`);
  else log(`promtool: ${verdict.output.split('\n').at(-1)?.trim()}`);

  const used = new Map<string, Set<string>>();
  const use = (where: string, exprs: string[]) => {
    for (const expr of exprs)
      for (const name of metricNamesIn(expr)) used.set(name, (used.get(name) ?? new Set()).add(where));
  };
  use('alerts.yml', rules.exprs);
  const dashboards = (await readdir(DASHBOARD_DIR)).filter((file) => file.endsWith('.json'));
  for (const file of dashboards) {
    const exprs = dashboardExprs(JSON.parse(await readFile(`${DASHBOARD_DIR}${file}`, 'utf8')));
    if (exprs.length === 0) problems.push(`${file}: no queries`);
    use(file, exprs);
  }

  const exposed = exposedNames(await scrapeRunningApp(log));
  for (const [name, where] of used)
    if (!PROMETHEUS_OWN.has(name) && !exposed.has(name))
      problems.push(`${name} (used in ${[...where].join(', ')}) is not in the app's /metrics`);

  if (problems.length > 0) {
    for (const problem of problems) process.stderr.write(`ops:check: ${problem}\n`);
    return 1;
  }
  log(
    `${rules.exprs.length} rules and ${dashboards.length} dashboard(s) use ${used.size} metric names, ` +
      "every one of them in the app's /metrics",
  );
  return 0;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().then(
    (code) => process.exit(code),
    (error: unknown) => {
      process.stderr.write(`ops:check: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exit(1);
    },
  );
}
