// File plumbing of backups: writing a file so that it either exists whole under its name or not
// at all (temp name, fsync, rename), with the size and SHA-256 of what was stored; and reading a
// stored file back as the bytes it was written from (gunzipped when it is a .gz).

import { createReadStream, createWriteStream } from 'node:fs';
import { open, rename, rm, stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { join } from 'node:path';
import { Transform, pipeline as pipelineCallback, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip, constants as zlib } from 'node:zlib';
import { sha256 } from './format.ts';
import type { StoredFile } from './manifest.ts';

/** A suffix no stored file has: what a crash leaves behind is recognisably unfinished. */
export const PARTIAL_SUFFIX = '.partial';

/** A path's stats, or undefined when nothing is there; any other failure to look is thrown. */
export async function statIfPresent(path: string): Promise<Stats | undefined> {
  try {
    return await stat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/**
 * Writes `source` to `dir/path` (gzip-compressed when asked), first under a temporary name,
 * flushed to disk and then renamed: a reader never sees half a file under the real name.
 * Returns the path, size and SHA-256 of the bytes stored.
 */
export async function writeStoredFile(
  dir: string,
  path: string,
  source: AsyncIterable<Buffer> | Iterable<Buffer>,
  gzip: boolean,
): Promise<StoredFile> {
  const target = join(dir, path);
  const temporary = `${target}${PARTIAL_SUFFIX}`;
  const { tap, measured } = measuringTap();
  try {
    // Level 6 is gzip's own default: most of the gain of 9 for a fraction of its time.
    const file = createWriteStream(temporary, { flags: 'wx' });
    if (gzip) await pipeline(toStream(source), createGzip({ level: zlib.Z_DEFAULT_COMPRESSION }), tap, file);
    else await pipeline(toStream(source), tap, file);
    await flushToDisk(temporary);
    await rename(temporary, target);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
  return { path, ...measured() };
}

/**
 * A pass-through stage that counts and hashes the bytes going through it; `measured` gives the
 * figures once the stream has ended (and only once: the hash is final then).
 */
function measuringTap(onEnd?: (file: { bytes: number; sha256: string }) => void): {
  tap: Transform;
  measured: () => { bytes: number; sha256: string };
} {
  const hash = sha256();
  let bytes = 0;
  const measured = () => ({ bytes, sha256: hash.digest('hex') });
  const tap = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      bytes += chunk.length;
      done(null, chunk);
    },
    flush(done) {
      if (onEnd !== undefined) onEnd(measured());
      done();
    },
  });
  return { tap, measured };
}

function toStream(source: AsyncIterable<Buffer> | Iterable<Buffer>): AsyncIterable<Buffer> {
  // pipeline takes an iterable as its source, but reads an array as a list of streams: wrapped.
  return (async function* () {
    yield* source;
  })();
}

/** fsync of a file, and of its directory so that the rename that follows is durable too. */
export async function flushToDisk(path: string): Promise<void> {
  const file = await open(path, 'r');
  try {
    await file.sync();
  } finally {
    await file.close();
  }
}

/** fsync of a directory: after renames into it, so they survive a power cut. */
export async function flushDirectory(path: string): Promise<void> {
  const directory = await open(path, 'r');
  try {
    await directory.sync();
  } catch (error) {
    // Some filesystems (and platforms) refuse fsync on a directory; the data itself is synced.
    if (!['EINVAL', 'EPERM', 'EISDIR'].includes((error as NodeJS.ErrnoException).code ?? '')) throw error;
  } finally {
    await directory.close();
  }
}

/**
 * The stored file's bytes as a stream, with the size and SHA-256 of the stored bytes reported
 * through `stored` once the stream has been read to its end.
 */
export function readStoredFile(
  dir: string,
  path: string,
  gzip: boolean,
  stored?: (file: { bytes: number; sha256: string }) => void,
): Readable {
  const raw = createReadStream(join(dir, path), { highWaterMark: 1024 * 1024 });
  const { tap } = measuringTap(stored);
  // pipeline, not pipe: an error anywhere, or the reader stopping early, closes every stage
  // (the file included); the error reaches the reader through the last stage.
  const ignore = () => {};
  if (!gzip) return pipelineCallback(raw, tap, ignore);
  return pipelineCallback(raw, tap, createGunzip(), ignore);
}
