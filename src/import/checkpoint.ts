// Where an import stands, in a file next to its input (<input>.import-checkpoint.json), so that
// an import stopped midway (killed, a crash, MongoDB gone) resumes where it stopped. A file,
// not a collection: it needs no migration, goes with the input it describes, and is the
// operator's to delete; and it can be exact without being written with the batch.
// Before a batch is written the file says so (`pending`, with what the batch will count); once
// it and every batch before it committed, that it is done (several batches are written at once,
// and `done` only ever covers a run of the file from its start). A resume first ends the sessions
// the stopped process left (an order batch's transaction would hold its documents for a minute).
// Then each pending batch comes round again. An order batch asks the audit trail whether its
// transaction committed (its entries carry the batch's request id): if it did, its counts stand
// and it is not written again; if not, it is simply run again. Any other batch is decided again:
// the documents it wrote before the stop carry its request's stamps, count as written and get
// their audit entries, and the rest are written. Either way the database ends as an uninterrupted
// import leaves it, and so do the counts.

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import type { CollectionName } from './collections.ts';

export const CHECKPOINT_SUFFIX = '.import-checkpoint.json';

export interface Counts {
  read: number;
  inserted: number;
  updated: number;
  unchanged: number;
  /** Found with other content and left as they are (--on-conflict skip). */
  skipped: number;
  rejected: number;
}

export const noCounts = (): Counts => ({ read: 0, inserted: 0, updated: 0, unchanged: 0, skipped: 0, rejected: 0 });

export function addCounts(into: Counts, more: Counts): void {
  for (const name of Object.keys(into) as (keyof Counts)[]) into[name] += more[name];
}

export interface Checkpoint {
  version: 1;
  collection: CollectionName;
  file: string;
  /** SHA-256 of the input: a resume refuses a file that changed. */
  sha256: string;
  batchSize: number;
  onConflict: string;
  /** The import's actor id (audit entries' keyId) and the stem of its batches' request ids. */
  runId: string;
  backup: string | null;
  rejects: string | null;
  startedAt: string;
  /** Records of the file done, in batches, and the rejects file's length then. */
  done: { records: number; batches: number; rejectsBytes: number; counts: Counts };
  /** The batches being written (or committed past `done`): the records each ends at, what it counts, its transaction's session. */
  pending: PendingBatch[];
}

export interface PendingBatch {
  batch: number;
  records: number;
  counts: Counts;
  session?: string;
}

export const checkpointPath = (file: string) => `${file}${CHECKPOINT_SUFFIX}`;

export async function readCheckpoint(file: string): Promise<Checkpoint | undefined> {
  let text: string;
  try {
    text = await readFile(checkpointPath(file), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  return JSON.parse(text) as Checkpoint;
}

/** Written whole or not at all: a temporary file renamed over the last one. */
export async function writeCheckpoint(checkpoint: Checkpoint): Promise<void> {
  const path = checkpointPath(checkpoint.file);
  await writeFile(`${path}.partial`, `${JSON.stringify(checkpoint, null, 2)}\n`);
  await rename(`${path}.partial`, path);
}

export async function removeCheckpoint(file: string): Promise<void> {
  await rm(checkpointPath(file), { force: true });
}

/** The SHA-256 of a file, streamed. */
export async function sha256Of(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
