// Checks a backup without a database: the manifest is there and well-formed, and every file it
// lists is there, of the recorded size and SHA-256, decompresses, and holds whole BSON documents
// in the recorded number whose bytes have the recorded SHA-256. `npm run backup:verify` runs it,
// and the restore runs it first, before it touches any database.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { FramingError, MANIFEST_FILE, bsonDocuments, parseMetadata, sha256 } from './format.ts';
import { readStoredFile, statIfPresent } from './files.ts';
import { readManifest, type CollectionEntry, type Manifest, type StoredFile } from './manifest.ts';
import { megabytes, seconds, silent, throttled, type Progress } from './progress.ts';

export interface VerifyProblem {
  /** The file at fault, relative to the backup directory. */
  file: string;
  problem: string;
}

export interface VerifyReport {
  dir: string;
  ok: boolean;
  /** Undefined when the manifest itself could not be read. */
  manifest?: Manifest;
  problems: VerifyProblem[];
  ms: number;
}

/** A backup that failed verification; the message lists every problem, naming each file. */
export class BackupInvalidError extends Error {
  override name = 'BackupInvalidError';
  constructor(readonly report: VerifyReport) {
    const problems = report.problems.map((p) => `  ${p.file}: ${p.problem}`).join('\n');
    super(`the backup in ${report.dir} is damaged or incomplete:\n${problems}`);
  }
}

/** Verifies every file, and reports every problem found rather than stopping at the first. */
export async function verifyBackup(dir: string, progress: Progress = silent): Promise<VerifyReport> {
  const started = Date.now();
  let manifest: Manifest;
  try {
    manifest = await readManifest(dir);
  } catch (error) {
    const problems = [{ file: MANIFEST_FILE, problem: (error as Error).message.replace(`${MANIFEST_FILE} `, '') }];
    return { dir, ok: false, problems, ms: Date.now() - started };
  }
  const problems: VerifyProblem[] = [];
  for (const entry of manifest.collections) {
    const found = [
      ...(await checkMetadata(dir, entry, manifest.gzip)),
      ...(await checkBson(dir, entry, manifest.gzip, progress)),
    ];
    problems.push(...found);
    progress({
      event: 'collection-verified',
      message:
        found.length === 0
          ? `  ${entry.name}: ${entry.documents} documents, ${megabytes(entry.bsonBytes)}: intact`
          : `  ${entry.name}: DAMAGED`,
      collection: entry.name,
      documents: entry.documents,
      ok: found.length === 0,
    });
  }
  return { dir, ok: problems.length === 0, manifest, problems, ms: Date.now() - started };
}

/** The size first: a truncated file is named as such without reading it. */
async function checkSize(dir: string, file: StoredFile): Promise<VerifyProblem | undefined> {
  const stats = await statIfPresent(join(dir, file.path));
  if (stats === undefined) return { file: file.path, problem: 'is missing' };
  if (!stats.isFile()) return { file: file.path, problem: 'is not a file' };
  if (stats.size !== file.bytes) {
    const how = stats.size < file.bytes ? 'truncated' : 'longer than written';
    return { file: file.path, problem: `is ${stats.size} bytes, the manifest records ${file.bytes}: ${how}` };
  }
  return undefined;
}

async function checkMetadata(dir: string, entry: CollectionEntry, gzip: boolean): Promise<VerifyProblem[]> {
  const file = entry.metadata;
  const sized = await checkSize(dir, file);
  if (sized !== undefined) return [sized];
  const stored = await readFile(join(dir, file.path));
  if (sha256().update(stored).digest('hex') !== file.sha256)
    return [{ file: file.path, problem: 'does not match its SHA-256 in the manifest: damaged' }];
  try {
    const metadata = parseMetadata((gzip ? gunzipSync(stored) : stored).toString('utf8'), entry.name);
    if (metadata.indexes.length !== entry.indexes) {
      return [
        { file: file.path, problem: `lists ${metadata.indexes.length} indexes, the manifest records ${entry.indexes}` },
      ];
    }
  } catch (error) {
    return [{ file: file.path, problem: (error as Error).message }];
  }
  return [];
}

/**
 * Reads the whole .bson file through: the stored bytes against their checksum, the decompressed
 * ones split into documents (framing), counted, and against theirs.
 */
async function checkBson(
  dir: string,
  entry: CollectionEntry,
  gzip: boolean,
  progress: Progress,
): Promise<VerifyProblem[]> {
  const file = entry.bson;
  const sized = await checkSize(dir, file);
  if (sized !== undefined) return [sized];
  let storedSha256 = '';
  const content = readStoredFile(dir, file.path, gzip, (stored) => (storedSha256 = stored.sha256));
  const hash = sha256();
  let documents = 0;
  let bytes = 0;
  const due = throttled(1000);
  try {
    for await (const document of bsonDocuments(content)) {
      hash.update(document);
      documents += 1;
      bytes += document.length;
      if (due())
        progress({
          event: 'verify-progress',
          message: `  ${entry.name}: ${documents} documents checked`,
          collection: entry.name,
          documents,
        });
    }
  } catch (error) {
    content.destroy();
    if (error instanceof FramingError)
      return [{ file: file.path, problem: `is not a sequence of whole BSON documents: ${error.message}` }];
    // zlib's errors: a .gz cut short or corrupted.
    return [{ file: file.path, problem: `cannot be read: ${(error as Error).message}` }];
  }
  const problems: VerifyProblem[] = [];
  if (storedSha256 !== file.sha256)
    problems.push({ file: file.path, problem: 'does not match its SHA-256 in the manifest: damaged' });
  if (documents !== entry.documents)
    problems.push({
      file: file.path,
      problem: `holds ${documents} documents, the manifest records ${entry.documents}`,
    });
  else if (bytes !== entry.bsonBytes || hash.digest('hex') !== entry.bsonSha256) {
    problems.push({ file: file.path, problem: 'its documents do not match their SHA-256 in the manifest: damaged' });
  }
  return problems;
}

export function describeReport(report: VerifyReport): string {
  const { manifest, problems } = report;
  if (!report.ok || manifest === undefined) {
    return (
      `the backup in ${report.dir} is damaged or incomplete ` +
      `(${problems.length} problem${problems.length === 1 ? '' : 's'})`
    );
  }
  return (
    `the backup in ${report.dir} is intact: ${manifest.totals.documents} documents of ` +
    `${manifest.collections.length} collections of ${manifest.database} as of ${manifest.snapshotAt}, ` +
    `checked in ${seconds(report.ms)}`
  );
}
