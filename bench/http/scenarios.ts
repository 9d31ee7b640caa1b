// The requests of each scenario, the same for every server: which URL, which body, how many
// clients, and which servers it runs on. Every server gets the same Authorization header (the
// comparison servers ignore it). The document cache's two scenarios run on the service with its
// cache on and off and on the floor: hot reads go round-robin over 1,000 products, which fit in
// the cache many times over, read before the warm-up until the cache holds them all; cold reads
// make every request a product's first read by id on that server, so that with the cache on each
// one is a miss (what the cache costs a read it cannot answer: the query, and whatever it does with
// an answer it has not kept), in rounds of a fixed number of requests since the ids run out. The
// monitoring scenario is the list again, on the service with command monitoring on and off.

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
  /** Per server: how many of the cold ids it has been sent, so that none is read twice. */
  coldReads: Partial<Record<ServerName, number>>;
}

export interface Scenario {
  name: ScenarioName;
  title: string;
  /** The servers it runs on (those of them the run has). */
  servers: readonly ServerName[];
  /** Reads by id: what the service's document cache did is read from /metrics around each round. */
  readsById?: boolean;
  /** Requests sent to each server before its warm-up, however short that is: what the rounds need in place (bench/http.ts fill). */
  fill?(server: ServerName, context: ScenarioContext): Load;
  load(server: ServerName, context: ScenarioContext, tag: string): Load;
  /**
   * Each round loads every server at the same time instead of one after another: for a ratio of
   * CPU per request between two builds of one server, which the machine's drift from one round to
   * the next (a shared host's steal) would otherwise swamp.
   */
  sideBySide?: boolean;
}

/** The service, the floor and the alternative. */
const COMPARED: readonly ServerName[] = ['service', 'floor', 'express'];
/** The document cache's scenarios: the service with its cache on and off, and the floor. */
const CACHE_COMPARED: readonly ServerName[] = ['service', 'service-nocache', 'floor'];
/** What command monitoring costs: the service with it on and off, and the floor. */
const MONITORING_COMPARED: readonly ServerName[] = ['service', 'service-unmonitored', 'floor'];

const TAGS: Record<ServerName, string> = {
  service: 'S',
  'service-nocache': 'N',
  'service-unmonitored': 'U',
  floor: 'F',
  express: 'E',
};
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

/**
 * Requests of each cold-read round and of its warm-up: as many as the cold ids allow, keeping a
 * twentieth of them spare (a connection may be set up for one request more than it sends).
 */
export function coldReadAmounts(options: BenchOptions, ids: number): { round: number; warmup: number } {
  const share = options.duration > 0 ? options.warmup / options.duration : 0;
  const round = Math.floor((0.95 * ids) / (Math.max(1, options.rounds) + share));
  if (round < options.connections)
    throw new Error(`cold-read: ${ids} unread products are too few for ${options.rounds} rounds (raise --products)`);
  return { round, warmup: options.warmup > 0 ? Math.max(options.connections, Math.floor(round * share)) : 0 };
}

/** Reads by id round-robin over `ids`. */
const readsOf = (ids: readonly string[], context: ScenarioContext): Load => ({
  connections: context.options.connections,
  headers: headers(context),
  requests: rotating(ids.length, (i, request) => {
    request.method = 'GET';
    request.path = `/v1/products/${ids[i]}`;
  }),
});

/** One page of the cursor walk, read over and over: its first page, or the one it reached. */
function walkPage(name: ScenarioName, title: string, page: 'first' | 'last'): Scenario {
  return {
    name,
    title,
    servers: COMPARED,
    load: (server, context) => ({
      connections: context.options.connections,
      headers: headers(context),
      requests: [{ method: 'GET', path: context.walk[server]![page] }],
    }),
  };
}

/** Pages of 100 products of a category by price, the categories in turn. */
const categoryPages = (context: ScenarioContext): Load => ({
  connections: context.options.connections,
  headers: headers(context),
  requests: rotating(context.fixture.categories.length, (i, request) => {
    request.method = 'GET';
    request.path = `/v1/products?category=${context.fixture.categories[i]}&sort=-price.amount&limit=100`;
  }),
});

export const SCENARIO_LIST: readonly Scenario[] = [
  {
    name: 'read',
    // The service's cache holds these 1,000 after their first reads: on the service, hits.
    title: 'Read one product by id (1,000 ids, cache on)',
    servers: COMPARED,
    readsById: true,
    load: (_server, context) => readsOf(context.fixture.readIds, context),
  },
  {
    name: 'list',
    title: 'List 100 products of a category by price',
    servers: COMPARED,
    load: (_server, context) => categoryPages(context),
  },
  walkPage('page-1', 'Cursor walk: the first page', 'first'),
  walkPage('page-1000', 'Cursor walk: page 1,000', 'last'),
  {
    name: 'create',
    title: 'Create a product',
    servers: COMPARED,
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
    servers: COMPARED,
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
    servers: COMPARED,
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
    servers: COMPARED,
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
  // Last: the cold reads fill the service's cache to CACHE_MAX_MB, which the scenarios before would carry in their RSS.
  {
    name: 'hot-read',
    title: 'Hot reads: 1,000 products round-robin',
    servers: CACHE_COMPARED,
    readsById: true,
    // Read first until the service's cache holds them all, however fast the server: the rounds find them cached.
    fill: (_server, context) => ({
      ...readsOf(context.fixture.readIds, context),
      amount: context.fixture.readIds.length,
    }),
    load: (_server, context) => readsOf(context.fixture.readIds, context),
  },
  {
    name: 'cold-read',
    title: 'Cold reads: every product read once',
    servers: CACHE_COMPARED,
    readsById: true,
    load: (server, context, tag) => {
      const ids = context.fixture.coldIds;
      const amounts = coldReadAmounts(context.options, ids.length);
      return {
        connections: context.options.connections,
        amount: tag === 'W' ? amounts.warmup : amounts.round,
        headers: headers(context),
        requests: [
          {
            // Every server is sent the same ids in the same order, each once.
            setupRequest: (request: Request) => {
              const next = context.coldReads[server] ?? 0;
              context.coldReads[server] = next + 1;
              request.method = 'GET';
              request.path = `/v1/products/${ids[next % ids.length]}`;
              return request;
            },
          },
        ],
      };
    },
  },
  {
    // Every request one MongoDB find of a hundred documents: where command monitoring costs the
    // most per request (a cursor reply is what the driver's event would decode a second time).
    name: 'monitoring',
    title: 'List 100 products of a category by price, command monitoring on and off, side by side',
    servers: MONITORING_COMPARED,
    sideBySide: true,
    load: (_server, context) => categoryPages(context),
  },
];

export { placement, TAGS, BATCH };
