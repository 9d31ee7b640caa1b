// `npm run openapi`: writes the OpenAPI document the routes describe to openapi/openapi.json
// (`-- --check` only compares, exiting 1 when the committed file is stale). The document
// depends on the code alone: built from default configuration, with no MongoDB connection.

import { fileURLToPath, pathToFileURL } from 'node:url';
import { pino } from 'pino';
import { buildApp } from '../app.ts';
import { loadConfig } from '../config.ts';
import { writeOrCheck } from './generated-file.ts';

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
  await writeOrCheck({ path: OPENAPI_FILE, name: 'openapi/openapi.json', command: 'openapi' }, await renderOpenApi());
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((error: unknown) => {
    process.stderr.write(`openapi: ${error instanceof Error ? error.stack : String(error)}\n`);
    process.exit(1);
  });
}
