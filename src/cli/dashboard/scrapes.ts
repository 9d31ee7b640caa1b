// The series `npm run ops:dashboard` scrapes, kept as Prometheus keeps them: each /metrics text
// (the exposition format prom-client writes) is parsed into samples, labelled with the scrape's
// job and instance as Prometheus labels its targets, and appended to its series at the scrape's
// time; a series missing from a scrape gets a stale marker there. The store is plain data, so a
// run's samples can be saved and rendered again (`--save-samples`, `--from-samples`).

import { labelKey, matches, type Labels, type Matcher, type Point, type Series, type SeriesSource } from './promql.ts';

export interface ExposedSample {
  labels: Labels;
  value: number;
}

function parseValue(text: string): number {
  if (text === '+Inf' || text === 'Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  if (text === 'NaN') return NaN;
  const value = Number(text);
  if (text === '' || Number.isNaN(value)) throw new Error(`not a sample value: ${JSON.stringify(text)}`);
  return value;
}

/** The samples of a text in Prometheus's exposition format (version 0.0.4), each with its name as __name__. */
export function parseExposition(text: string): ExposedSample[] {
  const samples: ExposedSample[] = [];
  for (const [index, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const name = /^[A-Za-z_:][A-Za-z0-9_:]*/.exec(line)?.[0];
    if (name === undefined) throw new Error(`line ${index + 1}: no metric name in ${JSON.stringify(line)}`);
    const labels: Record<string, string> = { __name__: name };
    const malformed = () => new Error(`line ${index + 1}: malformed labels in ${JSON.stringify(line)}`);
    let i = name.length;
    if (line[i] === '{') {
      i++;
      for (;;) {
        while (line[i] === ' ' || line[i] === ',') i++;
        if (line[i] === '}') break;
        const label = /^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"/.exec(line.slice(i));
        if (label === null) throw malformed();
        i += label[0].length;
        let value = '';
        for (; i < line.length && line[i] !== '"'; i++) {
          if (line[i] !== '\\') value += line.charAt(i);
          else value += line[++i] === 'n' ? '\n' : (line[i] ?? '');
        }
        if (i >= line.length) throw malformed();
        labels[label[1] ?? ''] = value;
        i++;
      }
      i++;
    }
    // A timestamp may follow the value; the scrape's own time is used, as Prometheus does by default for ours.
    const [value = ''] = line.slice(i).trim().split(/\s+/);
    samples.push({ labels, value: parseValue(value) });
  }
  return samples;
}

/** Every series scraped so far, by label set, and each metric name's series. */
export class ScrapeStore implements SeriesSource {
  private readonly series = new Map<string, Series>();
  private readonly byName = new Map<string, Series[]>();
  private lastScrape = new Set<string>();
  /** When each scrape was taken, in milliseconds on the run's clock. */
  readonly scrapeTimes: number[] = [];

  constructor(private readonly target: { job: string; instance: string }) {}

  /** Adds a scrape taken at `t` (ms): its samples, and a stale marker for each series it no longer has. */
  add(t: number, samples: readonly ExposedSample[]): void {
    const seen = new Set<string>();
    for (const sample of samples) {
      const labels = { ...sample.labels, job: this.target.job, instance: this.target.instance };
      const key = labelKey(labels);
      seen.add(key);
      this.append(key, labels, { t, v: sample.value });
    }
    for (const key of this.lastScrape)
      if (!seen.has(key)) this.series.get(key)?.points.push({ t, v: NaN, stale: true });
    this.lastScrape = seen;
    this.scrapeTimes.push(t);
  }

  private append(key: string, labels: Labels, point: Point): void {
    let series = this.series.get(key);
    if (series === undefined) {
      series = { labels, points: [] };
      this.series.set(key, series);
      const name = labels.__name__ ?? '';
      this.byName.set(name, [...(this.byName.get(name) ?? []), series]);
    }
    series.points.push(point);
  }

  select(name: string, matchers: readonly Matcher[]): Series[] {
    return (this.byName.get(name) ?? []).filter((series) => matches(series.labels, matchers));
  }

  /** The store as JSON-able data; NaN (stale markers) and infinities as strings. */
  save(): { scrapeTimes: number[]; series: { labels: Labels; points: [number, number | string][] }[] } {
    const encode = (v: number) => (Number.isFinite(v) ? v : String(v));
    return {
      scrapeTimes: this.scrapeTimes,
      series: [...this.series.values()].map(({ labels, points }) => ({
        labels,
        points: points.map((point) => [point.t, point.stale === true ? 'stale' : encode(point.v)]),
      })),
    };
  }

  static load(saved: ReturnType<ScrapeStore['save']>): ScrapeStore {
    const store = new ScrapeStore({ job: '', instance: '' });
    store.scrapeTimes.push(...saved.scrapeTimes);
    for (const { labels, points } of saved.series)
      for (const [t, v] of points)
        store.append(
          labelKey(labels),
          labels,
          v === 'stale' ? { t, v: NaN, stale: true } : { t, v: typeof v === 'number' ? v : Number(v) },
        );
    return store;
  }
}
