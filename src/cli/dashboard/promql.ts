// The PromQL that ops/grafana/storekeeper.json uses, parsed and evaluated over scraped series so
// that `npm run ops:dashboard` can draw its panels without Prometheus: instant selectors with
// label matchers (=, !=, =~, !~), rate, irate and increase over a range, the aggregations sum,
// min, max, avg, count and topk (by or without labels), histogram_quantile, number literals and
// + - * / between them. Anything else (offset, subqueries, comparisons, vector matching
// modifiers, other functions) is refused by the parser with what it met, so that a panel the
// subset cannot draw fails loudly instead of being left out of the rendering.
//
// Semantics follow Prometheus's documentation: a range (t - range, t] holds the samples after its
// start up to t; an instant selector takes a series' latest sample within the 5-minute lookback,
// none once the series went stale (it was missing from a later scrape). rate is the slope between
// the first and last samples of the range, a counter's resets (a value lower than the one before)
// adding back the value before each reset; Prometheus also extrapolates that slope towards the
// range's edges, which is not done here. increase is rate times the range's seconds, as Prometheus
// defines it; irate uses the last two samples. histogram_quantile is Prometheus's bucketQuantile
// (linear interpolation within the bucket holding the rank; the +Inf bucket answers the highest
// finite bound).

export type Labels = Readonly<Record<string, string>>;

export interface Matcher {
  name: string;
  op: '=' | '!=' | '=~' | '!~';
  value: string;
}

export interface Selector {
  kind: 'selector';
  name: string;
  matchers: Matcher[];
}

export const AGGREGATIONS = ['sum', 'min', 'max', 'avg', 'count', 'topk'] as const;
export type Aggregation = (typeof AGGREGATIONS)[number];
export const RANGE_FUNCTIONS = ['rate', 'irate', 'increase'] as const;
export type RangeFunction = (typeof RANGE_FUNCTIONS)[number];
type Arithmetic = '+' | '-' | '*' | '/';

export type Expr =
  | { kind: 'number'; value: number }
  | Selector
  | { kind: 'range-function'; fn: RangeFunction; selector: Selector; rangeMs: number }
  | { kind: 'histogram-quantile'; quantile: number; arg: Expr }
  | {
      kind: 'aggregate';
      op: Aggregation;
      grouping?: { without: boolean; labels: string[] };
      /** topk's k. */
      parameter?: number;
      arg: Expr;
    }
  | { kind: 'binary'; op: Arithmetic; lhs: Expr; rhs: Expr };

/** An expression outside the subset, or not PromQL at all: says what and where. */
export class PromQLSubsetError extends Error {
  override name = 'PromQLSubsetError';
}

// ---- Lexer -------------------------------------------------------------------------------------

type Token =
  | { type: 'ident'; text: string; at: number }
  | { type: 'number'; value: number; text: string; at: number }
  | { type: 'string'; value: string; text: string; at: number }
  | { type: 'duration'; ms: number; text: string; at: number }
  | { type: 'punct'; text: string; at: number }
  | { type: 'end'; text: ''; at: number };

const PUNCTUATION = ['=~', '!~', '!=', '==', '<=', '>=', '(', ')', '{', '}', ',', '=', '+', '-', '*', '/', '%', '^'];
const PUNCTUATION_ALSO = ['<', '>', '@', ':'];
const DURATION_UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
  y: 31_536_000_000,
};

/** A PromQL duration such as 8s, 5m or 1h30m, in milliseconds. */
export function parseDuration(text: string): number | undefined {
  if (!/^(\d+(ms|s|m|h|d|w|y))+$/.test(text)) return undefined;
  let ms = 0;
  for (const [, amount = '', unit = ''] of text.matchAll(/(\d+)(ms|s|m|h|d|w|y)/g))
    ms += Number(amount) * (DURATION_UNITS[unit] ?? 0);
  return ms;
}

