// The storekeeper image without Docker: its runtime stage (the last of the Dockerfile) laid out in a
// temp directory as its COPY and RUN instructions lay out WORKDIR, and compose.yaml's services as
// compose reads them, so that the tests run the image's commands with the image's environment:
// its jobs to their end, and its CMD until /health/ready answers.
// dist/ is compiled as the build stage's `npm run build` does (type-checking is CI's typecheck step,
// so it is skipped here, with declarations and source maps, which nothing runs). node_modules is
// the checkout's, linked: it holds the production dependencies `npm ci --omit=dev` installs, and
// the dev ones besides, so a start that needed a dev dependency would pass here.

import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import type { Readable } from 'node:stream';
import { parse } from 'yaml';
import { readStages, REPO_ROOT, type Stage } from '../../src/cli/deploy-check.ts';

type ComposeService = {
  command?: string[];
  environment?: Record<string, string>;
  user?: string;
};

/** A service of compose.yaml, its YAML merge keys applied as compose applies them. */
export async function composeService(name: string): Promise<ComposeService> {
  const compose = parse(await readFile(join(REPO_ROOT, 'compose.yaml'), 'utf8'), { merge: true }) as {
    services: Record<string, ComposeService>;
  };
  const service = compose.services[name];
  if (service === undefined) throw new Error(`compose.yaml has no service ${name}`);
  return service;
}

export interface Image {
  /** Where WORKDIR is: the commands run here. */
  dir: string;
  runtime: Stage;
  remove(): Promise<void>;
}

export async function layOutImage(): Promise<Image> {
  const stages = readStages(await readFile(join(REPO_ROOT, 'Dockerfile'), 'utf8'));
  const runtime = stages.at(-1);
  if (runtime?.workdir === undefined) throw new Error('the Dockerfile has no runtime stage with a WORKDIR');
  const workdir = runtime.workdir;
  const dir = await mkdtemp(join(tmpdir(), 'storekeeper-image-'));
  const inImage = (path: string) => join(dir, posix.relative(workdir, posix.resolve(workdir, path)));
  try {
    for (const run of runtime.runs) {
      if (!run.startsWith('npm ci --omit=dev')) throw new Error(`the test cannot reproduce RUN ${run}`);
      await symlink(join(REPO_ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
    }
    for (const copy of runtime.copies) {
      if (copy.from === undefined) {
        for (const source of copy.sources) {
          const target = copy.destination.endsWith('/')
            ? join(inImage(copy.destination), source)
            : inImage(copy.destination);
          await cp(join(REPO_ROOT, source), target, { recursive: true });
        }
        continue;
      }
      const build = stages.find((stage) => stage.name === copy.from);
      if (build?.workdir === undefined || !build.runs.includes('npm run build'))
        throw new Error(`the test cannot reproduce COPY --from=${copy.from}: that stage does not run npm run build`);
      const packageJson = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as {
        scripts: Record<string, string>;
      };
      const buildScript = packageJson.scripts.build ?? '';
      if (
        copy.sources.join() !== posix.join(build.workdir, 'dist') ||
        !/^tsc -p tsconfig\.build\.json$/.test(buildScript)
      )
        throw new Error(
          `the test cannot reproduce COPY --from=${copy.from} ${copy.sources.join(' ')} (${buildScript})`,
        );
      await runToEnd(
        [
          process.execPath,
          join(REPO_ROOT, 'node_modules/typescript/bin/tsc'),
          '-p',
          'tsconfig.build.json',
          '--outDir',
          inImage(copy.destination),
          '--noCheck',
          '--declaration',
          'false',
          '--sourceMap',
          'false',
        ],
        { cwd: REPO_ROOT, env: { PATH: process.env.PATH ?? '' } },
      ).then(({ code, output }) => {
        if (code !== 0) throw new Error(`npm run build failed:\n${output}`);
      });
    }
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  return { dir, runtime, remove: () => rm(dir, { recursive: true, force: true }) };
}

export interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** stdout and stderr together, for failure messages. */
  output: string;
}

/** Runs a command to its end (killed after timeoutMs). */
export function runToEnd(
  command: string[],
  { cwd, env, timeoutMs = 60_000 }: { cwd: string; env: Record<string, string>; timeoutMs?: number },
): Promise<Finished> {
  const [file = '', ...args] = command;
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      output += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      output += chunk;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, output });
    });
  });
}

/** The image's command, as `node` resolves in it: the Node.js running the tests. */
export function local(command: string[]): string[] {
  const [file, ...args] = command;
  return file === 'node' ? [process.execPath, ...args] : command;
}

export interface Instance {
  child: ChildProcessByStdio<null, Readable, Readable>;
  /** http://127.0.0.1:<port> */
  base: string;
  /** Everything the instance wrote to stderr so far. */
  stderr(): string;
  exited: Promise<number | null>;
}

/** The image's CMD in its WORKDIR with `env` (which sets PORT), once /health/ready answers 200. */
export async function startInstance(image: Image, env: Record<string, string>): Promise<Instance> {
  const [file = '', ...args] = local(image.runtime.cmd ?? []);
  const child = spawn(file, args, { cwd: image.dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  child.stdout.resume();
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const base = `http://127.0.0.1:${env.PORT ?? ''}`;
  for (let waited = 0; ; waited += 200) {
    const ready = await fetch(`${base}/health/ready`).then(
      (response) => response.status,
      () => 0,
    );
    if (ready === 200) break;
    if (waited > 90_000 || child.exitCode !== null) {
      child.kill('SIGKILL');
      throw new Error(`the instance was not ready (last answer ${ready}); stderr: ${stderr}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return { child, base, stderr: () => stderr, exited };
}
