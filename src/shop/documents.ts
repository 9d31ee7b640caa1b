// The document operations of the API and of batches: create, replace, merge-patch and remove a
// document of a collection, as its entity declares. Each single write is one unit of work; the
// writes of an existing document take turns in this process. The ...In variants are the same
// flows inside a caller's unit of work (a batch runs several in one).

import type { Entity } from '../domain/entity.ts';
import type { Json } from '../domain/merge-patch.ts';
import { assertIdentityKept, checkWritable, mergePatched, serverPart, writablePart } from '../domain/documents.ts';
import type { AuditAction } from '../domain/audit.ts';
import { AppError } from '../errors.ts';
import {
  BulkInsertFailure,
  changedSince,
  keptChanging,
  type DocumentRepository,
  type StoredDocument,
} from '../data/documents.ts';
import type { OrderRepository } from '../data/orders.ts';
import type { Stores } from '../data/stores.ts';
import { DEFAULT_TRANSACTION_OPTIONS } from '../data/transactions.ts';
import type { Tx, UnitOfWork, WriteContext, WriteTx } from '../data/unit-of-work.ts';
import { Turns } from './turns.ts';

/** An existing document to write, optionally only at the version If-Match named. */
export interface DocumentTarget {
  collection: string;
  id: string;
  expectedVersion?: number;
}

export interface Creation {
  collection: string;
  document: Record<string, unknown>;
}

export type Replacement = DocumentTarget & { document: Record<string, unknown> };
export type Patch = DocumentTarget & { patch: Record<string, Json> };

/** What a removal did: the document is gone (as it last was), or was archived instead (as it is now). */
export type Removal = { action: 'deleted' | 'archived'; document: StoredDocument };

/** The document of a run of one insert, or the problem a refusal of it gives. */
export async function onlyInserted(inserting: Promise<StoredDocument[]>): Promise<StoredDocument> {
  try {
    const [inserted] = await inserting;
    if (inserted === undefined) throw new Error('an insert of one document returned none');
    return inserted;
  } catch (error) {
    throw error instanceof BulkInsertFailure ? error.problem : error;
  }
}

/** How often an atomic rewrite without If-Match reads again after another writer got in first. */
const REREADS = 4;

export class DocumentOperations {
  private readonly work: UnitOfWork;
  private readonly orders: OrderRepository;
  private readonly turns = new Map<string, Turns>();

  constructor(private readonly stores: Stores) {
    this.work = stores.work;
    this.orders = stores.orders;
  }

  async create(creation: Creation, context: WriteContext): Promise<StoredDocument> {
    return this.work.runAtomic(context, (tx) =>
      onlyInserted(this.insertIn(tx, creation.collection, [creation.document])),
    );
  }

  /** Replaces the writable fields; server-maintained fields and identity stay as they are. */
  async replace(replacement: Replacement, context: WriteContext): Promise<StoredDocument> {
    return this.inTurn(replacement, context, () =>
      this.work.runAtomic(context, (tx) => this.replaceIn(tx, replacement)),
    );
  }

  /** Applies a JSON Merge Patch to the writable fields and validates the result as a whole. */
  async patch(patch: Patch, context: WriteContext): Promise<StoredDocument> {
    return this.inTurn(patch, context, () => this.work.runAtomic(context, (tx) => this.patchIn(tx, patch)));
  }

  /** Deletes, or archives when the entity's rule says so: a transaction, as the rule reads references. */
  async remove(target: DocumentTarget, context: WriteContext): Promise<Removal> {
    return this.inTurn(target, context, () => this.work.run(context, (tx) => this.removeIn(tx, target)));
  }

  // --- the same flows inside a caller's unit of work ------------------------------------------

  /**
   * Inserts documents, in order, each checked against the writable schema and given the entity's
   * server defaults. A refused one is a BulkInsertFailure naming its position.
   */
  async insertIn(
    tx: WriteTx,
    collection: string,
    inputs: readonly Record<string, unknown>[],
  ): Promise<StoredDocument[]> {
    const repository = this.stores.repositoryOf(collection);
    const { entity } = repository;
    for (const [index, input] of inputs.entries()) {
      const errors = checkWritable(entity, input);
      if (errors.length > 0) throw new BulkInsertFailure(index, AppError.validation(errors));
    }
    const fields = inputs.map((input) => ({ ...input, ...structuredClone(entity.serverDefaults) }));
    return repository.insert(tx, fields, { action: 'create' });
  }

