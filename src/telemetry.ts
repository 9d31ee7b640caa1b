// OpenTelemetry tracing, off unless the standard OTEL_* variables ask for it: a span per request
// (@fastify/otel, its parent taken from the caller's W3C traceparent), a child span per MongoDB
// command (@opentelemetry/instrumentation-mongodb, query text with every value replaced by "?"),
// and the trace and span ids on every log line written inside them (logger.ts asks traceFields).
// Exported where OTEL_TRACES_EXPORTER and OTEL_EXPORTER_OTLP_* say, as the OpenTelemetry SDK reads them.
//
// Off, nothing of OpenTelemetry is loaded: the SDK and its instrumentations are imported only
// when tracing starts. The MongoDB instrumentation patches the driver as it is first required,
// so tracing must start before anything loads mongoose: server.ts starts it before it imports the
// app (a static import of the app would load mongoose before any code of server.ts runs).

import type { SpanProcessor } from '@opentelemetry/sdk-trace-base';

/** The trace a log line belongs to, in the names log pipelines join on. */
export interface TraceFields {
  traceId: string;
  spanId: string;
}

let traceFieldsOf: (() => Partial<TraceFields>) | undefined;
let shutdown: (() => Promise<void>) | undefined;

/** The active span's ids for log lines, while tracing runs; undefined (no mixin, no cost) when it does not. */
export function traceFields(): (() => Partial<TraceFields>) | undefined {
  return traceFieldsOf;
}

/**
 * Whether the environment asks for traces: OTEL_TRACES_EXPORTER names an exporter other than
 * none, or an OTLP endpoint is set; never when OTEL_SDK_DISABLED is true.
 */
export function tracingRequested(env: Record<string, string | undefined>): boolean {
  if (/^true$/i.test(env.OTEL_SDK_DISABLED?.trim() ?? '')) return false;
  const exporters = (env.OTEL_TRACES_EXPORTER ?? '')
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name !== '');
  if (exporters.length > 0) return !exporters.includes('none');
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
}

export interface TracingOptions {
  /** Where spans go instead of the exporters the environment names (the tests' in-memory exporter). */
  spanProcessors?: SpanProcessor[];
}

/**
 * Starts tracing for the process: the SDK, its exporters as the environment names them, and the
 * Fastify and MongoDB instrumentations. Once per process, before mongoose is first loaded.
 */
export async function startTracing({ spanProcessors }: TracingOptions = {}): Promise<void> {
  if (shutdown !== undefined) return;
  const [{ NodeSDK }, { MongoDBInstrumentation }, { FastifyOtelInstrumentation }, { trace }] = await Promise.all([
    import('@opentelemetry/sdk-node'),
    import('@opentelemetry/instrumentation-mongodb'),
    import('@fastify/otel'),
    import('@opentelemetry/api'),
  ]);
  const sdk = new NodeSDK({
    serviceName: process.env.OTEL_SERVICE_NAME ?? 'storekeeper',
    ...(spanProcessors !== undefined && { spanProcessors }),
    instrumentations: [
      // Values never leave in a span: the query text keeps keys and operators, each value a "?".
      new MongoDBInstrumentation({ enhancedDatabaseReporting: false }),
      // Every Fastify instance the process builds, as it is built: a request span and its handler's,
      // not one per hook (a dozen per request, which tell nothing the request span does not).
      new FastifyOtelInstrumentation({ registerOnInitialization: true, instrumentHooks: false }),
    ],
  });
  sdk.start();
  traceFieldsOf = () => {
    const span = trace.getActiveSpan();
    if (span === undefined) return {};
    const { traceId, spanId } = span.spanContext();
    return { traceId, spanId };
  };
  shutdown = () => sdk.shutdown();
}

/** Flushes and stops tracing (at shutdown: spans still buffered are exported). */
export async function stopTracing(): Promise<void> {
  const stopping = shutdown;
  shutdown = undefined;
  traceFieldsOf = undefined;
  await stopping?.();
}
