// What the replica-set command makes of replSetGetStatus for a three-member set, which the test
// replica set (one member) cannot show: a lagging secondary, a member down, no primary. The command
// itself runs against the test replica set in the failover runbook (test/docs/runbooks.test.ts).

import { describe, expect, it } from 'vitest';
import { describeSet, statusText } from '../../src/cli/replica-set.ts';

const at = (seconds: number) => new Date(Date.UTC(2026, 11, 6, 3, 0, 0) + seconds * 1000);

describe('replica-set status', () => {
  it('names the primary, how far each secondary is behind it, and a member that is down', () => {
    const status = describeSet({
      set: 'rs0',
      term: 7,
      members: [
        { name: 'db1:27017', stateStr: 'PRIMARY', health: 1, optimeDate: at(30), electionDate: at(2) },
        { name: 'db2:27017', stateStr: 'SECONDARY', health: 1, optimeDate: at(27.5), syncSourceHost: 'db1:27017' },
        {
          name: 'db3:27017',
          stateStr: '(not reachable/healthy)',
          health: 0,
          optimeDate: at(0),
          lastHeartbeatMessage: 'Connection refused',
        },
      ],
    });
    expect(status).toEqual({
      set: 'rs0',
      term: 7,
      primary: { name: 'db1:27017', since: '2026-12-06T03:00:02.000Z' },
      members: [
        { name: 'db1:27017', state: 'PRIMARY', healthy: true },
        { name: 'db2:27017', state: 'SECONDARY', healthy: true, behindSeconds: 2.5, syncingFrom: 'db1:27017' },
        { name: 'db3:27017', state: '(not reachable/healthy)', healthy: false, heartbeat: 'Connection refused' },
      ],
      whole: false,
    });
    expect(statusText(status)).toBe(
      [
        'replica set rs0, term 7: primary db1:27017 since 2026-12-06T03:00:02.000Z',
        '  db1:27017  PRIMARY    healthy',
        '  db2:27017  SECONDARY  healthy, 2.5 s behind the primary, syncing from db1:27017',
        '  db3:27017  (not reachable/healthy)  NOT HEALTHY, last heartbeat: Connection refused',
        'the set is NOT whole',
        '',
      ].join('\n'),
    );
  });

  it('says there is no primary while an election goes on', () => {
    const status = describeSet({
      set: 'rs0',
      members: [
        { name: 'db1:27017', stateStr: 'SECONDARY', health: 1, optimeDate: at(30) },
        { name: 'db2:27017', stateStr: 'SECONDARY', health: 1, optimeDate: at(30) },
      ],
    });
    expect(status.primary).toBeUndefined();
    expect(status.whole).toBe(false);
    expect(statusText(status)).toContain('NO PRIMARY (writes answer 503 until one is elected)');
  });

  it('is whole with a primary and healthy secondaries', () => {
    const status = describeSet({
      set: 'rs0',
      members: [
        { name: 'db1:27017', stateStr: 'PRIMARY', health: 1, optimeDate: at(30) },
        { name: 'db2:27017', stateStr: 'SECONDARY', health: 1, optimeDate: at(30) },
      ],
    });
    expect(status.whole).toBe(true);
    expect(status.members[1]?.behindSeconds).toBe(0);
  });
});
