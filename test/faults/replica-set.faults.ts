// Faults of a three-member replica set under load: the primary steps down, and the primary is
// killed outright and comes back on its own data. The two scenarios share the set; each has its
// own database and service, so their figures do not mix.

import { afterAll, beforeAll, beforeEach, describe, it } from 'vitest';
import { sleep } from './client.ts';
import { FaultCluster } from './cluster.ts';
import { expectTruthfulAnswers, runScenario } from './scenario.ts';

/** How long the killed primary stays down: long enough for an election and writes on the new primary. */
const KILLED_FOR_MS = 10_000;
const REJOIN_TIMEOUT_MS = 60_000;

describe('a three-member replica set under load', () => {
  let cluster: FaultCluster | undefined;

  beforeAll(async () => {
    cluster = await FaultCluster.start(3, (message) => console.log(`[mongod] ${message}`));
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  // Each scenario starts from a whole set: one primary, every other member a secondary.
  beforeEach(async () => {
    const primary = await cluster!.primary();
    for (const member of cluster!.members)
      if (member !== primary) await cluster!.waitForState(member, 'SECONDARY', REJOIN_TIMEOUT_MS);
  });

  it('primary stepped down: what clients were told is what MongoDB holds', async () => {
    const figures = await runScenario(cluster!, 'S1', 'replica set, primary stepped down', async (set) => {
      const primary = await set.primary();
      await set.stepDown(primary);
      await set.primary();
    });
    expectTruthfulAnswers(figures);
  });

  it('primary killed (SIGKILL), restarted on its data and rejoined: what clients were told is what MongoDB holds', async () => {
    const figures = await runScenario(cluster!, 'S2', 'replica set, primary killed and restarted', async (set) => {
      const primary = await set.primary();
      await set.kill(primary);
      await set.primary();
      await sleep(KILLED_FOR_MS);
      await set.restart(primary);
      await set.waitForState(primary, 'SECONDARY', REJOIN_TIMEOUT_MS);
    });
    expectTruthfulAnswers(figures);
  });
});
