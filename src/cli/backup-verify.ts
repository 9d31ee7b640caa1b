// `npm run backup:verify -- DIR`: checks a backup without restoring it and without a database:
// the manifest, and every file's size, checksums, compression and BSON framing
// (src/backup/verify.ts). Exit 0 when intact, 1 when damaged or incomplete.

import { pathToFileURL } from 'node:url';
import { UsageError, parseCommandLine, runCommand } from './backup-command.ts';
import type { Progress } from '../backup/progress.ts';
import { describeReport, verifyBackup } from '../backup/verify.ts';

const USAGE = `usage: npm run backup:verify -- DIR
  DIR   the backup directory (made by npm run backup)
Progress goes to stderr: sentences on a terminal, JSON lines otherwise. Exit 0 intact, 1 damaged
or incomplete, 2 usage.`;

async function main(args: string[], progress: Progress): Promise<boolean> {
  const parsed = parseCommandLine(args, {}, true);
  if (parsed === undefined) {
    process.stdout.write(`${USAGE}\n`);
    return true;
  }
  const [dir, ...more] = parsed.positionals;
  if (dir === undefined || dir === '' || more.length > 0) throw new UsageError('give exactly one backup directory');
  const report = await verifyBackup(dir, progress);
  for (const { file, problem } of report.problems)
    progress({ event: 'problem', message: `  ${file}: ${problem}`, file, problem });
  progress({
    event: report.ok ? 'verify-done' : 'verify-failed',
    message: describeReport(report),
    ok: report.ok,
    problems: report.problems.length,
    ...(report.manifest !== undefined && {
      database: report.manifest.database,
      documents: report.manifest.totals.documents,
    }),
    ms: report.ms,
  });
  return report.ok;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  runCommand('backup:verify', USAGE, (progress) => main(process.argv.slice(2), progress));
}
