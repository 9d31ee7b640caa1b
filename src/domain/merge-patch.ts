// JSON Merge Patch (RFC 7396): objects merge recursively, null removes a member, anything else
// (arrays included) replaces the target value.

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const isObject = (value: unknown): value is Record<string, Json> =>
  value !== null && typeof value === 'object' && !Array.isArray(value);

export function applyMergePatch(target: Json | undefined, patch: Json): Json {
  if (!isObject(patch)) return patch;
  const removed = new Set(Object.keys(patch).filter((key) => patch[key] === null));
  const kept = Object.entries(isObject(target) ? target : {}).filter(([key]) => !removed.has(key));
  const result: Record<string, Json> = Object.fromEntries(kept);
  for (const [key, value] of Object.entries(patch)) {
    if (value !== null) result[key] = applyMergePatch(result[key], value);
  }
  return result;
}
