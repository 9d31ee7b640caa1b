// Grafana's units, as its panels write values and axis ticks: the suffix and scaling of each unit
// the dashboard uses (counts by thousands, seconds down to ms and µs, bytes by 1024, fractions
// as percents). A unit not here is refused by panels.ts, so that no axis is written without one.

interface Step {
  /** The smallest magnitude (in the unit's own terms) written with this step. */
  from: number;
  factor: number;
  suffix: string;
}

const thousands = (unit: string): Step[] =>
  ['', ' K', ' Mil', ' Bil'].map((prefix, i) => ({
    from: i === 0 ? 0 : 1000 ** i,
    factor: 1000 ** i,
    suffix: unit === '' ? prefix : `${prefix} ${unit}`,
  }));

const UNITS: Record<string, Step[]> = {
  short: thousands(''),
  none: [{ from: 0, factor: 1, suffix: '' }],
  reqps: thousands('req/s'),
  ops: thousands('ops/s'),
  s: [
    { from: 0, factor: 1e-6, suffix: ' µs' },
    { from: 0.001, factor: 0.001, suffix: ' ms' },
    { from: 1, factor: 1, suffix: ' s' },
    { from: 60, factor: 60, suffix: ' min' },
    { from: 3600, factor: 3600, suffix: ' hour' },
  ],
  percentunit: [{ from: 0, factor: 0.01, suffix: '%' }],
  percent: [{ from: 0, factor: 1, suffix: '%' }],
  bytes: ['B', 'KiB', 'MiB', 'GiB', 'TiB'].map((suffix, i) => ({
    from: i === 0 ? 0 : 1024 ** i,
    factor: 1024 ** i,
    suffix: ` ${suffix}`,
  })),
};

export const UNIT_NAMES: readonly string[] = Object.keys(UNITS);

function stepFor(unit: string, magnitude: number): Step {
  const steps = UNITS[unit];
  if (steps === undefined) throw new Error(`unit ${unit} is not one the rendering knows (${UNIT_NAMES.join(', ')})`);
  return steps.filter((step) => Math.abs(magnitude) >= step.from).at(-1) ?? { from: 0, factor: 1, suffix: '' };
}

/** Digits after the point that write multiples of `spacing` exactly (2.5: one). */
function decimalsFor(spacing: number): number {
  for (let decimals = 0; decimals < 6; decimals++) {
    const scaled = spacing * 10 ** decimals;
    if (Math.abs(scaled - Math.round(scaled)) < 1e-6 * Math.max(1, scaled)) return decimals;
  }
  return 6;
}

/** A value as a stat panel writes it: scaled to its unit and to three significant digits. */
export function formatValue(value: number, unit: string): string {
  const step = stepFor(unit, value);
  const scaled = value / step.factor;
  const magnitude = Math.abs(scaled);
  const decimals = Number.isInteger(scaled) && magnitude < 1000 ? 0 : magnitude >= 100 ? 0 : magnitude >= 10 ? 1 : 2;
  return `${scaled.toFixed(decimals)}${step.suffix}`;
}

/** Round ticks from `low` to at least `high`, about `count` of them. */
function niceTicks(low: number, high: number, count: number): number[] {
  const rough = (high - low) / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(rough));
  const spacing = [1, 2, 2.5, 5, 10].map((m) => m * power).find((candidate) => candidate >= rough) ?? 10 * power;
  const ticks: number[] = [];
  for (let tick = Math.floor(low / spacing) * spacing; tick < high + spacing * 0.999; tick += spacing)
    ticks.push(Number(tick.toPrecision(12)));
  return ticks;
}

/**
 * A y axis for values from `min` to `max`: from 0 (or below, for values below it), its ticks round
 * in the scale the largest value is written in (100 MiB, not 95.37 MiB), and their labels.
 */
export function axis(min: number, max: number, count: number, unit: string): { ticks: number[]; labels: string[] } {
  const low = Math.min(0, min);
  const high = max > low ? max : low + 1;
  const step = stepFor(unit, Math.max(Math.abs(low), Math.abs(high)));
  const scaled = niceTicks(low / step.factor, high / step.factor, count);
  const [first = 0, second = first + 1] = scaled;
  const decimals = decimalsFor(Math.abs(second - first));
  return {
    ticks: scaled.map((tick) => tick * step.factor),
    labels: scaled.map((tick) => (tick === 0 ? '0' : `${tick.toFixed(decimals)}${step.suffix}`)),
  };
}
