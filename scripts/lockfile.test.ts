// The install must never break on a fresh machine: `npm ci` takes package-lock.json as it is only when
// the lockfile lists every package any platform may need (optional per-platform binaries included) and
// agrees with every package.json. `npm ci --dry-run` checks exactly that in about a second, without
// touching node_modules. `npm ls` then checks that the installed tree has no missing or invalid
// dependency, peer dependencies included.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '..');
const run = promisify(execFile);

async function npm(args: string[]): Promise<{ code: number; out: string }> {
  try {
    const r = await run('npm', args, { cwd: ROOT, maxBuffer: 64 << 20 });
    return { code: 0, out: r.stdout + r.stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return {
      code: typeof err.code === 'number' ? err.code : 1,
      out: `${err.stdout ?? ''}${err.stderr ?? ''}`,
    };
  }
}

describe('package-lock.json', () => {
  it('is accepted by npm ci as it is, on any platform', async () => {
    const r = await npm(['ci', '--dry-run', '--ignore-scripts', '--no-audit', '--no-fund']);
    // On failure the output names each package the lockfile lacks or disagrees on.
    expect(r.out.split('\n').filter((l) => /^npm error (Missing|Invalid)/.test(l))).toEqual([]);
    expect(r.code).toBe(0);
  }, 60_000);

  it('installs a tree with no missing, invalid or conflicting (peer) dependency', async () => {
    const r = await npm(['ls', '--all', '--include=dev']);
    // Optional packages of other platforms are "UNMET OPTIONAL" and fine; anything else npm names is not.
    expect(
      r.out.split('\n').filter((l) => /^npm error|invalid|UNMET (?!OPTIONAL)|extraneous/.test(l)),
    ).toEqual([]);
    expect(r.code).toBe(0);
  }, 60_000);
});
