// A cap on expensive requests (lists, batches: routes with config.expensive) running at once in
// this instance: past MAX_CONCURRENT_QUERIES they wait in line briefly, and when the line does
// not move they get 503 with Retry-After. Cheap reads by id and health checks never wait behind
// a burst of heavy queries, and MongoDB's pool is not drained by them.

import fp from 'fastify-plugin';
import type { FastifyRequest } from 'fastify';
import { AppError } from '../../errors.ts';
import { addRouteHook } from './route-hooks.ts';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route may run a costly query: it takes one of the limited slots while it runs. */
    expensive?: boolean;
  }
  interface FastifyRequest {
    heldSlot: boolean;
  }
  interface FastifyInstance {
    /** What /metrics reports of the slots. */
    shedding: { readonly running: number; readonly queued: number; readonly rejected: number };
  }
}

export interface LoadSheddingOptions {
  maxConcurrent: number;
  /** Longest wait in line for a slot. */
  queueWaitMs?: number;
}

/** A counting semaphore whose waiters give up after a deadline. */
export class Slots {
  private inUse = 0;
  private readonly waiting: Array<{ grant: () => void }> = [];

  constructor(private readonly capacity: number) {}

  async acquire(waitMs: number): Promise<boolean> {
    if (this.inUse < this.capacity) {
      this.inUse++;
      return true;
    }
    return new Promise<boolean>((resolve) => {
      const waiter = {
        grant: () => {
          clearTimeout(timer);
          resolve(true);
        },
      };
      const timer = setTimeout(() => {
        this.waiting.splice(this.waiting.indexOf(waiter), 1);
        resolve(false);
      }, waitMs);
      this.waiting.push(waiter);
    });
  }

  release(): void {
    const next = this.waiting.shift();
    // The slot passes straight to the next in line, so inUse does not change.
    if (next !== undefined) next.grant();
    else this.inUse--;
  }

  get busy(): number {
    return this.inUse;
  }

  get queued(): number {
    return this.waiting.length;
  }
}

export default fp<LoadSheddingOptions>(
  async (app, options) => {
    const slots = new Slots(options.maxConcurrent);
    const queueWaitMs = options.queueWaitMs ?? 1000;
    app.decorateRequest('heldSlot', false);
    let rejected = 0;
    app.decorate('shedding', {
      get running() {
        return slots.busy;
      },
      get queued() {
        return slots.queued;
      },
      get rejected() {
        return rejected;
      },
    });

    const acquire = async (request: FastifyRequest) => {
      // The wait for a slot is bounded by the request's deadline too, like everything it waits for.
      if (!(await slots.acquire(Math.min(queueWaitMs, request.deadline.remaining())))) {
        rejected++;
        throw new AppError(503, 'overloaded', 'Service Unavailable', {
          detail: `${options.maxConcurrent} expensive requests are already running on this instance; retry shortly.`,
          headers: { 'retry-after': '1' },
        });
      }
      request.heldSlot = true;
    };
    const release = async (request: FastifyRequest) => {
      if (!request.heldSlot) return;
      request.heldSlot = false;
      slots.release();
    };
    app.addHook('onRoute', (route) => {
      if (route.config?.expensive !== true) return;
      addRouteHook(route, 'preHandler', acquire, true);
      addRouteHook(route, 'onResponse', release);
      addRouteHook(route, 'onRequestAbort', release);
    });
  },
  { name: 'load-shedding', dependencies: ['authentication'], fastify: '5.x' },
);
