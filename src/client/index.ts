// storekeeper/client: a typed client of the HTTP API, generated from the contract
// (./openapi.ts, `npm run client`) and driven by openapi-fetch, which does the HTTP.

import createFetchClient, { type Client } from 'openapi-fetch';
import type { components, paths } from './openapi.ts';

export type { components, paths };

export interface ClientOptions {
  /** Where the service listens, e.g. http://127.0.0.1:3000 (no trailing path). */
  baseUrl: string;
  /** An API key (sk_...), sent as a bearer token on every request. */
  apiKey: string;
  /** The fetch to send requests with (defaults to globalThis.fetch). */
  fetch?: (request: Request) => Promise<Response>;
  /** Sent as User-Agent, so the service's logs name the caller. */
  userAgent?: string;
}

/** The typed methods of openapi-fetch, one per HTTP method, over every path of the contract. */
export type StorekeeperClient = Pick<Client<paths>, 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'>;

export function createClient(options: ClientOptions): StorekeeperClient {
  const send = options.fetch ?? ((request: Request) => globalThis.fetch(request));
  return createFetchClient<paths>({
    baseUrl: options.baseUrl,
    fetch: (request) => {
      request.headers.set('authorization', `Bearer ${options.apiKey}`);
      if (options.userAgent !== undefined) request.headers.set('user-agent', options.userAgent);
      return send(request);
    },
  });
}
