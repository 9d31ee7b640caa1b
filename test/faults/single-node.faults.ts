// Faults of a single-node replica set under load: mongod hangs (SIGSTOP) and comes back as it
// was, and mongod dies (SIGKILL) and is restarted on its data. With no other member, MongoDB is
// simply gone for the duration; the service must say so truthfully and recover by itself.

import { afterAll, beforeAll, describe, it } from 'vitest';
import { sleep } from './client.ts';
import { FaultCluster } from './cluster.ts';
import { expectTruthfulAnswers, runScenario } from './scenario.ts';

const FROZEN_FOR_MS = 20_000;
const DOWN_FOR_MS = 20_000;
const PRIMARY_TIMEOUT_MS = 60_000;

describe('a single-node replica set under load', () => {
  let cluster: FaultCluster | undefined;

  beforeAll(async () => {
    cluster = await FaultCluster.start(1, (message) => console.log(`[mongod] ${message}`));
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it('mongod frozen (SIGSTOP) for 20 s, then resumed: what clients were told is what MongoDB holds', async () => {
    const figures = await runScenario(cluster!, 'S3', 'single node, frozen 20 s', async (node) => {
      const [mongod] = node.members;
      await node.freeze(mongod!, FROZEN_FOR_MS + 30_000);
      await sleep(FROZEN_FOR_MS);
      node.thaw(mongod!);
    });
    expectTruthfulAnswers(figures);
  });

  it('mongod killed (SIGKILL) and restarted 20 s later on its data: what clients were told is what MongoDB holds', async () => {
    const figures = await runScenario(cluster!, 'S4', 'single node, killed and restarted', async (node) => {
      const [mongod] = node.members;
      await node.kill(mongod!);
      await sleep(DOWN_FOR_MS);
      await node.restart(mongod!);
      await node.waitForState(mongod!, 'PRIMARY', PRIMARY_TIMEOUT_MS);
    });
    expectTruthfulAnswers(figures);
  });
});
