// The documents a shop under test starts with besides the demo data: typed as the API's request
// bodies (a member with a default may be left out), checked against the entity declarations
// before anything is written, then written through the shop's own operations (documents created,
// orders placed and moved on by the order workflow), so stock is reserved, prices come from the
// catalog, customers' stats count their orders and the audit trail and change feed say what
// happened, exactly as if a client had sent them.

import { Type, type Static } from 'typebox';
import type { App } from '../app.ts';
import { Customer, Product, Stock } from '../domain/entities/index.ts';
import { ORDER_STATUSES } from '../domain/entities/order.ts';
import { OrderPlacement, type OrderAction } from '../domain/orders.ts';
import { OBJECT_ID_PATTERN } from '../domain/types.ts';
import { compileValidator } from '../domain/validation.ts';
import { BulkInsertFailure } from '../data/documents.ts';
import type { WriteContext } from '../data/unit-of-work.ts';
import { AppError } from '../errors.ts';

/** What a client writes: the writable fields, those with a default optional. */
type Input<W, Defaulted extends keyof W> = Omit<W, Defaulted> & Partial<Pick<W, Defaulted>>;

export type ProductInput = Input<Static<typeof Product.writable>, 'tags' | 'attributes' | 'status'>;
export type CustomerInput = Input<Static<typeof Customer.writable>, 'addresses' | 'marketingOptIn'>;
export type StockInput = Static<typeof Stock.writable>;
export type OrderStatus = (typeof ORDER_STATUSES)[number];

/** An order, placed by the order workflow and then moved on to `status` by its actions. */
export interface OrderFixture {
  /** The customer who orders: an e-mail (of a customer of the fixtures or the demo data) or an id. */
  customer: string;
  warehouse: OrderPlacement['warehouse'];
  lines: OrderPlacement['lines'];
  /** Where the order ends up (default placed): paid is placed then paid, shipped is paid then shipped... */
  status?: OrderStatus;
}

export interface Fixtures {
  products?: ProductInput[];
  customers?: CustomerInput[];
  stock?: StockInput[];
  orders?: OrderFixture[];
}

/** One thing wrong with a fixture: where (a JSON pointer into the fixtures) and why. */
export interface FixtureProblem {
  pointer: string;
  message: string;
}

/** startShop's refusal of its fixtures, before or while writing them; `problems` says each. */
export class FixtureError extends Error {
  override readonly name = 'FixtureError';

  constructor(readonly problems: readonly FixtureProblem[]) {
    super(`invalid fixtures: ${problems.map((problem) => `${problem.pointer} ${problem.message}`).join('; ')}`);
  }
}

/** The actions that take a placed order to each status, in order. */
const ACTIONS_TO: Readonly<Record<OrderStatus, readonly OrderAction[]>> = {
  placed: [],
  paid: ['pay'],
  shipped: ['pay', 'ship'],
  delivered: ['pay', 'ship', 'deliver'],
  cancelled: ['cancel'],
};

const OrderFixtureSchema = Type.Object(
  {
    customer: Type.String({ minLength: 1, maxLength: 254 }),
    warehouse: OrderPlacement.properties.warehouse,
    lines: OrderPlacement.properties.lines,
    status: Type.Optional(Type.Enum(ORDER_STATUSES)),
  },
  { additionalProperties: false },
);

const COLLECTIONS = ['products', 'customers', 'stock', 'orders'] as const;

/** As a request body is validated: defaults filled in (on the copy returned), every error listed. */
const checks = {
  products: compileValidator(Product.writable, 'fixtures', { applyDefaults: true }),
  customers: compileValidator(Customer.writable, 'fixtures', { applyDefaults: true }),
  stock: compileValidator(Stock.writable, 'fixtures', { applyDefaults: true }),
  orders: compileValidator(OrderFixtureSchema, 'fixtures'),
};

export interface CheckedFixtures {
  products: Record<string, unknown>[];
  customers: Record<string, unknown>[];
  stock: Record<string, unknown>[];
  orders: OrderFixture[];
}

/**
 * Every fixture against its declaration, all problems at once; the documents as they will be
 * written (copies, defaults filled in).
 */
export function checkFixtures(fixtures: Fixtures): CheckedFixtures {
  const problems: FixtureProblem[] = [];
  const unknown = Object.keys(fixtures).filter((name) => !(COLLECTIONS as readonly string[]).includes(name));
  for (const name of unknown) problems.push({ pointer: `/${name}`, message: 'is not a collection fixtures can fill' });
  const checked = { products: [], customers: [], stock: [], orders: [] } as CheckedFixtures;
  for (const collection of COLLECTIONS) {
    const given: unknown = fixtures[collection] ?? [];
    if (!Array.isArray(given)) {
      problems.push({ pointer: `/${collection}`, message: 'must be an array' });
      continue;
    }
    for (const [index, item] of (given as unknown[]).entries()) {
      const copy = structuredClone(item) as never;
      for (const error of checks[collection](copy))
        problems.push({ pointer: `/${collection}/${index}${error.pointer}`, message: error.message });
      checked[collection].push(copy);
    }
  }
  if (problems.length > 0) throw new FixtureError(problems);
  return checked;
}

/** Writes checked fixtures through the shop: each collection's documents in one unit of work, then the orders. */
export async function writeFixtures(app: App, fixtures: CheckedFixtures, context: WriteContext): Promise<void> {
  for (const collection of ['products', 'customers', 'stock'] as const) {
    const documents = fixtures[collection];
    if (documents.length === 0) continue;
    try {
      await app.stores.work.run(context, (tx) => app.shop.documents.insertIn(tx, collection, documents));
    } catch (error) {
      if (!(error instanceof BulkInsertFailure)) throw error;
      throw new FixtureError([{ pointer: `/${collection}/${error.index}`, message: refusal(error.problem) }]);
    }
  }
  for (const [index, fixture] of fixtures.orders.entries()) {
    try {
      const customerId = await customerIdOf(app, fixture.customer);
      const order = await app.shop.orders.place(
        { customerId, warehouse: fixture.warehouse, lines: fixture.lines },
        context,
      );
      for (const action of ACTIONS_TO[fixture.status ?? 'placed'])
        await app.shop.orders.act({ id: order._id.toHexString(), action }, context);
    } catch (error) {
      if (!(error instanceof AppError || error instanceof FixtureError)) throw error;
      throw new FixtureError([{ pointer: `/orders/${index}`, message: refusal(error) }]);
    }
  }
}

async function customerIdOf(app: App, customer: string): Promise<string> {
  if (new RegExp(OBJECT_ID_PATTERN).test(customer)) return customer;
  // The collection's collation compares e-mails without case, as the unique index does.
  const found = await app.stores
    .repositoryOf(Customer.collection)
    .findOne({ email: customer }, { projection: { _id: 1 } });
  if (found === null) throw new FixtureError([{ pointer: '', message: `no customer has the e-mail ${customer}` }]);
  return found._id.toHexString();
}

/** What the shop answered, as its problem document would say it. */
function refusal(problem: unknown): string {
  if (problem instanceof FixtureError) return problem.problems.map((p) => p.message).join('; ');
  if (!(problem instanceof AppError)) return String(problem);
  const errors = (problem.extensions.errors ?? []) as { pointer: string; message: string }[];
  const fields = errors.map((error) => `${error.pointer} ${error.message}`).join('; ');
  return `refused by the shop (${problem.status} ${problem.code}): ${problem.message}${fields ? ` ${fields}` : ''}`;
}
