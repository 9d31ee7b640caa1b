// What storekeeper/client's types refuse, checked by the compiler: `npx tsc -p tsconfig.json`
// fails when a `@ts-expect-error` below finds no error, i.e. when a misspelt problem member,
// problem code, path, filter or header would compile. The function is never called; the test
// only makes vitest report the file.

import { describe, expectTypeOf, it } from 'vitest';
import {
  header,
  isProblem,
  type DocumentOf,
  type ItemOf,
  type Order,
  type StorekeeperClient,
  type StorekeeperProblem,
} from '../../src/client/index.ts';

/** Takes a value the compiler must type (or refuse). */
const use = (value: unknown) => value;

async function typeChecks(client: StorekeeperClient, error: unknown, problem: StorekeeperProblem, response: Response) {
  if (isProblem(error, 'insufficient-stock')) {
    expectTypeOf(error.shortages[0]!.available).toEqualTypeOf<number>();
    expectTypeOf(error.status).toEqualTypeOf<number>();
    expectTypeOf(error.type).toEqualTypeOf<'urn:storekeeper:problem:insufficient-stock'>();
    // @ts-expect-error: a misspelt member of the kind
    use(error.shortage);
    // @ts-expect-error: a member of another kind (invalid-transition)
    use(error.currentStatus);
  }
  if (isProblem(error, 'validation-failed')) expectTypeOf(error.errors[0]!.pointer).toEqualTypeOf<string>();
  // @ts-expect-error: a problem code the contract does not name
  isProblem(error, 'stock-shortage');

  // The union of documents is discriminated by type.
  if (problem.type === 'urn:storekeeper:problem:invalid-transition')
    expectTypeOf(problem.currentStatus).toEqualTypeOf<Order['status']>();
  // @ts-expect-error: not a member of every problem
  use(problem.shortages);

  // @ts-expect-error: a path the contract does not have
  await client.GET('/v1/product');
  // @ts-expect-error: orders are not patched (405): their actions move them
  await client.patchDocument('orders', 'x', { status: 'paid' });
  // @ts-expect-error: API keys are not read with ETags
  await client.getDocument('keys', 'x');
  expectTypeOf<DocumentOf<'stock'>['available']>().toEqualTypeOf<number>();
  // @ts-expect-error: a document read, not a list
  client.pages('/v1/products/{id}');
  // @ts-expect-error: a filter products do not have
  client.all('/v1/products', { colour: 'red' });
  expectTypeOf<ItemOf<'/v1/audit'>>().toHaveProperty('documentId');

  // @ts-expect-error: the contract spells it ETag
  header(response, 'Etag');
  expectTypeOf(header(response, 'Retry-After')).toEqualTypeOf<number | undefined>();
  expectTypeOf(header(response, 'Location')).toEqualTypeOf<string | undefined>();
}

describe('storekeeper/client types', () => {
  it('are checked by the compiler', () => {
    expectTypeOf(typeChecks).toBeFunction();
  });
});
