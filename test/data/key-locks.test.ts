import { describe, expect, it } from 'vitest';
import { KeyLocks, TurnTimeout } from '../../src/data/key-locks.ts';

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('KeyLocks', () => {
  it('runs work on one key one at a time, in the order it arrived', async () => {
    const locks = new KeyLocks();
    const events: string[] = [];
    let inside = 0;
    let most = 0;
    const work = (name: string) =>
      locks.run(['AMS-1/TEE'], 1_000, async () => {
        inside++;
        most = Math.max(most, inside);
        events.push(`start ${name}`);
        await tick();
        events.push(`end ${name}`);
        inside--;
        return name;
      });
    expect(await Promise.all([work('a'), work('b'), work('c')])).toEqual(['a', 'b', 'c']);
    expect(most).toBe(1);
    expect(events).toEqual(['start a', 'end a', 'start b', 'end b', 'start c', 'end c']);
    expect(locks.size).toBe(0);
  });

  it('lets work on other keys run at the same time', async () => {
    const locks = new KeyLocks();
    let inside = 0;
    let most = 0;
    await Promise.all(
      ['A', 'B', 'C'].map((key) =>
        locks.run([key], 1_000, async () => {
          inside++;
          most = Math.max(most, inside);
          await tick();
          inside--;
        }),
      ),
    );
    expect(most).toBe(3);
  });

  it('callers wanting the same keys in opposite orders do not wait for each other forever', async () => {
    const locks = new KeyLocks();
    const done = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        locks.run(i % 2 === 0 ? ['X', 'Y', 'Z'] : ['Z', 'Y', 'X'], 5_000, async () => {
          await tick();
          return i;
        }),
      ),
    );
    expect(done).toHaveLength(20);
    expect(locks.size).toBe(0);
  });

  it('releases the keys when the work fails, so the next caller runs', async () => {
    const locks = new KeyLocks();
    const failing = locks.run(['K'], 1_000, async () => {
      throw new Error('failed inside');
    });
    const next = locks.run(['K'], 1_000, async () => 'ran');
    await expect(failing).rejects.toThrow('failed inside');
    expect(await next).toBe('ran');
    expect(locks.size).toBe(0);
  });

  it('a caller that waits too long gets TurnTimeout, runs nothing, and does not hold up those behind it', async () => {
    const locks = new KeyLocks();
    let release!: () => void;
    const holder = locks.run(['K'], 1_000, () => new Promise<void>((resolve) => (release = resolve)));
    let ranImpatient = false;
    const impatient = locks.run(['J', 'K'], 20, async () => {
      ranImpatient = true;
    });
    const patient = locks.run(['K'], 5_000, async () => 'patient ran');
    const error = await impatient.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TurnTimeout);
    expect((error as TurnTimeout).key).toBe('K');
    expect(ranImpatient).toBe(false);
    // J, taken before K timed out, was given back.
    expect(await locks.run(['J'], 10, async () => 'J is free')).toBe('J is free');
    release();
    await holder;
    expect(await patient).toBe('patient ran');
    expect(locks.size).toBe(0);
  });
});
