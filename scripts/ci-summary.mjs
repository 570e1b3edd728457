#!/usr/bin/env node
// Prints CI's one-line result, "N passed, N failed" (plus ", N skipped" when some were skipped), from a
// vitest JSON report (`vitest run --reporter=json --outputFile.json=FILE`), and exits 1 when anything
// failed. Used by .ci/run; plain Node, no dependencies, runs on any Node >= 18.
//
//   node scripts/ci-summary.mjs FILE [--exit-code N]
//
// Counted as failures, besides failed tests: test files that failed without a failed test (they did not
// load, or a hook threw), a report that is missing or unreadable (the build or vitest crashed: counts as
// one), and a report with no failure although vitest says it failed or exited nonzero (`--exit-code`;
// e.g. unhandled errors: counts as one). Details go to stderr, the summary line alone to stdout.
import { readFileSync, realpathSync } from 'node:fs';
import { relative } from 'node:path';
import { pathToFileURL } from 'node:url';

const count = (value) => (Number.isFinite(value) ? value : 0);
const firstLine = (text) =>
  String(text ?? '')
    .trim()
    .split('\n')[0] || 'no message';

/** Counts from a parsed vitest JSON report (null when it is missing) and the test command's exit code. */
export function summarize(report, exitCode = 0) {
  const notes = [];
  if (report === null || typeof report !== 'object') {
    notes.push(
      'no vitest report: the set-up, the build or vitest itself failed before writing it (see above)',
    );
    return { passed: 0, failed: 1, skipped: 0, notes };
  }
  const passed = count(report.numPassedTests);
  const skipped = count(report.numPendingTests) + count(report.numTodoTests);
  let failed = count(report.numFailedTests);
  for (const file of Array.isArray(report.testResults) ? report.testResults : []) {
    const tests = Array.isArray(file.assertionResults) ? file.assertionResults : [];
    for (const test of tests) {
      if (test.status === 'failed')
        notes.push(`failed: ${relative('.', file.name ?? '?')} > ${test.fullName}`);
    }
    if (file.status === 'failed' && !tests.some((test) => test.status === 'failed')) {
      failed += 1;
      notes.push(`failed file: ${relative('.', file.name ?? '?')}: ${firstLine(file.message)}`);
    }
  }
  if (failed === 0 && (report.success === false || exitCode !== 0)) {
    failed = 1;
    notes.push(
      `vitest reported a failure outside the tests (success: ${report.success}, exit code ${exitCode})`,
    );
  }
  return { passed, failed, skipped, notes };
}

export function formatSummary({ passed, failed, skipped }) {
  return `${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ''}`;
}

function readReport(file) {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    console.error(`[ci] cannot read the vitest report ${file}: ${error.message}`);
    return null;
  }
}

function main(argv) {
  const file = argv[0];
  const codeAt = argv.indexOf('--exit-code');
  const exitCode = codeAt >= 0 ? Number(argv[codeAt + 1]) : 0;
  if (!file || file.startsWith('--') || !Number.isInteger(exitCode)) {
    console.error('usage: node scripts/ci-summary.mjs VITEST_JSON_REPORT [--exit-code N]');
    return 2;
  }
  const result = summarize(readReport(file), exitCode);
  for (const note of result.notes.slice(0, 50)) console.error(`[ci] ${note}`);
  if (result.notes.length > 50) console.error(`[ci] ... and ${result.notes.length - 50} more`);
  console.log(formatSummary(result));
  return result.failed > 0 ? 1 : 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  process.exitCode = main(process.argv.slice(2));
}
