import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/vitest/**/*.test.ts'],
    // startShop starts a mongod for the file (seconds; more under Wine on a busy machine).
    hookTimeout: 120_000,
    testTimeout: 60_000,
  },
});
