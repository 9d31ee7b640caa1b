// A Grafana dashboard's panels as the rendering needs them (src/cli/render-dashboard.ts): type,
// title, place on the grid, unit, and each query parsed in the PromQL subset (promql.ts) after
// Grafana's variables are put in: a multi-value variable as its "All" value, $__rate_interval as
// Grafana computes it for the scrape interval. A panel of a kind the renderer does not draw, a
// unit it does not write or a query outside the subset is an error naming the panel; and the
// queries are evaluated at every step of the run, as a Grafana range query would, into series
// named by their legend format.

import {
  PromQLSubsetError,
  evaluate,
  labelKey,
  parsePromQL,
  type Expr,
  type Labels,
  type SeriesSource,
} from './promql.ts';
import { UNIT_NAMES } from './units.ts';

export interface GridPos {
  x: number;
  y: number;
  w: number;
  h: number;
}

export interface Threshold {
  color: string;
  /** null: the base step, below every other. */
  value: number | null;
}

export interface Query {
  refId: string;
  expr: string;
  legendFormat: string;
  parsed: Expr;
}

export interface Panel {
  id: number;
  type: 'row' | 'timeseries' | 'stat';
  title: string;
  gridPos: GridPos;
  unit: string;
  queries: Query[];
  thresholds: Threshold[];
}

export interface Dashboard {
  title: string;
  panels: Panel[];
}

/** Panels the renderer draws; any other type is an error, never a gap in the picture. */
const DRAWN = new Set(['row', 'timeseries', 'stat']);

/** Grafana's thresholds for a panel that sets none. */
const GRAFANA_DEFAULT_THRESHOLDS: Threshold[] = [
  { color: 'green', value: null },
  { color: 'red', value: 80 },
];

/** One or more panels that cannot be drawn, each line naming its panel. */
export class DashboardError extends Error {
  override name = 'DashboardError';
  constructor(readonly problems: string[]) {
    super(problems.join('\n'));
  }
}

interface RawPanel {
  id?: unknown;
  type?: unknown;
  title?: unknown;
  gridPos?: Partial<GridPos>;
  fieldConfig?: { defaults?: { unit?: unknown; thresholds?: { steps?: unknown } } };
  targets?: { refId?: unknown; expr?: unknown; legendFormat?: unknown; hide?: unknown }[];
  panels?: RawPanel[];
}

interface RawVariable {
  name?: unknown;
  type?: unknown;
  includeAll?: unknown;
  allValue?: unknown;
}

/**
 * Grafana's $__rate_interval is max($__interval + scrape interval, 4 × scrape interval). Over a
 * range as short as the run's, $__interval is the data source's scrape interval (its lower
 * bound), so the second term is the larger: four scrapes.
 */
export function rateInterval(scrapeIntervalMs: number): number {
  return 4 * scrapeIntervalMs;
}

