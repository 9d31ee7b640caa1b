// The reconciliation report of an import, as JSON (--report) and as text (stdout): what was read
// and what became of it, each collection's count and checksum afterwards (compare two databases,
// or a run with the one before it), and the stock ledger: every item's reserved units against
// what the open orders hold there. Counts only: no record's content, which may be personal data.

import type { Checksum, LedgerMismatch } from '../data/imports.ts';
import type { Counts } from './checkpoint.ts';

export interface ImportReport {
  collection: string;
  file: string;
  format: string;
  dryRun: boolean;
  onConflict: string;
  batchSize: number;
  resumed: boolean;
  startedAt: string;
  finishedAt: string;
  seconds: number;
  backup: string | null;
  rejects: string | null;
  records: Counts;
  collections: Record<string, Checksum>;
  ledger: { consistent: boolean; items: number; mismatchCount: number; mismatches: LedgerMismatch[] };
}

const number = (value: number) => value.toLocaleString('en-US');

export function reportText(report: ImportReport): string {
  const { records: r } = report;
  const lines = [
    `${report.dryRun ? 'dry run (nothing written)' : 'import'} of ${report.file} into ${report.collection} ` +
      `(${report.format}, on conflict ${report.onConflict}, batches of ${report.batchSize}${report.resumed ? ', resumed' : ''}) ` +
      `in ${report.seconds.toFixed(1)} s`,
    `  records read ${number(r.read)}: ${report.dryRun ? 'would insert' : 'inserted'} ${number(r.inserted)}, ` +
      `${report.dryRun ? 'would update' : 'updated'} ${number(r.updated)}, unchanged ${number(r.unchanged)}, ` +
      `skipped (exist with other content) ${number(r.skipped)}, rejected ${number(r.rejected)}`,
  ];
  if (report.rejects !== null && r.rejected > 0) lines.push(`  rejects: ${report.rejects}`);
  if (report.backup !== null) lines.push(`  backup before writing: ${report.backup}`);
  lines.push('  collections after:');
  for (const [name, { count, sha256 }] of Object.entries(report.collections))
    lines.push(`    ${name.padEnd(10)} ${number(count).padStart(11)} documents  sha256 ${sha256}`);
  const { ledger } = report;
  lines.push(
    ledger.consistent
      ? `  stock ledger: consistent (${number(ledger.items)} items: reserved = what open orders hold)`
      : `  stock ledger: ${number(ledger.mismatchCount)} of ${number(ledger.items)} items differ from what open orders hold` +
          ' (orders not imported yet?):',
  );
  for (const m of ledger.mismatches)
    lines.push(
      `    ${m.sku}@${m.warehouse}: reserved ${m.reserved === undefined ? '(no stock item)' : m.reserved}, open orders ${m.openOrders}`,
    );
  return `${lines.join('\n')}\n`;
}
