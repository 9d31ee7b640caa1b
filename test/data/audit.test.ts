// The audit trail's transactions against a real write conflict: an attempt that recorded changes
// and then met a conflict is retried from scratch, and the committed transaction leaves exactly
// one entry per document it changed, never the aborted attempt's as well.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Product } from '../../src/domain/entities/index.ts';
import type { Actor, Tx } from '../../src/data/unit-of-work.ts';
import { transactionRetries } from '../../src/data/transactions.ts';
import { buildTestApp, waitFor, waitForDatabase, type TestApp } from '../helpers/app.ts';

describe('UnitOfWork.run', () => {
  let t: TestApp;
  let key: { id: string };
  const trail = () => t.app.db.connection.db!.collection('audit_events');
  const products = () => t.app.stores.repositoryOf('products');
  const actor = (requestId: string): Actor => ({ keyId: key.id, keyName: 'data-test', requestId });
  const as = (requestId: string) => ({ actor: actor(requestId), log: t.app.log });
  const patchIn = (tx: Tx, id: string, patch: { name: string }) =>
    t.app.shop.documents.patchIn(tx, { collection: 'products', id, patch });
  let sequence = 0;
  const newProduct = () =>
    t.app.shop.documents.create(
      { collection: 'products', document: { ...Product.example, sku: `TRAIL-${++sequence}` } },
      as(`setup-${sequence}`),
    );

  beforeAll(async () => {
    t = await buildTestApp('audit_trail');
    await waitForDatabase(t.app);
    key = await t.createKey(['products:write'], { name: 'data-test' });
  });
  afterAll(() => t.app.close());

  it('a retried attempt does not duplicate what the aborted attempt recorded', async () => {
    const first = await newProduct();
    const contended = await newProduct();
    const retriesBefore = transactionRetries.transient;

    // A holds an uncommitted write of `contended` until told to commit.
    let releaseA!: () => void;
    const aMayCommit = new Promise<void>((resolve) => (releaseA = resolve));
    let aWrote!: () => void;
    const aHasWritten = new Promise<void>((resolve) => (aWrote = resolve));
    const a = t.app.stores.work.run(as('tx-a'), async (tx) => {
      await patchIn(tx, contended._id.toHexString(), { name: 'Written by A' });
      aWrote();
      await aMayCommit;
    });
    await aHasWritten;

    // B patches `first` (recorded), then `contended`, which conflicts with A: the attempt aborts.
    let attemptsOfB = 0;
    const b = t.app.stores.work.run(as('tx-b'), async (tx) => {
      attemptsOfB++;
      await patchIn(tx, first._id.toHexString(), { name: `B, attempt ${attemptsOfB}` });
      await patchIn(tx, contended._id.toHexString(), { name: 'Written by B' });
    });
    await waitFor(() => transactionRetries.transient > retriesBefore, 30_000, "B's first attempt to meet the conflict");
    releaseA();
    await Promise.all([a, b]);

    expect(attemptsOfB).toBeGreaterThan(1);
    const entriesOfB = await trail().find({ requestId: 'tx-b' }).sort({ _id: 1 }).toArray();
    expect(entriesOfB.map((e) => [e.action, e.documentId, e.documentVersion])).toEqual([
      ['patch', first._id.toHexString(), 2],
      ['patch', contended._id.toHexString(), 3],
    ]);
    expect(await trail().find({ requestId: 'tx-a' }).toArray()).toEqual([
      expect.objectContaining({ documentId: contended._id.toHexString(), documentVersion: 2 }),
    ]);
    expect((await products().findById(first._id.toHexString()))!.name).toBe(`B, attempt ${attemptsOfB}`);
  });

  it('work that throws after recording leaves no entry, and its writes are gone', async () => {
    const product = await newProduct();
    await expect(
      t.app.stores.work.run(as('tx-thrown'), async (tx) => {
        await patchIn(tx, product._id.toHexString(), { name: 'Never committed' });
        throw new Error('failed after the write');
      }),
    ).rejects.toThrow('failed after the write');
    expect(await trail().countDocuments({ requestId: 'tx-thrown' })).toBe(0);
    expect((await products().findById(product._id.toHexString()))!.version).toBe(1);
  });
});
