// The dashboard drawn as SVG by hand, in Grafana's light theme: its 24-column grid scaled to a
// width GitHub's README column shows at about full size, row titles, and in each panel its title,
// a time series' axes (ticks in the panel's unit, seconds since the load began), one line per
// series and a legend, or a stat panel's last values on their threshold colours. Text widths are
// estimated (no fonts are measured here) and every number is rounded, so the same series give
// the same bytes.

import type { Dashboard, Panel, PlottedSeries, Threshold } from './panels.ts';
import { axis, formatValue } from './units.ts';

const WIDTH = 900;
const MARGIN = 10;
const HEADER = 64;
const ROW_UNIT = 28;
const GAP = 8;
const COLUMN = (WIDTH - 2 * MARGIN) / 24;
const FONT = 'Inter, Helvetica, Arial, sans-serif';

const THEME = {
  canvas: '#F4F5F5',
  panel: '#FFFFFF',
  border: '#DCDEE0',
  text: '#24292E',
  secondary: '#6E7175',
  grid: '#E9EBEC',
  axis: '#C7CBCE',
};

/** Grafana's classic palette, the order it gives series of a panel. */
const PALETTE = [
  '#7EB26D',
  '#EAB839',
  '#6ED0E0',
  '#EF843C',
  '#E24D42',
  '#1F78C1',
  '#BA43A6',
  '#705DA0',
  '#508642',
  '#CCA300',
  '#447EBC',
  '#C15C17',
  '#890F02',
  '#0A437C',
  '#6D1F62',
  '#584477',
];

const colorOf = (index: number) => PALETTE[index % PALETTE.length] ?? THEME.text;

/** Grafana's named colours as its light theme shows them. */
const NAMED_COLORS: Record<string, string> = {
  green: '#56A64B',
  red: '#E02F44',
  yellow: '#E0B400',
  orange: '#FA6400',
  blue: '#3274D9',
  purple: '#8F3BB8',
};

export interface PanelData {
  panel: Panel;
  series: PlottedSeries[];
}

export interface Rendering {
  dashboard: Dashboard;
  /** Lines under the title: how the picture was made. */
  subtitle: string[];
  /** The evaluation steps, in milliseconds since the load began. */
  steps: readonly number[];
  panels: PanelData[];
}

const escape = (text: string) =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

const round1 = (value: number) => Math.round(value * 10) / 10;
/** A coordinate with at most one decimal, without a trailing .0. */
const n = (value: number) => String(round1(value));

/** Roughly how wide `text` is in a sans-serif font of `size` px. */
export function textWidth(text: string, size: number, bold = false): number {
  let em = 0;
  for (const char of text) {
    if ("iljI.,:;|!'` ()[]".includes(char)) em += 0.3;
    else if ('mwMW@%'.includes(char)) em += 0.88;
    else if (char >= 'A' && char <= 'Z') em += 0.7;
    else em += 0.57;
  }
  return em * size * (bold ? 1.08 : 1);
}

/** `text` cut to fit `width`, with an ellipsis where it was cut. */
function fit(text: string, size: number, width: number, bold = false): string {
  if (textWidth(text, size, bold) <= width) return text;
  let cut = text;
  while (cut.length > 1 && textWidth(`${cut}…`, size, bold) > width) cut = cut.slice(0, -1);
  return `${cut.trimEnd()}…`;
}

function label(
  x: number,
  y: number,
  text: string,
  size: number,
  options: { anchor?: 'start' | 'middle' | 'end'; color?: string; weight?: number } = {},
): string {
  const anchor = options.anchor !== undefined && options.anchor !== 'start' ? ` text-anchor="${options.anchor}"` : '';
  const weight = options.weight !== undefined ? ` font-weight="${options.weight}"` : '';
  return `<text x="${n(x)}" y="${n(y)}" font-size="${size}"${anchor}${weight} fill="${options.color ?? THEME.text}">${escape(text)}</text>`;
}

interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

function boxOf(panel: Panel): Box {
  const { x, y, w, h } = panel.gridPos;
  return {
    x: MARGIN + x * COLUMN + GAP / 2,
    y: HEADER + y * ROW_UNIT + GAP / 2,
    w: w * COLUMN - GAP,
    h: h * ROW_UNIT - GAP,
  };
}

const TITLE_SIZE = 12;
const SMALL = 10.5;
/** A legend's type and line height; the second when the first would take more than LEGEND_SHARE of the panel. */
const LEGEND_SIZES = [
  { size: SMALL, line: 14 },
  { size: 9.5, line: 12 },
] as const;
const LEGEND_SHARE = 0.3;

