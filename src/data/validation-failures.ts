// MongoDB's validators are the last line behind the API's own checks: a write they refuse
// (DocumentValidationFailure, code 121) is a bug of the service unless it passed a declared
// maximum, which a sequence of valid writes can reach (counters that grow). That one refusal is
// read from the server's explanation (errInfo) and answered as the limit-exceeded problem; any
// other stays what it is, a 500.

import { limitExceeded } from '../domain/limits.ts';
import type { AppError } from '../errors.ts';

const DOCUMENT_VALIDATION_FAILURE = 121;

interface Explained {
  code?: unknown;
  errInfo?: unknown;
  writeErrors?: unknown;
  errorResponse?: unknown;
  cause?: unknown;
}

/** The errInfo of a 121 refusal carried by `error` (directly, wrapped, or as the first write error of a bulk write). */
function explanationOf(error: unknown): Record<string, unknown> | undefined {
  const pending: unknown[] = [error];
  for (let depth = 0; pending.length > 0 && depth < 10; depth++) {
    const current = pending.shift() as Explained | null | undefined;
    if (current === null || typeof current !== 'object') continue;
    if (
      current.code === DOCUMENT_VALIDATION_FAILURE &&
      current.errInfo !== null &&
      typeof current.errInfo === 'object'
    ) {
      return current.errInfo as Record<string, unknown>;
    }
    if (Array.isArray(current.writeErrors))
      pending.push(
        ...current.writeErrors.map(
          (writeError: unknown) => (writeError as { err?: unknown } | null)?.err ?? writeError,
        ),
      );
    pending.push(current.errorResponse, current.cause);
  }
  return undefined;
}

interface Violation {
  field: string;
  limit: number;
  value: number;
}

/**
 * The first `maximum` the explanation reports, with the dotted path of its field. The server
 * nests explanations by operator: properties name fields, items name positions (left out of the
 * path: the limit is the field's), anything else nests further details.
 */
function firstMaximum(details: unknown, path: string[] = []): Violation | undefined {
  if (Array.isArray(details)) {
    for (const detail of details) {
      const found = firstMaximum(detail, path);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  if (details === null || typeof details !== 'object') return undefined;
  const node = details as Record<string, unknown>;
  if (node.operatorName === 'maximum' && typeof node.consideredValue === 'number') {
    const limit = (node.specifiedAs as { maximum?: unknown } | undefined)?.maximum;
    if (typeof limit === 'number') return { field: path.join('.'), limit, value: node.consideredValue };
  }
  const here = typeof node.propertyName === 'string' ? [...path, node.propertyName] : path;
  for (const value of Object.values(node)) {
    if (value !== null && typeof value === 'object') {
      const found = firstMaximum(value, here);
      if (found !== undefined) return found;
    }
  }
  return undefined;
}

/**
 * The limit-exceeded problem for a refusal of MongoDB's validator that passed a maximum; undefined for
 * anything else.
 */
export function limitExceededFrom(error: unknown): AppError | undefined {
  try {
    const explanation = explanationOf(error);
    if (explanation === undefined) return undefined;
    const violation = firstMaximum(explanation.details);
    if (violation === undefined || violation.field === '') return undefined;
    const failing = explanation.failingDocumentId as { toHexString?: () => string } | string | undefined;
    const documentId =
      typeof failing === 'string'
        ? failing
        : typeof failing?.toHexString === 'function'
          ? failing.toHexString()
          : undefined;
    return limitExceeded({ ...violation, ...(documentId !== undefined && { documentId }) });
  } catch {
    return undefined;
  }
}