function tokenize(expr: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < expr.length) {
    const rest = expr.slice(i);
    const space = /^\s+/.exec(rest);
    if (space) {
      i += space[0].length;
      continue;
    }
    const at = i;
    if (rest.startsWith('[')) {
      const close = rest.indexOf(']');
      if (close < 0) throw new PromQLSubsetError(`unclosed [ at ${at}`);
      const inside = rest.slice(1, close).trim();
      if (inside.includes(':')) throw new PromQLSubsetError(`subquery [${inside}] at ${at} is outside the subset`);
      const ms = parseDuration(inside);
      if (ms === undefined || ms === 0) throw new PromQLSubsetError(`[${inside}] at ${at} is not a duration`);
      tokens.push({ type: 'duration', ms, text: `[${inside}]`, at });
      i += close + 1;
      continue;
    }
    const ident = /^[A-Za-z_][A-Za-z0-9_:]*/.exec(rest);
    if (ident) {
      tokens.push({ type: 'ident', text: ident[0], at });
      i += ident[0].length;
      continue;
    }
    const number = /^(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?/.exec(rest);
    if (number) {
      tokens.push({ type: 'number', value: Number(number[0]), text: number[0], at });
      i += number[0].length;
      continue;
    }
    const quote = rest[0];
    if (quote === '"' || quote === "'") {
      let value = '';
      let j = 1;
      for (; j < rest.length && rest[j] !== quote; j++) {
        if (rest[j] !== '\\') {
          value += rest.charAt(j);
          continue;
        }
        const escaped = rest[++j];
        value += escaped === 'n' ? '\n' : escaped === 't' ? '\t' : (escaped ?? '');
      }
      if (j >= rest.length) throw new PromQLSubsetError(`unclosed string at ${at}`);
      tokens.push({ type: 'string', value, text: rest.slice(0, j + 1), at });
      i += j + 1;
      continue;
    }
    const punct = [...PUNCTUATION, ...PUNCTUATION_ALSO].find((p) => rest.startsWith(p));
    if (punct === undefined) throw new PromQLSubsetError(`unexpected character ${JSON.stringify(rest[0])} at ${at}`);
    tokens.push({ type: 'punct', text: punct, at });
    i += punct.length;
  }
  tokens.push({ type: 'end', text: '', at: expr.length });
  return tokens;
}

// ---- Parser ------------------------------------------------------------------------------------

/** Words of PromQL that the subset has no use for; met where an expression is expected, they are named. */
const OUTSIDE = new Set([
  'offset',
  'bool',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'and',
  'or',
  'unless',
  'atan2',
]);
const COMPARISONS = new Set(['==', '!=', '<', '>', '<=', '>=']);

class Parser {
  private position = 0;
  private readonly end: Token;

  constructor(private readonly tokens: Token[]) {
    this.end = tokens.at(-1) ?? { type: 'end', text: '', at: 0 };
  }

  private get token(): Token {
    return this.tokens[this.position] ?? this.end;
  }

  private peek(ahead = 1): Token {
    return this.tokens[this.position + ahead] ?? this.end;
  }

  private describe(token: Token): string {
    return token.type === 'end' ? 'the end of the expression' : `${JSON.stringify(token.text)} at ${token.at}`;
  }

  private fail(message: string): never {
    throw new PromQLSubsetError(message);
  }

  private expect(text: string): Token {
    const token = this.token;
    if (token.type !== 'punct' || token.text !== text) this.fail(`expected ${text}, found ${this.describe(token)}`);
    this.position++;
    return token;
  }

  private isPunct(text: string): boolean {
    return this.token.type === 'punct' && this.token.text === text;
  }