interface Legend {
  size: number;
  line: number;
  lines: number;
  items: { x: number; line: number; text: string }[];
}

/** Legend items flowed into lines within `width`: each item's x offset and its line. */
function legendLayout(names: readonly string[], width: number, height: number): Legend {
  let legend: Legend = { size: SMALL, line: 14, lines: 0, items: [] };
  for (const { size, line: lineHeight } of LEGEND_SIZES) {
    const items: Legend['items'] = [];
    let x = 0;
    let line = 0;
    for (const name of names) {
      const text = fit(name, size, width - 16);
      const itemWidth = 16 + textWidth(text, size) + 12;
      if (x > 0 && x + itemWidth - 12 > width) {
        x = 0;
        line++;
      }
      items.push({ x, line, text });
      x += itemWidth;
    }
    legend = { size, line: lineHeight, lines: line + 1, items };
    if (legend.lines * lineHeight <= height * LEGEND_SHARE) break;
  }
  return legend;
}

function timeseries(box: Box, data: PanelData, steps: readonly number[]): string[] {
  const out: string[] = [];
  const { series, panel } = data;
  const finite = series.flatMap((s) => s.values.filter((v): v is number => v !== null));
  const top = box.y + 30;
  if (finite.length === 0) {
    out.push(
      label(box.x + box.w / 2, box.y + box.h / 2 + 4, 'No data', 13, { anchor: 'middle', color: THEME.secondary }),
    );
    return out;
  }
  const legend = legendLayout(
    series.map((s) => s.name),
    box.w - 20,
    box.h,
  );
  const legendTop = box.y + box.h - 8 - legend.lines * legend.line;
  const bottom = legendTop - 20;
  const tickCount = Math.max(2, Math.min(5, Math.floor((bottom - top) / 30)));
  const { ticks, labels: tickLabels } = axis(Math.min(...finite), Math.max(...finite), tickCount, panel.unit);
  const left = box.x + 10 + Math.max(...tickLabels.map((text) => textWidth(text, SMALL))) + 6;
  const right = box.x + box.w - 12;
  const low = ticks[0] ?? 0;
  const high = ticks.at(-1) ?? 1;
  const end = Math.max(steps.at(-1) ?? 1, 1);
  const xOf = (t: number) => left + ((right - left) * t) / end;
  const yOf = (v: number) => bottom - ((bottom - top) * (v - low)) / (high - low);

  ticks.forEach((tick, i) => {
    const y = yOf(tick);
    out.push(`<line x1="${n(left)}" y1="${n(y)}" x2="${n(right)}" y2="${n(y)}" stroke="${THEME.grid}"/>`);
    out.push(label(left - 6, y + 3.5, tickLabels[i] ?? '', SMALL, { anchor: 'end', color: THEME.secondary }));
  });
  const timeSpacing = end > 90_000 ? 30_000 : end > 30_000 ? 10_000 : 5_000;
  for (let t = 0; t <= end + 1; t += timeSpacing) {
    const x = xOf(t);
    out.push(`<line x1="${n(x)}" y1="${n(top)}" x2="${n(x)}" y2="${n(bottom)}" stroke="${THEME.grid}"/>`);
    out.push(label(x, bottom + 13, `${t / 1000}s`, SMALL, { anchor: 'middle', color: THEME.secondary }));
  }
  out.push(`<line x1="${n(left)}" y1="${n(bottom)}" x2="${n(right)}" y2="${n(bottom)}" stroke="${THEME.axis}"/>`);

  series.forEach((s, i) => {
    const color = colorOf(i);
    // Runs of steps with a value are lines; a step alone between gaps is a dot, as Grafana shows it.
    let run: { x: number; y: number }[] = [];
    const flush = () => {
      const [only] = run;
      if (run.length === 1 && only !== undefined) {
        out.push(`<circle cx="${n(only.x)}" cy="${n(only.y)}" r="1.8" fill="${color}"/>`);
      } else if (run.length > 1) {
        const points = run.map(({ x, y }) => `${n(x)},${n(y)}`).join(' ');
        out.push(`<polyline points="${points}" fill="none" stroke="${color}" stroke-width="1.5"/>`);
      }
      run = [];
    };
    s.values.forEach((value, step) => {
      if (value === null) flush();
      else run.push({ x: xOf(steps[step] ?? 0), y: yOf(value) });
    });
    flush();
  });

  for (const [i, item] of legend.items.entries()) {
    const x = box.x + 10 + item.x;
    const y = legendTop + item.line * legend.line + 10;
    const color = colorOf(i);
    out.push(`<rect x="${n(x)}" y="${n(y - 4)}" width="12" height="3" rx="1" fill="${color}"/>`);
    out.push(label(x + 16, y, item.text, legend.size));
  }
  return out;
}

