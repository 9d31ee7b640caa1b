// What the fault suite holds the service to, and how long each phase of a scenario lasts: one
// place to read and adjust them.

/** The service's own deadline per request, configured explicitly for the suite. */
export const REQUEST_DEADLINE_MS = 5000;
/** Every answer must leave within the deadline plus this margin (scheduling on a busy machine). */
export const ANSWER_MARGIN_MS = 2000;
export const ANSWER_BOUND_MS = REQUEST_DEADLINE_MS + ANSWER_MARGIN_MS;

/** How long /health/ready may wait for a ping (the service's default, set explicitly). */
export const READINESS_TIMEOUT_MS = 1000;
export const READINESS_MARGIN_MS = 1000;
export const READINESS_BOUND_MS = READINESS_TIMEOUT_MS + READINESS_MARGIN_MS;
export const READINESS_POLL_MS = 1000;

/**
 * Once MongoDB is back, a key must get a definitive answer within this long of retrying: a
 * generous lease for whatever the first request with the key left behind. Wall-clock time from
 * the first re-send, the service's own waiting and the Retry-After pauses included.
 */
export const BLOCKED_AFTER_MS = 30_000;

/** Load before the fault, so the fault meets requests in every stage. */
export const WARMUP_MS = 5000;
/** Load after readiness is back, so the suite sees writes succeed again. */
export const AFTER_RECOVERY_MS = 5000;
/** Every scenario runs its load at least this long, fault and recovery included. */
export const MIN_LOAD_MS = 30_000;
/** Longest wait for /health/ready to answer 200 after the fault is repaired. */
export const RECOVERY_TIMEOUT_MS = 60_000;

/** Writers creating products and loops placing orders, as the brief of the suite asks. */
export const PRODUCT_WRITERS = 8;
export const ORDER_LOOPS = 2;
/** Stock of each seeded item: more than the order loops can take in a scenario. */
export const INITIAL_STOCK = 1_000_000;
