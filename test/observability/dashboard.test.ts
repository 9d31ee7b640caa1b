// The PromQL subset that `npm run ops:dashboard` evaluates, against results worked out by hand
// from Prometheus's documented definitions (rate over a range with a counter reset, sum by,
// histogram_quantile's interpolation within a bucket); what it refuses, naming the panel; and the
// committed dashboard, every query of which must parse in the subset, so that a panel it cannot
// draw fails here rather than when the picture is made.

import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { dashboardExprs } from '../../src/cli/ops-check.ts';
import { DASHBOARD_FILE, SCRAPE_INTERVAL_MS, loadDashboard } from '../../src/cli/render-dashboard.ts';
import { DashboardError, evaluatePanel, readDashboard, type Panel } from '../../src/cli/dashboard/panels.ts';
import {
  PromQLSubsetError,
  bucketQuantile,
  evaluate,
  parsePromQL,
  type Labels,
  type Sample,
  type Value,
} from '../../src/cli/dashboard/promql.ts';
import { ScrapeStore, parseExposition } from '../../src/cli/dashboard/scrapes.ts';
import { renderSvg } from '../../src/cli/dashboard/svg.ts';
import { axis, formatValue } from '../../src/cli/dashboard/units.ts';

/** A store holding `series`, each a label set and its value at each scrape (undefined: missing from it). */
function storeOf(times: number[], series: { labels: Labels; values: (number | undefined)[] }[]): ScrapeStore {
  const store = new ScrapeStore({ job: 'storekeeper', instance: 'a' });
  times.forEach((t, i) => {
    const samples = series.flatMap(({ labels, values }) => {
      const value = values[i];
      return value === undefined ? [] : [{ labels, value }];
    });
    store.add(t, samples);
  });
  return store;
}

const at = (expr: string, store: ScrapeStore, t: number): Value => evaluate(parsePromQL(expr), store, t);

/** The samples of a vector, by a label's value (or '' for a sample without it). */
function byLabel(value: Value, label: string): Record<string, number> {
  if (value.kind !== 'vector') throw new Error('expected a vector');
  return Object.fromEntries(value.samples.map((s: Sample) => [s.labels[label] ?? '', s.value]));
}

const SECONDS = [0, 2, 4, 6, 8].map((s) => s * 1000);

describe('rate, irate and increase', () => {
  // A counter: 0, 4, 10, then a restart (2), then 6.
  const store = storeOf(SECONDS, [{ labels: { __name__: 'c_total' }, values: [0, 4, 10, 2, 6] }]);

  it('take the samples of (t - range, t], add back the value before a reset, and divide by the time they span', () => {
    // At 8 s the range (0, 8] holds 4, 10, 2, 6 (the sample at 0 is on its open start): the
    // counter went up 6 from 4 to 10, then 2 from the reset's 0, then 4: 12 in the 6 s from 2 to 8.
    expect(byLabel(at('rate(c_total[8s])', store, 8000), '')).toEqual({ '': 2 });
    // Prometheus's increase is rate times the range's seconds.
    expect(byLabel(at('increase(c_total[8s])', store, 8000), '')).toEqual({ '': 16 });
    // irate: the last two samples, 2 then 6 over 2 s; across the reset, 10 then 2 is 2 (from 0).
    expect(byLabel(at('irate(c_total[8s])', store, 8000), '')).toEqual({ '': 2 });
    expect(byLabel(at('irate(c_total[8s])', store, 6000), '')).toEqual({ '': 1 });
    // [10s] reaches the sample at 0: 4 + 6 + 2 + 4 = 16 over 8 s.
    expect(byLabel(at('rate(c_total[10s])', store, 8000), '')).toEqual({ '': 2 });
  });

  it('answer nothing for a series with fewer than two samples in the range, and drop the metric name', () => {
    expect(at('rate(c_total[2s])', store, 8000)).toEqual({ kind: 'vector', samples: [] });
    const value = at('rate(c_total[4s])', store, 8000);
    expect(value).toEqual({ kind: 'vector', samples: [{ labels: { job: 'storekeeper', instance: 'a' }, value: 2 }] });
  });
});

