// `npm run openapi`: writes the OpenAPI document the routes describe to openapi/openapi.json
// (`-- --check` only compares, exiting 1 when the committed file is stale). The document
// depends on the code alone: built from default configuration, with no MongoDB connection.

import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { pino } from 'pino';
import { buildApp } from '../app.ts';
import { loadConfig } from '../config.ts';

export const OPENAPI_FILE = fileURLToPath(new URL('../../openapi/openapi.json', import.meta.url));

export async function renderOpenApi(): Promise<string> {
  const config = loadConfig({});
  const app = await buildApp({
    config: { ...config, mongo: { ...config.mongo, uri: 'mongodb://127.0.0.1:27017/?replicaSet=unused' } },
    logger: pino({ level: 'silent' }),
    connect: false,
  });
  try {
    await app.ready();
    return `${JSON.stringify(app.swagger(), null, 2)}\n`;
  } finally {
    await app.close();
  }
}

async function main(): Promise<void> {
  const rendered = await renderOpenApi();
  const committed = await readFile(OPENAPI_FILE, 'utf8').catch(() => '');
  if (process.argv.includes('--check')) {
    if (committed !== rendered) {
      process.stderr.write('openapi/openapi.json is stale: run `npm run openapi` and commit the result.\n');
      process.exit(1);
    }
    process.stdout.write('openapi/openapi.json is up to date.\n');
    return;
  }
  await writeFile(OPENAPI_FILE, rendered);
  process.stdout.write(`wrote ${OPENAPI_FILE}${committed === rendered ? ' (unchanged)' : ''}\n`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((error: unknown) => {
    process.stderr.write(`openapi: ${error instanceof Error ? error.stack : String(error)}\n`);
    process.exit(1);
  });
}
