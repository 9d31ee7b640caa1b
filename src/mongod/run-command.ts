// Runs the external tools mongod provisioning needs (npm, tar, apt-get, wine) and turns their
// failures into readable errors.
import { spawn } from 'node:child_process';

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs?: number;
  // 'stream' sends the tool's output to our stderr (long installs the user should watch);
  // 'capture' keeps it for the caller and for the error message.
  output?: 'capture' | 'stream';
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

const ERROR_TAIL_CHARS = 2_000;

export function runCommand(command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const { env, cwd, timeoutMs, output = 'capture' } = options;
  const shown = [command, ...args].join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd,
      env: env ?? process.env,
      stdio: output === 'stream' ? ['ignore', 2, 2] : ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));

    let timedOut = false;
    const timer =
      timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            child.kill('SIGKILL');
          }, timeoutMs);

    child.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const reason = err.code === 'ENOENT' ? `${command} was not found` : err.message;
      reject(new Error(`${shown}: ${reason}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) {
        resolve({ stdout, stderr });
        return;
      }
      const how = timedOut
        ? `timed out after ${timeoutMs} ms`
        : signal
          ? `killed by ${signal}`
          : `exited with code ${code}`;
      const tail = (stderr.trim() || stdout.trim()).slice(-ERROR_TAIL_CHARS);
      reject(new Error(`${shown} ${how}${tail ? `:\n${tail}` : ''}`));
    });
  });
}
