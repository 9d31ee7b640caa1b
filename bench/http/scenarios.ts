// The requests of each scenario, the same for every server: which URL, which body, how many
// clients. Every server gets the same Authorization header (the comparison servers ignore it).

import type { Request } from 'autocannon';
import { customerWithTag, productWithSku, WAREHOUSE, type Fixture } from './data.ts';
import type { Load } from './load.ts';
import type { BenchOptions, ScenarioName } from './options.ts';
import type { ServerName } from './processes.ts';

export interface ScenarioContext {
  options: BenchOptions;
  fixture: Fixture;
  apiKey: string;
  /** Per server: the first page of the cursor walk and the page the walk reached. */
  walk: Partial<Record<ServerName, { first: string; last: string; walkSeconds?: number }>>;
}

export interface Scenario {
  name: ScenarioName;
  title: string;
  load(server: ServerName, context: ScenarioContext, tag: string): Load;
}

const TAGS: Record<ServerName, string> = { service: 'S', floor: 'F', express: 'E' };
const BATCH = 100;

const headers = (context: ScenarioContext, contentType?: string): Record<string, string> => ({
  authorization: `Bearer ${context.apiKey}`,
  ...(contentType !== undefined && { 'content-type': contentType }),
});

/** One request whose path (and body) change on every call, round-robin over `count` variants. */
function rotating(count: number, build: (i: number, request: Request) => void): Request[] {
  let i = Math.floor(Math.random() * count);
  return [
    {
      setupRequest: (request: Request) => {
        build(i++ % count, request);
        return request;
      },
    },
  ];
}

const random = (below: number) => Math.floor(Math.random() * below);

/** An order of one or two distinct hot SKUs, one or two units each, by a random customer. */
function placement(fixture: Fixture, skus: readonly string[]): string {
  const first = random(skus.length);
  const lines = [{ sku: skus[first]!, quantity: 1 + random(2) }];
  if (Math.random() < 0.5)
    lines.push({ sku: skus[(first + 1 + random(skus.length - 1)) % skus.length]!, quantity: 1 + random(2) });
  return JSON.stringify({
    customerId: fixture.customerIds[random(fixture.customerIds.length)],
    warehouse: WAREHOUSE,
    lines,
  });
}

/** Documents of one ingest round: the whole ingest over its rounds, in whole batches. */
export const documentsPerRound = (options: BenchOptions) =>
  Math.ceil(options.ingestDocuments / Math.max(1, options.ingestRounds) / BATCH) * BATCH;

/** The ingest's request bodies: `documents` new customers in batches of 100, made up front. */
export function ingestBodies(context: ScenarioContext, documents: number, tag: string): string[] {
  const templates = context.fixture.customerTemplates;
  const bodies: string[] = [];
  for (let start = 0; start < documents; start += BATCH) {
    const operations = [];
    for (let i = start; i < Math.min(documents, start + BATCH); i++) {
      operations.push({
        op: 'insert',
        collection: 'customers',
        document: customerWithTag(templates[i % templates.length]!, `${tag}x${i}`.toLowerCase()),
      });
    }
    bodies.push(JSON.stringify({ operations }));
  }
  return bodies;
}

/** One page of the cursor walk, read over and over: its first page, or the one it reached. */
function walkPage(name: ScenarioName, title: string, page: 'first' | 'last'): Scenario {
  return {
    name,
    title,
    load: (server, context) => ({
      connections: context.options.connections,
      headers: headers(context),
      requests: [{ method: 'GET', path: context.walk[server]![page] }],
    }),
  };
}

export const SCENARIO_LIST: readonly Scenario[] = [
  {
    name: 'read',
    title: 'Read one product by id',
    load: (_server, context) => ({
      connections: context.options.connections,
      headers: headers(context),
      requests: rotating(context.fixture.readIds.length, (i, request) => {
        request.method = 'GET';
        request.path = `/v1/products/${context.fixture.readIds[i]}`;
      }),
    }),
  },
  {
    name: 'list',
    title: 'List 100 products of a category by price',
    load: (_server, context) => ({
      connections: context.options.connections,
      headers: headers(context),
      requests: rotating(context.fixture.categories.length, (i, request) => {
        request.method = 'GET';
        request.path = `/v1/products?category=${context.fixture.categories[i]}&sort=-price.amount&limit=100`;
      }),
    }),
  },
  walkPage('page-1', 'Cursor walk: the first page', 'first'),
  walkPage('page-1000', 'Cursor walk: page 1,000', 'last'),
  {
    name: 'create',
    title: 'Create a product',
    load: (server, context, tag) => {
      let created = 0;
      const templates = context.fixture.templates;
      return {
        connections: context.options.connections,
        headers: headers(context, 'application/json'),
        requests: rotating(templates.length, (i, request) => {
          request.method = 'POST';
          request.path = '/v1/products';
          request.body = JSON.stringify(productWithSku(templates[i]!, `CR-${TAGS[server]}-${tag}-${created++}`));
        }),
      };
    },
  },
  {
    name: 'patch',
    title: 'Merge-patch a product',
    load: (_server, context) => ({
      connections: context.options.connections,
      headers: headers(context, 'application/merge-patch+json'),
      requests: rotating(context.fixture.patchIds.length, (i, request) => {
        request.method = 'PATCH';
        request.path = `/v1/products/${context.fixture.patchIds[i]}`;
        request.body = JSON.stringify({ price: { amount: 199 + random(50_000) } });
      }),
    }),
  },
  {
    name: 'order',
    title: 'Place an order (transaction), 10 hot SKUs',
    load: (server, context) => ({
      connections: context.options.orderConnections,
      headers: headers(context, 'application/json'),
      requests: rotating(1, (_i, request) => {
        request.method = 'POST';
        request.path = '/v1/orders';
        request.body = placement(context.fixture, context.fixture.hotSkus[server]);
      }),
    }),
  },
  {
    name: 'ingest',
    title: 'Ingest 100,000 customers, batches of 100',
    load: (server, context, tag) => {
      // A warm-up sends 2,000 documents.
      const documents =
        tag === 'W' ? Math.min(2000, context.options.ingestDocuments) : documentsPerRound(context.options);
      const bodies = ingestBodies(context, documents, `${TAGS[server]}${tag}`);
      let next = 0;
      return {
        connections: context.options.ingestConnections,
        amount: bodies.length,
        headers: headers(context, 'application/json'),
        requests: [
          {
            setupRequest: (request: Request) => {
              request.method = 'POST';
              request.path = '/v1/batch';
              request.body = bodies[next++ % bodies.length];
              return request;
            },
          },
        ],
      };
    },
  },
];

export { placement, TAGS, BATCH };