  async replaceIn(tx: WriteTx, { document, ...target }: Replacement): Promise<StoredDocument> {
    return this.rewrite(tx, target, 'replace', () => document);
  }

  async patchIn(tx: WriteTx, { patch, ...target }: Patch): Promise<StoredDocument> {
    return this.rewrite(tx, target, 'patch', (entity, current) => mergePatched(entity, current, patch));
  }

  /** The rule's lookups read through the transaction's session, as of its snapshot. */
  async removeIn(tx: Tx, target: DocumentTarget): Promise<Removal> {
    const repository = this.stores.repositoryOf(target.collection);
    const { entity } = repository;
    const deletion = entity.operations.delete;
    if (deletion === false) throw new Error(`${entity.collection}: documents are never deleted`);
    const current = await this.current(tx, repository, target);
    const decision = await deletion.decide(current, this.orders.referencesIn(tx.session));
    if (decision.action === 'archive') {
      const fields = { ...writablePart(entity, current), ...decision.changes, ...serverPart(entity, current) };
      const archived = await repository.replaceIf(tx, current, fields, { action: 'archive' });
      if (archived === null) throw changedMeanwhile(entity, target);
      return { action: 'archived', document: archived };
    }
    if (!(await repository.deleteIf(tx, current, { action: 'delete' }))) throw changedMeanwhile(entity, target);
    return { action: 'deleted', document: current };
  }

  // --- internals ---------------------------------------------------------------------------

  /** A write of one existing document, in turn with this process's other writes of it. */
  private async inTurn<T>(target: DocumentTarget, { actor }: WriteContext, write: () => Promise<T>): Promise<T> {
    let turns = this.turns.get(target.collection);
    if (turns === undefined) {
      turns = new Turns(this.stores.repositoryOf(target.collection).entity.singular, DEFAULT_TRANSACTION_OPTIONS);
      this.turns.set(target.collection, turns);
    }
    return turns.take([target.id], actor.deadline, write);
  }

  /** The document as the write reads it; 404, or 412 when If-Match names another version. */
  private async current(tx: WriteTx, repository: DocumentRepository, target: DocumentTarget): Promise<StoredDocument> {
    const current = await repository.findById(target.id, { session: tx.session });
    if (current === null) throw repository.notFound(target.id);
    if (target.expectedVersion !== undefined && current.version !== target.expectedVersion)
      throw changedMeanwhile(repository.entity, target);
    return current;
  }

  /**
   * Read, compute the new writable fields, write them back only if nobody wrote in between. In a
   * transaction there is nothing to retry here: a concurrent commit surfaces as a write conflict,
   * and the unit of work retries the whole read-compute-write from a new snapshot. An atomic write
   * reads the current version itself, so without If-Match it reads again when another writer (of
   * another instance: this one's take turns) got in between, a few times before answering 409.
   */
  private async rewrite(
    tx: WriteTx,
    target: DocumentTarget,
    action: AuditAction,
    compute: (entity: Entity, current: StoredDocument) => Record<string, unknown>,
  ): Promise<StoredDocument> {
    const repository = this.stores.repositoryOf(target.collection);
    const { entity } = repository;
    const rereads = tx.session === undefined && target.expectedVersion === undefined ? REREADS : 0;
    for (let read = 0; ; read++) {
      const current = await this.current(tx, repository, target);
      const writable = compute(entity, current);
      assertIdentityKept(entity, current, writable);
      const fields = { ...writable, ...serverPart(entity, current) };
      const written = await repository.replaceIf(tx, current, fields, { action });
      if (written !== null) return written;
      if (read >= rereads) throw changedMeanwhile(entity, target);
    }
  }
}

/** With If-Match, the document is no longer at its version (412); without, it kept changing (409). */
function changedMeanwhile(entity: Entity, { id, expectedVersion }: DocumentTarget): AppError {
  return expectedVersion !== undefined
    ? changedSince(entity.singular, id, expectedVersion)
    : keptChanging(entity.singular, id);
}
