// What the benchmarks share: the customers the migrations and backup benchmarks insert, the
// environment every result records, and how a result is written.

import { mkdir, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';

/** Seconds (or any figure) to two decimals, as the results report them. */
export const round = (value: number, digits = 2) => Math.round(value * 10 ** digits) / 10 ** digits;

/** The middle value (the mean of the two middle ones for an even count). */
export const median = (values: readonly number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};

/** The machine and mongod a result was measured on. */
export function environmentOf<M extends { version: string; source: string }>(mongod: M) {
  return { node: process.version, platform: process.platform, cpus: availableParallelism(), mongod };
}

/** Writes a result as JSON, creating its directory, and says where. */
export async function writeResult(file: URL, result: unknown): Promise<void> {
  await mkdir(new URL('.', file), { recursive: true });
  await writeFile(file, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`wrote ${fileURLToPath(file)}`);
}

// The customers are many and cheap to make, each the same person whatever shape `spent` has
// (the reshaping migration changes only that field).

/** Customer number `i`, a quarter of whom never ordered; `spent` is whatever shape the caller stores. */
export function benchCustomer(i: number, spent: unknown): Record<string, unknown> {
  const createdAt = new Date(Date.UTC(2026, 0, 1) + i * 60_000);
  const ordered = i % 4 !== 0;
  return {
    email: `bench-${i}@example.com`,
    name: `Customer ${i}`,
    addresses: [{ label: 'home', line1: `${i} Main Street`, city: 'Amsterdam', postalCode: '1011 AB', country: 'NL' }],
    marketingOptIn: i % 2 === 0,
    stats: { orderCount: ordered ? 1 + (i % 7) : 0, spent, ...(ordered ? { lastOrderAt: createdAt } : {}) },
    version: 1,
    createdAt,
    updatedAt: createdAt,
  };
}