  parse(): Expr {
    const expr = this.additive();
    const token = this.token;
    if (token.type === 'end') return expr;
    if (token.type === 'punct' && COMPARISONS.has(token.text))
      this.fail(`comparison ${token.text} at ${token.at} is outside the subset`);
    if (token.type === 'punct' && (token.text === '%' || token.text === '^'))
      this.fail(`operator ${token.text} at ${token.at} is outside the subset`);
    if (token.type === 'ident' && OUTSIDE.has(token.text))
      this.fail(`${token.text} at ${token.at} is outside the subset`);
    return this.fail(`unexpected ${this.describe(token)}`);
  }

  private additive(): Expr {
    let lhs = this.multiplicative();
    while (this.isPunct('+') || this.isPunct('-')) {
      const op = this.token.text as Arithmetic;
      this.position++;
      this.noMatchingModifier();
      lhs = { kind: 'binary', op, lhs, rhs: this.multiplicative() };
    }
    return lhs;
  }

  private multiplicative(): Expr {
    let lhs = this.primary();
    while (this.isPunct('*') || this.isPunct('/')) {
      const op = this.token.text as Arithmetic;
      this.position++;
      this.noMatchingModifier();
      lhs = { kind: 'binary', op, lhs, rhs: this.primary() };
    }
    return lhs;
  }

  /** on(...), ignoring(...), group_left...: one-to-one matching on every label is all the subset does. */
  private noMatchingModifier(): void {
    const token = this.token;
    if (token.type === 'ident' && OUTSIDE.has(token.text))
      this.fail(`${token.text} at ${token.at} is outside the subset (binary operators match on every label)`);
  }

  private primary(): Expr {
    const token = this.token;
    if (token.type === 'number') {
      this.position++;
      return { kind: 'number', value: token.value };
    }
    if (token.type === 'punct' && token.text === '(') {
      this.position++;
      const inner = this.additive();
      this.expect(')');
      return inner;
    }
    if (token.type === 'punct' && token.text === '{')
      this.fail(`a selector without a metric name at ${token.at} is outside the subset`);
    if (token.type === 'punct' && (token.text === '-' || token.text === '+'))
      this.fail(`unary ${token.text} at ${token.at} is outside the subset`);
    if (token.type !== 'ident') return this.fail(`expected an expression, found ${this.describe(token)}`);
    const next = this.peek();
    const callsOrGroups =
      (next.type === 'punct' && next.text === '(') ||
      (next.type === 'ident' && (next.text === 'by' || next.text === 'without'));
    if ((AGGREGATIONS as readonly string[]).includes(token.text) && callsOrGroups) return this.aggregate();
    if ((RANGE_FUNCTIONS as readonly string[]).includes(token.text) && callsOrGroups) return this.rangeFunction();
    if (token.text === 'histogram_quantile' && callsOrGroups) return this.histogramQuantile();
    if (OUTSIDE.has(token.text)) this.fail(`${token.text} at ${token.at} is outside the subset`);
    if (next.type === 'punct' && next.text === '(')
      this.fail(`function ${token.text} at ${token.at} is outside the subset`);
    const selector = this.selector();
    const after = this.token;
    if (after.type === 'duration')
      this.fail(`range ${after.text} at ${after.at} is read only by ${RANGE_FUNCTIONS.join(', ')} here`);
    if (after.type === 'ident' && after.text === 'offset') this.fail(`offset at ${after.at} is outside the subset`);
    if (after.type === 'punct' && after.text === '@') this.fail(`@ at ${after.at} is outside the subset`);
    return selector;
  }

  private selector(): Selector {
    const name = this.token;
    if (name.type !== 'ident') return this.fail(`expected a metric name, found ${this.describe(name)}`);
    this.position++;
    const matchers: Matcher[] = [];
    if (this.isPunct('{')) {
      this.position++;
      while (!this.isPunct('}')) {
        const label = this.token;
        if (label.type !== 'ident') this.fail(`expected a label name, found ${this.describe(label)}`);
        this.position++;
        const op = this.token;
        if (op.type !== 'punct' || !['=', '!=', '=~', '!~'].includes(op.text))
          this.fail(`expected =, !=, =~ or !~ after ${label.text}, found ${this.describe(op)}`);
        this.position++;
        const value = this.token;
        if (value.type !== 'string') return this.fail(`expected a quoted value, found ${this.describe(value)}`);
        this.position++;
        if (op.text === '=~' || op.text === '!~') compileRegex(value.value);
        matchers.push({ name: label.text, op: op.text as Matcher['op'], value: value.value });
        if (this.isPunct(',')) this.position++;
        else if (!this.isPunct('}')) this.fail(`expected , or }, found ${this.describe(this.token)}`);
      }
      this.position++;
    }
    return { kind: 'selector', name: name.text, matchers };
  }

