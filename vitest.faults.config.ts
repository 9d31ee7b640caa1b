// The fault suite (npm run test:faults): real mongods killed, frozen and stepped down under load.
// Kept out of `npm test`, whose include does not match *.faults.ts.

import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/faults/**/*.faults.ts'],
    // One scenario at a time: each one loads the whole two-core machine on purpose.
    fileParallelism: false,
    pool: 'forks',
    maxWorkers: 1,
    testTimeout: 240_000,
    hookTimeout: 120_000,
    teardownTimeout: 60_000,
    env: {
      // mongodb-memory-server runs `mongod --version` with spawnSync before every start of a system
      // binary; restarts happen under load, and a Wine start blocks the load clients for seconds.
      // The binary's version was checked when it was provisioned.
      MONGOMS_SYSTEM_BINARY_VERSION_CHECK: 'false',
    },
  },
});
