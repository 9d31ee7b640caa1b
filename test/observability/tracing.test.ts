// Tracing with an in-memory exporter: an order placement is a request span whose transaction's
// MongoDB commands are its descendants, in the trace the caller's traceparent names, with no
// document value in any attribute, and the request's log lines carry the trace's ids. Tracing
// starts before this file loads mongoose (its MongoDB instrumentation patches the driver as it
// is loaded), so everything that loads mongoose is imported dynamically, after it.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { startTracing, stopTracing, tracingRequested } from '../../src/telemetry.ts';
import type { TestApp } from '../helpers/app.ts';
import type { Shop } from '../helpers/shop.ts';

const exporter = new InMemorySpanExporter();
const TRACE_ID = '0af7651916cd43dd8448eb211c80319c';
const PARENT_SPAN_ID = 'b7ad6b7169203331';

describe('tracing', () => {
  let t: TestApp;
  let shop: Shop;
  beforeAll(async () => {
    await startTracing({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
    const { buildTestApp, waitForDatabase } = await import('../helpers/app.ts');
    const { shop: shopOf } = await import('../helpers/shop.ts');
    t = await buildTestApp('tracing');
    await waitForDatabase(t.app);
    shop = shopOf(t.app);
  });
  afterAll(async () => {
    await t.app.close();
    await stopTracing();
  });

  it('is off unless the OTEL_* variables ask for it', () => {
    expect(tracingRequested({})).toBe(false);
    expect(tracingRequested({ OTEL_TRACES_EXPORTER: 'none' })).toBe(false);
    expect(tracingRequested({ OTEL_TRACES_EXPORTER: 'otlp' })).toBe(true);
    expect(tracingRequested({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' })).toBe(true);
    expect(tracingRequested({ OTEL_TRACES_EXPORTER: 'otlp', OTEL_SDK_DISABLED: 'true' })).toBe(false);
  });

  it("makes an order placement one request span, its transaction's commands its descendants, no document value in any attribute", async () => {
    const email = `traced-${process.pid}@example.com`;
    const sku = `TRACED-${process.pid}`;
    const customer = await shop.customer({ email, name: 'Traced Buyer' });
    await shop.product(sku);
    await shop.stock(sku, 'WH-1', 10);
    exporter.reset();

    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/orders',
      headers: { traceparent: `00-${TRACE_ID}-${PARENT_SPAN_ID}-01` },
      payload: { customerId: customer.id, warehouse: 'WH-1', lines: [{ sku, quantity: 2 }] },
    });
    expect(res.statusCode, res.body).toBe(201);

    const spans = exporter.getFinishedSpans().filter((span) => span.spanContext().traceId === TRACE_ID);
    const request = spans.find((span) => span.name === 'request');
    expect(request).toBeDefined();
    expect(request!.parentSpanContext?.spanId).toBe(PARENT_SPAN_ID);
    expect(request!.attributes['http.route']).toBe('/v1/orders');

    const byId = new Map(spans.map((span) => [span.spanContext().spanId, span]));
    const descendsFromRequest = (span: ReadableSpan) => {
      for (let parent = span.parentSpanContext?.spanId; parent !== undefined;) {
        if (parent === request!.spanContext().spanId) return true;
        parent = byId.get(parent)?.parentSpanContext?.spanId;
      }
      return false;
    };
    const commands = spans.filter((span) => span.attributes['db.system.name'] === 'mongodb');
    const names = commands.map((span) => span.name);
    // The stock reserved, the order and its audit entry written, all committed together.
    expect(names).toEqual(
      expect.arrayContaining(['find stock', 'findAndModify $cmd', 'insert audit_events', 'commitTransaction $cmd']),
    );
    for (const command of commands) expect(descendsFromRequest(command), command.name).toBe(true);

    const attributes = JSON.stringify(spans.map((span) => span.attributes));
    for (const value of [email, sku, customer.id, 'Traced Buyer']) expect(attributes).not.toContain(value);

    const lines = t.logs.lines.filter((line) => line.requestId === res.headers['x-request-id']);
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) expect(line.traceId).toBe(TRACE_ID);
  });
});
