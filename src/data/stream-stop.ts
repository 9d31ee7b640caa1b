// How a change stream of this service stops: its reading loop closes the stream itself, between
// two commands. Closed from outside under the aggregate that opens its cursor, the driver ends the
// cursor's session before it knows the cursor's id, then skips the killCursors because that session
// has ended, and the cursor stays open on the server until it times out. The audit stream, the
// change feed and the key stream all stop this way.

/** How long past its getMores' wait (maxAwaitMs) a reading loop gets to end by itself. */
const STOP_GRACE_MS = 1_000;

/**
 * Waits for `reading` (a loop told to stop) to end by itself: its command in flight returns within
 * maxAwaitMs while MongoDB answers. One that has not ended STOP_GRACE_MS past that (MongoDB gone)
 * has its stream closed under it by `closeUnder`, and is then awaited.
 */
export async function stopReading(
  reading: Promise<unknown>,
  maxAwaitMs: number,
  closeUnder: () => Promise<unknown>,
): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), maxAwaitMs + STOP_GRACE_MS);
  });
  const ended = await Promise.race([reading.then(() => true), late]);
  clearTimeout(timer);
  if (!ended) {
    await closeUnder();
    await reading;
  }
}