  private grouping(): { without: boolean; labels: string[] } | undefined {
    const token = this.token;
    if (token.type !== 'ident' || (token.text !== 'by' && token.text !== 'without')) return undefined;
    this.position++;
    this.expect('(');
    const labels: string[] = [];
    while (!this.isPunct(')')) {
      const label = this.token;
      if (label.type !== 'ident') return this.fail(`expected a label name, found ${this.describe(label)}`);
      labels.push(label.text);
      this.position++;
      if (this.isPunct(',')) this.position++;
      else if (!this.isPunct(')')) this.fail(`expected , or ), found ${this.describe(this.token)}`);
    }
    this.position++;
    return { without: token.text === 'without', labels };
  }

  private aggregate(): Expr {
    const op = this.token.text as Aggregation;
    this.position++;
    let grouping = this.grouping();
    this.expect('(');
    let parameter: number | undefined;
    if (op === 'topk') {
      const k = this.token;
      if (k.type !== 'number' || !Number.isInteger(k.value) || k.value < 1)
        this.fail(`topk takes a whole number first, found ${this.describe(k)}`);
      parameter = k.value;
      this.position++;
      this.expect(',');
    }
    const arg = this.additive();
    this.expect(')');
    const after = this.grouping();
    if (after !== undefined) {
      if (grouping !== undefined) this.fail(`${op} is grouped twice`);
      grouping = after;
    }
    return {
      kind: 'aggregate',
      op,
      arg,
      ...(grouping !== undefined && { grouping }),
      ...(parameter !== undefined && { parameter }),
    };
  }

  private rangeFunction(): Expr {
    const fn = this.token.text as RangeFunction;
    this.position++;
    this.expect('(');
    const selector = this.selector();
    const range = this.token;
    if (range.type !== 'duration') return this.fail(`${fn} needs a range such as [5m], found ${this.describe(range)}`);
    this.position++;
    const after = this.token;
    if (after.type === 'ident' && after.text === 'offset') this.fail(`offset at ${after.at} is outside the subset`);
    this.expect(')');
    return { kind: 'range-function', fn, selector, rangeMs: range.ms };
  }

  private histogramQuantile(): Expr {
    this.position++;
    this.expect('(');
    const quantile = this.token;
    if (quantile.type !== 'number')
      this.fail(`histogram_quantile takes a number first in the subset, found ${this.describe(quantile)}`);
    this.position++;
    this.expect(',');
    const arg = this.additive();
    this.expect(')');
    return { kind: 'histogram-quantile', quantile: quantile.value, arg };
  }
}

/** Parses an expression of the subset, or throws PromQLSubsetError saying what is outside it. */
export function parsePromQL(expr: string): Expr {
  return new Parser(tokenize(expr)).parse();
}

const regexes = new Map<string, RegExp>();

/** Prometheus's regex matchers are anchored at both ends (RE2 syntax; the subset's are plain enough for JavaScript). */
function compileRegex(source: string): RegExp {
  let regex = regexes.get(source);
  if (regex === undefined) {
    try {
      regex = new RegExp(`^(?:${source})$`, 'su');
    } catch {
      throw new PromQLSubsetError(`${JSON.stringify(source)} is not a regular expression`);
    }
    regexes.set(source, regex);
  }
  return regex;
}