describe('selectors and aggregations', () => {
  const requests = (method: string, status: string) => ({
    __name__: 'http_requests_total',
    method,
    status,
  });
  const store = storeOf(SECONDS, [
    { labels: requests('GET', '200'), values: [0, 10, 20, 30, 40] }, // 5/s
    { labels: requests('POST', '200'), values: [0, 2, 4, 6, 8] }, // 1/s
    { labels: requests('POST', '409'), values: [0, 1, 2, 3, 4] }, // 0.5/s
    { labels: requests('GET', '503'), values: [undefined, undefined, 0, 1, 2] }, // 0.5/s from 4 s on
  ]);

  it('sum by keeps only the named labels, and sums the series of each group', () => {
    expect(byLabel(at('sum by (status) (rate(http_requests_total[8s]))', store, 8000), 'status')).toEqual({
      '200': 6,
      '409': 0.5,
      '503': 0.5,
    });
    // The grouping may follow the argument too.
    expect(byLabel(at('sum(rate(http_requests_total[8s])) by (method)', store, 8000), 'method')).toEqual({
      GET: 5.5,
      POST: 1.5,
    });
  });

  it('matches labels with =, !=, =~ (anchored) and !~', () => {
    const total = (expr: string) => byLabel(at(expr, store, 8000), '')[''];
    expect(total('sum(rate(http_requests_total{status=~"5.."}[8s]))')).toBe(0.5);
    expect(total('sum(rate(http_requests_total{status=~"0"}[8s]))')).toBeUndefined();
    expect(total('sum(rate(http_requests_total{status!="200",method="POST"}[8s]))')).toBe(0.5);
    expect(total('sum(rate(http_requests_total{status!~"2..|4.."}[8s]))')).toBe(0.5);
  });

  it('divides one vector by another with matching labels, and a vector by a number', () => {
    const share = at(
      'sum(rate(http_requests_total{status=~"5.."}[8s])) / sum(rate(http_requests_total[8s]))',
      store,
      8000,
    );
    expect(byLabel(share, '')).toEqual({ '': 0.5 / 7 });
    expect(byLabel(at('sum(rate(http_requests_total[8s])) * 60', store, 8000), '')).toEqual({ '': 420 });
    // Nothing on one side, nothing in the answer: the 5xx share before any 5xx.
    expect(
      at('sum(rate(http_requests_total{status=~"5.."}[8s])) / sum(rate(http_requests_total[8s]))', store, 2000),
    ).toEqual({ kind: 'vector', samples: [] });
  });

  it('min, max, avg, count and topk, the last keeping each series its labels', () => {
    const total = (expr: string) => byLabel(at(expr, store, 8000), '')[''];
    expect(total('min(rate(http_requests_total[8s]))')).toBe(0.5);
    expect(total('max(rate(http_requests_total[8s]))')).toBe(5);
    expect(total('avg(rate(http_requests_total[8s]))')).toBe(7 / 4);
    expect(total('count(rate(http_requests_total[8s]))')).toBe(4);
    const top = at('topk(2, rate(http_requests_total[8s]))', store, 8000);
    expect(top.kind === 'vector' && top.samples.map((s) => [s.labels.method, s.labels.status, s.value])).toEqual([
      ['GET', '200', 5],
      ['POST', '200', 1],
    ]);
  });

  it('reads a gauge at its latest sample, and not once the series went stale', () => {
    const gauges = storeOf(SECONDS, [{ labels: { __name__: 'queue' }, values: [3, 5, undefined, undefined, 7] }]);
    expect(byLabel(at('queue', gauges, 3000), '')).toEqual({ '': 5 });
    // Missing from the scrape at 4 s: stale from there until it comes back.
    expect(at('queue', gauges, 5000)).toEqual({ kind: 'vector', samples: [] });
    expect(byLabel(at('queue', gauges, 8000), '')).toEqual({ '': 7 });
  });
});

