// The checks of `npm run ops:check` that need no running app: names read from PromQL, names a
// /metrics text declares, and what a rules file must hold. The committed ops/ files pass them.

import { readFile, readdir } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import {
  DASHBOARD_DIR,
  RULES_FILE,
  checkRules,
  dashboardExprs,
  exposedNames,
  metricNamesIn,
} from '../../src/cli/ops-check.ts';

describe('ops:check', () => {
  it('reads the metric names of an expression, not its labels, label values, functions or ranges', () => {
    expect(
      metricNamesIn(
        'histogram_quantile(0.99, sum by (le, storekeeper_x) (rate(storekeeper_a_bucket{status=~"storekeeper_b|5.."}[5m]))) ' +
          '/ ignoring(pool) storekeeper_c > 1 and up{job="storekeeper"} == 0',
      ).sort(),
    ).toEqual(['storekeeper_a_bucket', 'storekeeper_c', 'up']);
  });

  it('knows the series a histogram declares before anything is observed', () => {
    const names = exposedNames(
      '# HELP storekeeper_h h\n# TYPE storekeeper_h histogram\n# HELP storekeeper_c c\n# TYPE storekeeper_c counter\n',
    );
    expect([...names].sort()).toEqual([
      'storekeeper_c',
      'storekeeper_h',
      'storekeeper_h_bucket',
      'storekeeper_h_count',
      'storekeeper_h_sum',
    ]);
  });

  it('refuses rules without a severity or summary, with a malformed duration or unbalanced expression, or named twice', () => {
    const { problems } = checkRules({
      groups: [
        {
          name: 'g',
          rules: [
            { alert: 'A', expr: 'sum(storekeeper_x', for: '5 minutes', labels: {}, annotations: {} },
            { alert: 'A', expr: 'storekeeper_x > 0', labels: { severity: 'critical' }, annotations: { summary: 's' } },
          ],
        },
      ],
    });
    expect(problems).toEqual([
      'A: labels.severity must be one of critical, warning, info',
      'A: no annotations.summary',
      'A: for must be a duration such as 5m',
      'A: unbalanced parentheses in expr',
      'A: an alert of that name exists already',
    ]);
  });

  it('passes the committed rules and dashboards, which use only storekeeper names and up', async () => {
    const rules = checkRules(parse(await readFile(RULES_FILE, 'utf8')));
    expect(rules.problems).toEqual([]);
    expect(rules.exprs.length).toBeGreaterThanOrEqual(8);
    for (const file of (await readdir(DASHBOARD_DIR)).filter((name) => name.endsWith('.json'))) {
      const exprs = dashboardExprs(JSON.parse(await readFile(`${DASHBOARD_DIR}${file}`, 'utf8')));
      expect(exprs.length).toBeGreaterThan(0);
      for (const expr of exprs) expect(metricNamesIn(expr).length, expr).toBeGreaterThan(0);
    }
  });
});
