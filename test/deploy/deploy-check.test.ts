// npm run deploy:check passes on the repository, and finds each kind of mistake it is there for
// when one is made in a copy of the deployment files.

import { existsSync } from 'node:fs';
import { cp, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { checkDeployment, REPO_ROOT } from '../../src/cli/deploy-check.ts';

const FILES = ['Dockerfile', 'compose.yaml', 'compose.env.example', 'ops'];
/** Where CI unpacks promtool (.ci/run), when this machine has it. */
const PROMTOOL_DIR = join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'storekeeper/promtool/usr/bin');

let copies: string[] = [];
afterEach(async () => {
  await Promise.all(copies.map((dir) => rm(dir, { recursive: true, force: true })));
  copies = [];
});

/** The deployment files in a temp directory, with `change` applied to one of them. */
async function withChange(file: string, change: (text: string) => string): Promise<string[]> {
  const root = await mkdtemp(join(tmpdir(), 'storekeeper-deploy-check-'));
  copies.push(root);
  for (const name of FILES) await cp(join(REPO_ROOT, name), join(root, name), { recursive: true });
  await symlink(join(REPO_ROOT, 'src'), join(root, 'src'), 'dir');
  const text = await readFile(join(root, file), 'utf8');
  const changed = change(text);
  expect(changed, 'the change applies').not.toBe(text);
  await writeFile(join(root, file), changed);
  return checkDeployment({ root }).problems;
}