describe('histogram_quantile', () => {
  // Cumulative buckets of 100 observations: 50 up to 0.1 s, 30 more up to 0.25 s, 15 more up to
  // 0.5 s, 5 above.
  const buckets = [
    { upperBound: 0.1, count: 50 },
    { upperBound: 0.25, count: 80 },
    { upperBound: 0.5, count: 95 },
    { upperBound: Infinity, count: 100 },
  ];

  it('interpolates linearly within the bucket that holds the rank q × count', () => {
    // Rank 25 in the first bucket, which starts at 0: 0.1 × 25/50.
    expect(bucketQuantile(0.25, buckets)).toBeCloseTo(0.05, 12);
    // Rank 50 is the first bucket's last observation: its upper bound.
    expect(bucketQuantile(0.5, buckets)).toBeCloseTo(0.1, 12);
    // Rank 90 is the 10th of the 15 in (0.25, 0.5]: 0.25 + 0.25 × 10/15.
    expect(bucketQuantile(0.9, buckets)).toBeCloseTo(0.25 + 0.25 * (10 / 15), 12);
    // Rank 99 falls in the +Inf bucket: the highest finite bound answers.
    expect(bucketQuantile(0.99, buckets)).toBe(0.5);
  });

  it('answers NaN without observations or a +Inf bucket, and ±Inf for a q outside [0, 1]', () => {
    expect(
      bucketQuantile(
        0.5,
        buckets.map((b) => ({ ...b, count: 0 })),
      ),
    ).toBeNaN();
    expect(bucketQuantile(0.5, buckets.slice(0, 3))).toBeNaN();
    expect(bucketQuantile(-0.1, buckets)).toBe(-Infinity);
    expect(bucketQuantile(1.1, buckets)).toBe(Infinity);
  });

  it('applies to the sum by (le) of the buckets’ rates, one histogram per remaining label set', () => {
    // Two routes; every 2 s route a observes the 100 above, route b twice that many all under 0.1 s.
    const bucket = (route: string, le: string) => ({ __name__: 'd_bucket', route, le });
    const grow = (per: number) => SECONDS.map((_, i) => i * per);
    const store = storeOf(SECONDS, [
      { labels: bucket('a', '0.1'), values: grow(50) },
      { labels: bucket('a', '0.25'), values: grow(80) },
      { labels: bucket('a', '0.5'), values: grow(95) },
      { labels: bucket('a', '+Inf'), values: grow(100) },
      ...['0.1', '0.25', '0.5', '+Inf'].map((le) => ({ labels: bucket('b', le), values: grow(200) })),
    ]);
    const perRoute = at('histogram_quantile(0.9, sum by (le, route) (rate(d_bucket[8s])))', store, 8000);
    expect(byLabel(perRoute, 'route').a).toBeCloseTo(0.25 + 0.25 * (10 / 15), 12);
    // Route b: rank 180 of 200 in the first bucket: 0.1 × 180/200.
    expect(byLabel(perRoute, 'route').b).toBeCloseTo(0.09, 12);
    // Together, per 2 s: 250 up to 0.1, 280 up to 0.25, 295 up to 0.5, 300 in all. Rank 270 is
    // the 20th of the 30 in (0.1, 0.25]: 0.1 + 0.15 × 20/30.
    const overall = at('histogram_quantile(0.9, sum by (le) (rate(d_bucket[8s])))', store, 8000);
    expect(byLabel(overall, '')['']).toBeCloseTo(0.2, 12);
  });
});

describe('the subset', () => {
  it.each([
    ['rate(x[5m] offset 1m)', /offset/],
    ['sum(x) or vector(0)', /or at \d+ is outside the subset/],
    ['x > 1', /comparison >/],
    ['label_replace(x, "a", "$1", "b", "(.*)")', /function label_replace/],
    ['rate(x[5m:1m])', /subquery/],
    ['x[5m]', /range \[5m\] .* is read only by rate, irate, increase/],
    ['a / on(instance) b', /on at \d+ is outside the subset/],
    ['deriv(x[5m])', /function deriv/],
    ['sum(x', /expected \)/],
    ['x{a=~"("}', /not a regular expression/],
  ])('refuses %s', (expr, message) => {
    expect(() => parsePromQL(expr)).toThrow(PromQLSubsetError);
    expect(() => parsePromQL(expr)).toThrow(message);
  });

  it('names the panel and query of every expression it cannot draw, and panels of a kind or unit it does not draw', () => {
    const dashboard = {
      title: 't',
      templating: { list: [{ name: 'instance', type: 'query', includeAll: true, allValue: '.*' }] },
      panels: [
        {
          id: 1,
          type: 'timeseries',
          title: 'Fine',
          gridPos: { x: 0, y: 0, w: 8, h: 8 },
          targets: [{ refId: 'A', expr: 'sum(rate(x{instance=~"$instance"}[$__rate_interval]))' }],
        },
        {
          id: 2,
          type: 'timeseries',
          title: 'Deriv',
          gridPos: { x: 8, y: 0, w: 8, h: 8 },
          targets: [{ refId: 'B', expr: 'deriv(x[5m])' }],
        },
        { id: 3, type: 'heatmap', title: 'Heat', gridPos: { x: 16, y: 0, w: 8, h: 8 }, targets: [] },
        {
          id: 4,
          type: 'stat',
          title: 'Var',
          gridPos: { x: 0, y: 8, w: 8, h: 8 },
          fieldConfig: { defaults: { unit: 'celsius' } },
          targets: [{ refId: 'A', expr: 'x{pool="$pool"}' }],
        },
      ],
    };
    let error: unknown;
    try {
      readDashboard(dashboard, 2000);
    } catch (thrown) {
      error = thrown;
    }
    expect(error).toBeInstanceOf(DashboardError);
    expect((error as DashboardError).problems).toEqual([
      'panel "Deriv" (id 2), query B: function deriv at 0 is outside the subset: deriv(x[5m])',
      'panel "Heat" (id 3): type heatmap is not one the rendering draws (row, timeseries, stat)',
      'panel "Var" (id 4), query A: unknown variable $pool: x{pool="$pool"}',
      'panel "Var" (id 4): unit celsius is not one the rendering writes (short, none, reqps, ops, s, percentunit, percent, bytes)',
    ]);
  });

  it('parses every query of the committed dashboard, with $instance as All and $__rate_interval as four scrapes', async () => {
    const json: unknown = JSON.parse(await readFile(DASHBOARD_FILE, 'utf8'));
    const dashboard = await loadDashboard();
    const queries = dashboard.panels.flatMap((panel) => panel.queries);
    // None is left out: as many as ops:check reads from the file.
    expect(queries).toHaveLength(dashboardExprs(json).length);
    for (const query of queries) expect(query.expr, query.expr).not.toContain('$');
    expect(SCRAPE_INTERVAL_MS).toBe(2000);
    expect(queries.some((query) => query.expr.includes('[8s]'))).toBe(true);
    expect(queries.some((query) => query.expr.includes('instance=~".*"'))).toBe(true);
  });
});

