// After each test file, its databases go: the run's one mongod would otherwise keep every file's
// collections and indexes open to the end (a hundred migrated databases, thousands of files),
// and under Wine it has stopped with "Too many open files". Registered before the file's own
// hooks, this afterAll runs after them, once the file's apps are closed. The helpers are imported
// only then: loading them loads mongoose, which the tracing test must instrument before it loads.

import { afterAll } from 'vitest';

afterAll(async () => {
  const { dropNamedDatabases } = await import('../helpers/app.ts');
  await dropNamedDatabases();
});
