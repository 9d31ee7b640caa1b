// `npm run mongod:provision`: gets a mongod onto this machine (MongoDB's download, or the offline
// fallback set up once) and proves it runs by starting and stopping a throwaway replica set.
import { performance } from 'node:perf_hooks';
import { resolveMongodBinary } from '../mongod/binary.ts';
import { startEmbeddedMongo } from '../mongod/embedded.ts';
import { errorMessage } from '../errors.ts';

const seconds = (since: number): string => `${((performance.now() - since) / 1000).toFixed(1)} s`;

async function main(): Promise<void> {
  const started = performance.now();

  const binary = await resolveMongodBinary();
  const path = binary.systemBinary ?? "(mongodb-memory-server's default)";
  console.log(`mongod ${binary.version}: source ${binary.source}, binary ${path} (resolved in ${seconds(started)})`);

  const smokeStarted = performance.now();
  const mongo = await startEmbeddedMongo();
  console.log(`smoke check: replica set PRIMARY at ${mongo.uri} in ${seconds(smokeStarted)}`);

  const stopStarted = performance.now();
  await mongo.stop();
  console.log(`smoke check: stopped in ${seconds(stopStarted)}; total ${seconds(started)}`);
}

try {
  await main();
} catch (err) {
  console.error(`mongod:provision failed: ${errorMessage(err)}`);
  // Exit now: an abandoned download attempt may still hold the event loop open.
  process.exit(1);
}