export function matches(labels: Labels, matchers: readonly Matcher[]): boolean {
  return matchers.every(({ name, op, value }) => {
    // A label a series lacks is the empty string to a matcher, as in Prometheus.
    const actual = labels[name] ?? '';
    if (op === '=') return actual === value;
    if (op === '!=') return actual !== value;
    const matched = compileRegex(value).test(actual);
    return op === '=~' ? matched : !matched;
  });
}

// ---- Evaluation --------------------------------------------------------------------------------

/** One sample of a series: its time in milliseconds; stale marks the scrape the series was missing from. */
export interface Point {
  t: number;
  v: number;
  stale?: boolean;
}

export interface Series {
  labels: Labels;
  /** In time order. */
  points: Point[];
}

/** Where the evaluator reads series from: those of a metric name whose labels match. */
export interface SeriesSource {
  select(name: string, matchers: readonly Matcher[]): Iterable<Series>;
}

export interface Sample {
  labels: Labels;
  value: number;
}

export type Value = { kind: 'scalar'; value: number } | { kind: 'vector'; samples: Sample[] };

/** How far back an instant selector looks for a series' latest sample: Prometheus's default. */
export const LOOKBACK_MS = 5 * 60_000;

const withoutName = ({ __name__: _, ...rest }: Labels): Labels => rest;

/** A label set as one string, for grouping and matching. */
export function labelKey(labels: Labels): string {
  return Object.keys(labels)
    .sort()
    .map((name) => `${name}=${JSON.stringify(labels[name])}`)
    .join(',');
}

/** The value of `expr` at time `t` (milliseconds, the samples' clock). */
export function evaluate(expr: Expr, source: SeriesSource, t: number): Value {
  switch (expr.kind) {
    case 'number':
      return { kind: 'scalar', value: expr.value };
    case 'selector':
      return { kind: 'vector', samples: instant(expr, source, t) };
    case 'range-function':
      return { kind: 'vector', samples: rangeFunction(expr.fn, expr.selector, expr.rangeMs, source, t) };
    case 'histogram-quantile':
      return { kind: 'vector', samples: histogramQuantile(expr.quantile, vectorOf(expr.arg, source, t)) };
    case 'aggregate':
      return { kind: 'vector', samples: aggregate(expr, vectorOf(expr.arg, source, t)) };
    case 'binary':
      return binary(expr.op, evaluate(expr.lhs, source, t), evaluate(expr.rhs, source, t));
  }
}

function vectorOf(expr: Expr, source: SeriesSource, t: number): Sample[] {
  const value = evaluate(expr, source, t);
  if (value.kind !== 'vector') throw new PromQLSubsetError('expected an instant vector, found a number');
  return value.samples;
}

function instant(selector: Selector, source: SeriesSource, t: number): Sample[] {
  const samples: Sample[] = [];
  for (const series of source.select(selector.name, selector.matchers)) {
    const latest = lastAtOrBefore(series.points, t);
    if (latest === undefined || latest.stale === true || t - latest.t > LOOKBACK_MS) continue;
    samples.push({ labels: series.labels, value: latest.v });
  }
  return samples;
}

function lastAtOrBefore(points: readonly Point[], t: number): Point | undefined {
  let low = 0;
  let high = points.length;
  while (low < high) {
    const middle = (low + high) >> 1;
    if ((points[middle]?.t ?? Infinity) <= t) low = middle + 1;
    else high = middle;
  }
  return points[low - 1];
}

/** The samples of a range (t - rangeMs, t], stale markers left out as Prometheus leaves them out. */
function inRange(points: readonly Point[], t: number, rangeMs: number): Point[] {
  return points.filter((point) => point.t > t - rangeMs && point.t <= t && point.stale !== true);
}

