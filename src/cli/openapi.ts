// `npm run openapi`: writes the OpenAPI document the routes describe to openapi/openapi.json
// (`-- --check` only compares, exiting 1 when the committed file is stale). The document
// depends on the code alone: built from default configuration, with no MongoDB connection.

import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { buildApp } from '../app.ts';
import { loadConfig } from '../config.ts';
import { generateWhenRun } from './generated-file.ts';

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

generateWhenRun(
  import.meta.url,
  { path: OPENAPI_FILE, name: 'openapi/openapi.json', command: 'openapi' },
  renderOpenApi,
);
