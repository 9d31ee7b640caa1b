import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // One replica set for the whole run; each test file gets its own database on it.
    globalSetup: ['test/global-setup.ts'],
    // ...and drops it when the file is done.
    setupFiles: ['test/setup/drop-databases.ts'],
    // mongod runs on the same two cores as the tests: generous timeouts, never timed assertions.
    testTimeout: 60_000,
    hookTimeout: 180_000,
    teardownTimeout: 60_000,
    pool: 'forks',
    maxWorkers: 2,
  },
});