describe('deploy:check', () => {
  it('finds no problem in the repository', () => {
    expect(checkDeployment().problems).toEqual([]);
  });

  it('refuses what the Compose specification does not allow', async () => {
    const problems = await withChange('compose.yaml', (text) =>
      text.replace('condition: service_completed_successfully', 'condition: completed'),
    );
    expect(problems.join('\n')).toMatch(/compose\.yaml: \/services\/.* must be equal to one of the allowed values/);
  });

  it('finds a variable the service does not read, and a value it refuses', async () => {
    const misspelt = await withChange('compose.yaml', (text) =>
      text.replace('MIGRATIONS_ON_START: require', 'MIGRATION_ON_START: require'),
    );
    expect(misspelt).toContain(
      'storekeeper-1: sets MIGRATION_ON_START, which src/config.ts does not declare and its command does not read ' +
        '(a misspelt variable is silently ignored)',
    );
    const refused = await withChange('compose.yaml', (text) =>
      text.replace('MIGRATIONS_ON_START: require', 'MIGRATIONS_ON_START: required'),
    );
    expect(refused.join('\n')).toMatch(/storekeeper-2: MIGRATIONS_ON_START must be one of auto, apply, require, check/);
  });

  it('finds a mounted file that is missing', async () => {
    const problems = await withChange('compose.yaml', (text) =>
      text.replace('./ops/prometheus/alerts.yml:', './ops/alerts.yml:'),
    );
    expect(problems).toContain('prometheus: mounts ./ops/alerts.yml, which does not exist');
  });

  it('finds an instance the proxy and Prometheus do not know', async () => {
    const problems = await withChange('compose.yaml', (text) =>
      text.replace(
        '  # The one published HTTP port',
        '  storekeeper-3:\n    <<: *storekeeper-instance\n    environment:\n      <<: *service-environment\n\n  # The one published HTTP port',
      ),
    );
    const all = problems.join('\n');
    expect(all).toMatch(
      /haproxy\.cfg: backend storekeeper serves storekeeper-1:3000, storekeeper-2:3000; the instances are .*storekeeper-3:3000/,
    );
    expect(all).toMatch(/prometheus\.yml: job storekeeper scrapes .*; the instances are .*storekeeper-3:3000/);
    expect(all).toMatch(/proxy: does not depend on storekeeper-3/);
  });

  it('finds a backend without its health check', async () => {
    const problems = await withChange('ops/proxy/haproxy.cfg', (text) =>
      text.replace('option httpchk GET /health/ready', 'option httpchk GET /health/live'),
    );
    expect(problems).toContain(
      'ops/proxy/haproxy.cfg: backend storekeeper does not check its servers with GET /health/ready',
    );
  });

  it('finds a job on another image than the instances', async () => {
    const problems = await withChange('compose.yaml', (text) =>
      text.replace(
        'command: [node, dist/cli/migrate.js, up]',
        'image: storekeeper:old\n    command: [node, dist/cli/migrate.js, up]',
      ),
    );
    expect(problems.join('\n')).toMatch(/migrate: image storekeeper:old .* differs from/);
  });

  it('finds a program the build does not compile', async () => {
    const problems = await withChange('compose.yaml', (text) =>
      text.replace('dist/cli/migrate.js, up', 'dist/migrate.js, up'),
    );
    expect(problems).toContain('migrate: runs dist/migrate.js, but the build has no src/migrate.ts to compile it from');
  });

  it('finds a variable compose.env.example does not document, and a secret committed there', async () => {
    const undocumented = await withChange('compose.yaml', (text) =>
      text.replace('GF_USERS_ALLOW_SIGN_UP: ', 'GF_SERVER_ROOT_URL: ${GRAFANA_URL}\n      GF_USERS_ALLOW_SIGN_UP: '),
    );
    expect(undocumented).toContain(
      'compose.yaml interpolates ${GRAFANA_URL}, which compose.env.example does not document',
    );
    const committed = await withChange('compose.env.example', (text) =>
      text.replace('GRAFANA_ADMIN_PASSWORD=', 'GRAFANA_ADMIN_PASSWORD=hunter2'),
    );
    expect(committed).toContain(
      "compose.env.example: GRAFANA_ADMIN_PASSWORD has a value; a secret's value must never be committed",
    );
  });

  it('finds a $ in a script that compose would take for a variable', async () => {
    const problems = await withChange('compose.yaml', (text) =>
      text.replace("const NAME = 'compose-prometheus';", 'const NAME = `compose-$HOSTNAME`;'),
    );
    expect(problems.join('\n')).toMatch(
      /\$HOSTNAME is interpolated by compose: write \$\{HOSTNAME\} for a variable, \$\$HOSTNAME for a dollar/,
    );
  });

  it('finds a wait for a healthy service that has no healthcheck, and a stop shorter than the grace', async () => {
    const problems = await withChange('compose.yaml', (text) =>
      text
        .replace(
          / {4}healthcheck:\n {6}test: \[CMD, wget, -q, -O, \/dev\/null, http:\/\/127\.0\.0\.1:9090\/-\/ready\]\n( {6}.*\n){3}/,
          '',
        )
        .replace('stop_grace_period: 30s', 'stop_grace_period: 10s'),
    );
    expect(problems).toContain('grafana: waits for prometheus to be healthy, but prometheus has no healthcheck');
    expect(problems).toContain('prometheus: runs until stopped but has no healthcheck');
    expect(problems.join('\n')).toMatch(
      /storekeeper-1: stop_grace_period 10s must exceed SHUTDOWN_GRACE_MS \(10000 ms\)/,
    );
  });

  it.skipIf(!existsSync(join(PROMTOOL_DIR, 'promtool')))(
    'has promtool check the Prometheus configuration',
    async () => {
      const path = process.env.PATH;
      process.env.PATH = `${path ?? ''}:${PROMTOOL_DIR}`;
      try {
        expect(checkDeployment({ requirePromtool: true }).problems).toEqual([]);
        const problems = await withChange('ops/prometheus/prometheus.yml', (text) =>
          text.replace('scrape_interval: 15s', 'scrape_interval: 15x'),
        );
        expect(problems.join('\n')).toMatch(
          /prometheus\.yml: promtool check config failed:[^]*not a valid duration string: "15x"/,
        );
      } finally {
        process.env.PATH = path;
      }
    },
  );

  it('lints the Dockerfile', async () => {
    const problems = await withChange('Dockerfile', (text) => text.replace('EXPOSE 3000', 'EXPOSE 3000/tcpx'));
    expect(problems.join('\n')).toMatch(/^Dockerfile:\d+: .*tcpx.* \(dockerfile-utils lint\)$/m);
  });
});