function thresholdColor(value: number, thresholds: readonly Threshold[]): string {
  let color = thresholds[0]?.color ?? 'green';
  for (const step of thresholds) if (step.value === null || value >= step.value) color = step.color;
  return NAMED_COLORS[color] ?? color;
}

/** Each series' last value (Grafana's lastNotNull), side by side on its threshold's colour. */
function stat(box: Box, data: PanelData): string[] {
  const out: string[] = [];
  const values = data.series.map((s) => ({ name: s.name, value: s.values.findLast((v) => v !== null) ?? null }));
  if (values.length === 0) {
    out.push(
      label(box.x + box.w / 2, box.y + box.h / 2 + 4, 'No data', 13, { anchor: 'middle', color: THEME.secondary }),
    );
    return out;
  }
  const top = box.y + 30;
  const gap = 6;
  const width = (box.w - 16 - gap * (values.length - 1)) / values.length;
  const height = box.y + box.h - 8 - top;
  values.forEach(({ name, value }, i) => {
    const x = box.x + 8 + i * (width + gap);
    const background = value === null ? THEME.grid : thresholdColor(value, data.panel.thresholds);
    const color = value === null ? THEME.secondary : '#FFFFFF';
    out.push(`<rect x="${n(x)}" y="${n(top)}" width="${n(width)}" height="${n(height)}" rx="3" fill="${background}"/>`);
    // A long name is written smaller before it is cut.
    const nameSize = Math.max(9, Math.min(11.5, (11.5 * (width - 8)) / textWidth(name, 11.5)));
    out.push(
      label(x + width / 2, top + 20, fit(name, nameSize, width - 8), round1(nameSize), { anchor: 'middle', color }),
    );
    const text = value === null ? 'No data' : formatValue(value, data.panel.unit);
    const size = Math.min(30, height * 0.3, (width - 12) / Math.max(1, textWidth(text, 1)));
    out.push(
      label(x + width / 2, top + height / 2 + 10 + size / 3, text, Math.round(size), {
        anchor: 'middle',
        color,
        weight: 500,
      }),
    );
  });
  return out;
}

export function renderSvg(rendering: Rendering): string {
  const { dashboard, panels, steps } = rendering;
  const height =
    HEADER + Math.max(...dashboard.panels.map((p) => (p.gridPos.y + p.gridPos.h) * ROW_UNIT), 0) + MARGIN - GAP / 2;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${n(height)}" viewBox="0 0 ${WIDTH} ${n(height)}" font-family="${FONT}">`,
    `<title>${escape(dashboard.title)} dashboard</title>`,
    `<rect width="${WIDTH}" height="${n(height)}" fill="${THEME.canvas}"/>`,
    label(MARGIN + 4, 24, dashboard.title, 17, { weight: 600 }),
    ...rendering.subtitle.map((line, i) =>
      label(MARGIN + 4, 42 + i * 13, fit(line, SMALL, WIDTH - 2 * MARGIN - 8), SMALL, { color: THEME.secondary }),
    ),
  ];
  const data = new Map(panels.map((p) => [p.panel.id, p]));
  for (const panel of dashboard.panels) {
    const box = boxOf(panel);
    if (panel.type === 'row') {
      out.push(label(box.x + 2, box.y + box.h / 2 + 6, panel.title, 14, { weight: 600 }));
      continue;
    }
    // The full title, for a title cut to fit and for screen readers.
    out.push(`<g>`, `<title>${escape(panel.title)}</title>`);
    out.push(
      `<rect x="${n(box.x)}" y="${n(box.y)}" width="${n(box.w)}" height="${n(box.h)}" rx="3" fill="${THEME.panel}" stroke="${THEME.border}"/>`,
    );
    out.push(
      label(box.x + 10, box.y + 19, fit(panel.title, TITLE_SIZE, box.w - 20, true), TITLE_SIZE, { weight: 600 }),
    );
    const panelData = data.get(panel.id) ?? { panel, series: [] };
    out.push(...(panel.type === 'stat' ? stat(box, panelData) : timeseries(box, panelData, steps)));
    out.push(`</g>`);
  }
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
