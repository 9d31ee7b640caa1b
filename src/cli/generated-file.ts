// A file generated from the code and committed (the OpenAPI document, the typed client's types):
// `npm run <command>` writes it, and with --check (CI) fails when the committed file differs from
// what the code generates now, so neither can drift from the code.

import { readFile, writeFile } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';

export interface GeneratedFile {
  /** Absolute path. */
  path: string;
  /** As the messages name it, from the repository's root. */
  name: string;
  /** The npm script that writes it. */
  command: string;
}

export async function writeOrCheck({ path, name, command }: GeneratedFile, rendered: string): Promise<void> {
  const committed = await readFile(path, 'utf8').catch(() => '');
  if (process.argv.includes('--check')) {
    if (committed !== rendered) {
      process.stderr.write(`${name} is stale: run \`npm run ${command}\` and commit the result.\n`);
      process.exit(1);
    }
    process.stdout.write(`${name} is up to date.\n`);
    return;
  }
  await writeFile(path, rendered);
  process.stdout.write(`wrote ${path}${committed === rendered ? ' (unchanged)' : ''}\n`);
}

/**
 * The generator's command, when `moduleUrl` (its import.meta.url) is the program node runs rather
 * than a module another imports: renders the file, then writes or checks it; a failure exits 1.
 */
export function generateWhenRun(moduleUrl: string, file: GeneratedFile, render: () => Promise<string>): void {
  if (moduleUrl !== pathToFileURL(process.argv[1] ?? '').href) return;
  render()
    .then((rendered) => writeOrCheck(file, rendered))
    .catch((error: unknown) => {
      process.stderr.write(`${file.command}: ${error instanceof Error ? error.stack : String(error)}\n`);
      process.exit(1);
    });
}