/** rate, irate or increase of each series' samples in the range; a series with fewer than two has none. */
export function rangeFunction(
  fn: RangeFunction,
  selector: Selector,
  rangeMs: number,
  source: SeriesSource,
  t: number,
): Sample[] {
  const samples: Sample[] = [];
  for (const series of source.select(selector.name, selector.matchers)) {
    const points = inRange(series.points, t, rangeMs);
    const [first] = points;
    const [previous, last] = points.slice(-2);
    if (first === undefined || previous === undefined || last === undefined) continue;
    let value: number;
    if (fn === 'irate') {
      const delta = last.v < previous.v ? last.v : last.v - previous.v;
      value = delta / ((last.t - previous.t) / 1000);
    } else {
      let resets = 0;
      let before = first;
      for (const point of points) {
        if (point.v < before.v) resets += before.v;
        before = point;
      }
      const rate = (last.v - first.v + resets) / ((last.t - first.t) / 1000);
      value = fn === 'rate' ? rate : rate * (rangeMs / 1000);
    }
    samples.push({ labels: withoutName(series.labels), value });
  }
  return samples;
}

type Grouping = { without: boolean; labels: string[] } | undefined;

/** The labels a sample keeps in its group: those named by `by`, or all but those named by `without` (and the name). */
function groupLabels(labels: Labels, grouping: Grouping): Labels {
  if (grouping === undefined) return {};
  const kept: Record<string, string> = {};
  if (grouping.without) {
    for (const [name, value] of Object.entries(labels))
      if (name !== '__name__' && !grouping.labels.includes(name)) kept[name] = value;
  } else {
    for (const name of grouping.labels) {
      const value = labels[name];
      if (value !== undefined && value !== '') kept[name] = value;
    }
  }
  return kept;
}

function aggregate(expr: Extract<Expr, { kind: 'aggregate' }>, samples: Sample[]): Sample[] {
  const groups = new Map<string, { labels: Labels; samples: Sample[] }>();
  for (const sample of samples) {
    const labels = groupLabels(sample.labels, expr.grouping);
    const key = labelKey(labels);
    const group = groups.get(key) ?? { labels, samples: [] };
    group.samples.push(sample);
    groups.set(key, group);
  }
  const out: Sample[] = [];
  for (const group of groups.values()) {
    const values = group.samples.map((sample) => sample.value);
    const numbers = values.filter((value) => !Number.isNaN(value));
    switch (expr.op) {
      case 'sum':
        out.push({ labels: group.labels, value: values.reduce((sum, value) => sum + value, 0) });
        break;
      case 'avg':
        out.push({ labels: group.labels, value: values.reduce((sum, value) => sum + value, 0) / values.length });
        break;
      case 'count':
        out.push({ labels: group.labels, value: values.length });
        break;
      // NaN loses to any number in min and max, as in Prometheus.
      case 'min':
        out.push({ labels: group.labels, value: numbers.length > 0 ? Math.min(...numbers) : NaN });
        break;
      case 'max':
        out.push({ labels: group.labels, value: numbers.length > 0 ? Math.max(...numbers) : NaN });
        break;
      case 'topk': {
        // The k largest keep their own labels; NaN sorts last.
        const ranked = [...group.samples].sort(
          (a, b) => (Number.isNaN(a.value) ? 1 : 0) - (Number.isNaN(b.value) ? 1 : 0) || b.value - a.value,
        );
        out.push(...ranked.slice(0, expr.parameter ?? 1));
        break;
      }
    }
  }
  return out;
}

