// The customers the migrations and backup benchmarks insert: many, cheap to make, each the same
// person whatever shape `spent` has (the reshaping migration changes only that field).

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
