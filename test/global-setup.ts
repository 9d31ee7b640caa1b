// One single-node replica set for the whole test run, started through the same code path as
// the service's embedded database (in a temp dir this time). Test files get their own databases.

import type { TestProject } from 'vitest/node';
import { startEmbeddedMongo } from '../src/mongod/embedded.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    mongoUri: string;
  }
}

export default async function setup(project: TestProject) {
  // Fail points (configureFailPoint) let tests make MongoDB fail one command the way a real fault would.
  const mongo = await startEmbeddedMongo({
    log: (message) => console.log(`[mongod] ${message}`),
    extraArgs: ['--setParameter', 'enableTestCommands=1'],
  });
  project.provide('mongoUri', mongo.uri);
  return async () => {
    await mongo.stop();
  };
}