/** Prometheus's bucketQuantile over one histogram's cumulative buckets. */
export function bucketQuantile(q: number, buckets: readonly { upperBound: number; count: number }[]): number {
  if (Number.isNaN(q)) return NaN;
  if (q < 0) return -Infinity;
  if (q > 1) return Infinity;
  const sorted = [...buckets].sort((a, b) => a.upperBound - b.upperBound);
  if (sorted.at(-1)?.upperBound !== Infinity) return NaN;
  // Buckets of one bound (from series that differ only in labels that were summed away) are one.
  const bounds: number[] = [];
  const counts: number[] = [];
  for (const { upperBound, count } of sorted) {
    if (bounds.at(-1) === upperBound) counts.push((counts.pop() ?? 0) + count);
    else {
      bounds.push(upperBound);
      counts.push(count);
    }
  }
  // Counts scraped a moment apart can step back a little: made monotonic, as Prometheus does.
  let highest = 0;
  const cumulative = counts.map((count) => (highest = Math.max(highest, count)));
  if (bounds.length < 2) return NaN;
  const observations = highest;
  if (observations === 0) return NaN;
  const rank = q * observations;
  const last = bounds.length - 1;
  // The first bucket holding the rank; the +Inf bucket answers the highest finite bound.
  const b = cumulative.findIndex((count) => count >= rank);
  if (b < 0 || b >= last) return bounds[last - 1] ?? NaN;
  const bucketEnd = bounds[b] ?? NaN;
  const inBucket = cumulative[b] ?? NaN;
  if (b === 0) return bucketEnd <= 0 ? bucketEnd : bucketEnd * (rank / inBucket);
  const bucketStart = bounds[b - 1] ?? NaN;
  const below = cumulative[b - 1] ?? NaN;
  return bucketStart + (bucketEnd - bucketStart) * ((rank - below) / (inBucket - below));
}

function histogramQuantile(q: number, samples: Sample[]): Sample[] {
  const histograms = new Map<string, { labels: Labels; buckets: { upperBound: number; count: number }[] }>();
  for (const sample of samples) {
    const le = sample.labels.le;
    if (le === undefined) continue;
    const upperBound = le === '+Inf' ? Infinity : Number(le);
    if (Number.isNaN(upperBound)) continue;
    const { le: _, ...rest } = withoutName(sample.labels);
    const key = labelKey(rest);
    const histogram = histograms.get(key) ?? { labels: rest, buckets: [] };
    histogram.buckets.push({ upperBound, count: sample.value });
    histograms.set(key, histogram);
  }
  return [...histograms.values()].map(({ labels, buckets }) => ({ labels, value: bucketQuantile(q, buckets) }));
}

function arithmetic(op: Arithmetic, a: number, b: number): number {
  if (op === '+') return a + b;
  if (op === '-') return a - b;
  if (op === '*') return a * b;
  return a / b;
}

/** Arithmetic between numbers, a number and a vector, or two vectors matched one-to-one on all their labels. */
function binary(op: Arithmetic, lhs: Value, rhs: Value): Value {
  if (lhs.kind === 'scalar' && rhs.kind === 'scalar')
    return { kind: 'scalar', value: arithmetic(op, lhs.value, rhs.value) };
  if (lhs.kind === 'scalar' && rhs.kind === 'vector')
    return {
      kind: 'vector',
      samples: rhs.samples.map((s) => ({ labels: withoutName(s.labels), value: arithmetic(op, lhs.value, s.value) })),
    };
  if (lhs.kind === 'vector' && rhs.kind === 'scalar')
    return {
      kind: 'vector',
      samples: lhs.samples.map((s) => ({ labels: withoutName(s.labels), value: arithmetic(op, s.value, rhs.value) })),
    };
  if (lhs.kind !== 'vector' || rhs.kind !== 'vector') throw new PromQLSubsetError('unreachable');
  const right = new Map<string, Sample>();
  for (const sample of rhs.samples) {
    const key = labelKey(withoutName(sample.labels));
    if (right.has(key))
      throw new PromQLSubsetError(`many-to-many matching: two series on the right-hand side have labels {${key}}`);
    right.set(key, sample);
  }
  const samples: Sample[] = [];
  for (const sample of lhs.samples) {
    const labels = withoutName(sample.labels);
    const match = right.get(labelKey(labels));
    if (match !== undefined) samples.push({ labels, value: arithmetic(op, sample.value, match.value) });
  }
  return { kind: 'vector', samples };
}