const durationText = (ms: number) => (ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`);

/** The expression with Grafana's variables replaced; a variable it does not know is an error. */
export function interpolate(expr: string, variables: ReadonlyMap<string, string>): string {
  return expr.replace(/\$(?:\{(\w+)\}|(\w+))/g, (_, braced: string | undefined, bare: string | undefined) => {
    const name = braced ?? bare ?? '';
    const value = variables.get(name);
    if (value === undefined) throw new PromQLSubsetError(`unknown variable $${name}`);
    return value;
  });
}

/** Reads a dashboard's JSON; throws DashboardError listing every panel it cannot draw. */
export function readDashboard(json: unknown, scrapeIntervalMs: number): Dashboard {
  const dashboard = json as { title?: unknown; panels?: RawPanel[]; templating?: { list?: RawVariable[] } };
  const variables = new Map<string, string>([['__rate_interval', durationText(rateInterval(scrapeIntervalMs))]]);
  for (const variable of dashboard.templating?.list ?? []) {
    if (typeof variable.name !== 'string' || variable.type === 'datasource') continue;
    // Every instance the run has: the "All" choice, whose value the dashboard gives.
    if (variable.includeAll === true)
      variables.set(variable.name, typeof variable.allValue === 'string' ? variable.allValue : '.*');
  }
  const problems: string[] = [];
  const panels: Panel[] = [];
  const visit = (raw: RawPanel) => {
    const title = typeof raw.title === 'string' ? raw.title : '(untitled)';
    const name = `panel "${title}" (id ${String(raw.id)})`;
    const type = String(raw.type);
    if (!DRAWN.has(type)) {
      problems.push(`${name}: type ${type} is not one the rendering draws (${[...DRAWN].join(', ')})`);
      return;
    }
    const { x, y, w, h } = raw.gridPos ?? {};
    if (!Number.isInteger(x) || !Number.isInteger(y) || !Number.isInteger(w) || !Number.isInteger(h)) {
      problems.push(`${name}: no gridPos`);
      return;
    }
    const gridPos = { x: Number(x), y: Number(y), w: Number(w), h: Number(h) };
    const queries: Query[] = [];
    for (const target of raw.targets ?? []) {
      if (target.hide === true) continue;
      const refId = typeof target.refId === 'string' ? target.refId : '?';
      if (typeof target.expr !== 'string') {
        problems.push(`${name}, query ${refId}: no PromQL expr`);
        continue;
      }
      try {
        const expr = interpolate(target.expr, variables);
        const legendFormat = typeof target.legendFormat === 'string' ? target.legendFormat : '';
        queries.push({ refId, expr, legendFormat, parsed: parsePromQL(expr) });
      } catch (error) {
        if (!(error instanceof PromQLSubsetError)) throw error;
        problems.push(`${name}, query ${refId}: ${error.message}: ${target.expr}`);
      }
    }
    if (type !== 'row' && (raw.targets ?? []).length === 0) problems.push(`${name}: no queries`);
    const unit = typeof raw.fieldConfig?.defaults?.unit === 'string' ? raw.fieldConfig.defaults.unit : 'short';
    if (!UNIT_NAMES.includes(unit))
      problems.push(`${name}: unit ${unit} is not one the rendering writes (${UNIT_NAMES.join(', ')})`);
    const steps = raw.fieldConfig?.defaults?.thresholds?.steps;
    panels.push({
      id: Number(raw.id),
      type: type as Panel['type'],
      title,
      gridPos,
      unit,
      queries,
      thresholds: Array.isArray(steps) ? (steps as Threshold[]) : GRAFANA_DEFAULT_THRESHOLDS,
    });
    for (const inner of raw.panels ?? []) visit(inner);
  };
  for (const raw of dashboard.panels ?? []) visit(raw);
  if (problems.length > 0) throw new DashboardError(problems);
  return { title: typeof dashboard.title === 'string' ? dashboard.title : 'dashboard', panels };
}

/** One line of a panel: its legend and a value (or none) at each step. */
export interface PlottedSeries {
  name: string;
  values: (number | null)[];
}

/** Grafana's legend: {{label}} replaced by the series' value of it; no format, the label set. */
export function legendOf(format: string, labels: Labels): string {
  if (format === '' || format === '__auto') {
    const { __name__: name = '', ...rest } = labels;
    const inner = Object.keys(rest)
      .sort()
      .map((label) => `${label}="${rest[label]}"`)
      .join(', ');
    return inner === '' && name === '' ? 'value' : `${name}{${inner}}`;
  }
  return format.replace(/\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g, (_, label: string) => labels[label] ?? '');
}

/**
 * Each query of the panel at every step: one series per label set a query answered with at some
 * step (null where it had none, or a value that is not a finite number, as Grafana leaves gaps),
 * in query order and, within a query, by legend.
 */
export function evaluatePanel(panel: Panel, source: SeriesSource, steps: readonly number[]): PlottedSeries[] {
  const plotted: PlottedSeries[] = [];
  for (const query of panel.queries) {
    const byLabels = new Map<string, { name: string; values: (number | null)[] }>();
    steps.forEach((t, step) => {
      let value;
      try {
        value = evaluate(query.parsed, source, t);
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        throw new Error(`panel "${panel.title}" (id ${panel.id}), query ${query.refId}: ${message}`);
      }
      const samples = value.kind === 'scalar' ? [{ labels: {}, value: value.value }] : value.samples;
      for (const sample of samples) {
        const key = labelKey(sample.labels);
        let series = byLabels.get(key);
        if (series === undefined) {
          series = { name: legendOf(query.legendFormat, sample.labels), values: steps.map(() => null) };
          byLabels.set(key, series);
        }
        series.values[step] = Number.isFinite(sample.value) ? sample.value : null;
      }
    });
    plotted.push(
      ...[...byLabels.entries()]
        .sort(([keyA, a], [keyB, b]) => a.name.localeCompare(b.name, 'en') || keyA.localeCompare(keyB, 'en'))
        .map(([, series]) => series),
    );
  }
  return plotted;
}