describe('scrapes and the picture', () => {
  it('reads the exposition format: labels with escapes, special values, comments', () => {
    const samples = parseExposition(
      [
        '# HELP a_total A.',
        '# TYPE a_total counter',
        'a_total{route="/v1/x",note="say \\"hi\\"\\nbye"} 3',
        'b_bucket{le="+Inf"} +Inf',
        'c NaN 1700000000000',
        'd{} -2.5e-3',
      ].join('\n'),
    );
    expect(samples).toEqual([
      { labels: { __name__: 'a_total', route: '/v1/x', note: 'say "hi"\nbye' }, value: 3 },
      { labels: { __name__: 'b_bucket', le: '+Inf' }, value: Infinity },
      { labels: { __name__: 'c' }, value: NaN },
      { labels: { __name__: 'd' }, value: -0.0025 },
    ]);
  });

  it('draws the same SVG from the same samples, saved and loaded again', async () => {
    const dashboard = await loadDashboard();
    const store = storeOf(SECONDS, [
      { labels: { __name__: 'storekeeper_http_requests_total', status: '200' }, values: [0, 10, 30, 60, 100] },
      { labels: { __name__: 'storekeeper_mongodb_up' }, values: [1, 1, 1, 1, 1] },
    ]);
    const draw = (source: ScrapeStore) =>
      renderSvg({
        dashboard,
        steps: source.scrapeTimes,
        subtitle: ['test'],
        panels: dashboard.panels
          .filter((panel: Panel) => panel.type !== 'row')
          .map((panel) => ({ panel, series: evaluatePanel(panel, source, source.scrapeTimes) })),
      });
    const svg = draw(store);
    expect(draw(ScrapeStore.load(JSON.parse(JSON.stringify(store.save())) as ReturnType<ScrapeStore['save']>))).toBe(
      svg,
    );
    for (const panel of dashboard.panels) expect(svg).toContain(`>${panel.title}<`);
    expect(svg).toContain('>No data<');
    expect(svg).toContain('<polyline');
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
  });

  it('writes axes in the unit’s scale, with round ticks there', () => {
    expect(axis(0, 250 * 1024 ** 2, 3, 'bytes').labels).toEqual(['0', '100 MiB', '200 MiB', '300 MiB']);
    expect(axis(0, 0.0042, 4, 's').labels).toEqual(['0', '2 ms', '4 ms', '6 ms']);
    expect(axis(0, 0.3, 3, 'percentunit').labels).toEqual(['0', '10%', '20%', '30%']);
    expect(axis(0, 45, 4, 'reqps').labels).toEqual(['0', '20 req/s', '40 req/s', '60 req/s']);
    expect(formatValue(1, 'short')).toBe('1');
    expect(formatValue(0.0123, 's')).toBe('12.3 ms');
  });
});
