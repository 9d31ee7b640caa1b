// migrate-mongo's configuration for `npx migrate-mongo up|down|status|create` and the `npm run
// migrate:*` scripts. Plain JavaScript because migrate-mongo loads it by itself; what it exports
// comes from the service's own code (src/cli/migrate-config.ts), so the command line reads the
// same configuration as `npm start`: MONGODB_URI and MONGODB_DB, or the embedded database.

import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const SOURCE = new URL('./src/cli/migrate-config.ts', import.meta.url);
const BUILD = new URL('./dist/cli/migrate-config.js', import.meta.url);

// A checkout runs the source through tsx, so a stale dist/ never answers for it; the Docker image
// has neither src/ nor tsx (a devDependency), only the build.
async function loadMigrateConfig() {
  if (existsSync(fileURLToPath(SOURCE))) {
    const tsx = await import('tsx/esm/api').catch((error) => {
      if (error?.code === 'ERR_MODULE_NOT_FOUND') return undefined;
      throw error;
    });
    if (tsx !== undefined) return tsx.tsImport(SOURCE.href, import.meta.url);
  }
  if (!existsSync(fileURLToPath(BUILD))) {
    throw new Error(
      'neither tsx (`npm ci` installs it) nor a build (`npm run build`) is there to load src/cli/migrate-config.ts with',
    );
  }
  return import(BUILD.href);
}

const { migrateMongoConfig } = await loadMigrateConfig();

// Top-level await: migrate-mongo's require() of this file fails with ERR_REQUIRE_ASYNC_MODULE
// before running any of it, and migrate-mongo then import()s it, once per process.
export default await migrateMongoConfig({ argv: process.argv.slice(2) });
