// The file receiver's checkpoint against a real crash: the agent CLI (bin/netmon, the built packages) replays into the
// file exporter, is killed with SIGKILL part way, and started again with the same config.
import { existsSync } from 'node:fs';
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { AgentProcess, ROOT, withTmpDir } from './harness/agent.js';

const SAMPLE = path.join(ROOT, 'packages/receivers/src/file/testdata/sample-flows.jsonl');

/** Lines of a JSON Lines file, without the empty string after the last "\n". */
async function linesOf(file: string): Promise<string[]> {
  if (!existsSync(file)) return [];
  return (await readFile(file, 'utf8')).split('\n').filter((l) => l !== '');
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('file receiver checkpoint across kill -9 (real CLI)', () => {
  it('a restart resumes after the last record handed over', async () => {
    await withTmpDir(async (dir) => {
      const input = path.join(dir, 'flows.jsonl');
      const out = path.join(dir, 'out.jsonl');
      const checkpoint = path.join(dir, 'state', 'replay.checkpoint');
      await copyFile(SAMPLE, input);
      const config = path.join(dir, 'replay.yaml');
      // An interval every 0.5 s, each in batches of 5: the kill comes between intervals.
      await writeFile(
        config,
        `receivers:
  file: { path: ./flows.jsonl, pace: recorded, speed: 20, batch_size: 5, checkpoint_file: ./state/replay.checkpoint }
exporters: { file: { path: ./out.jsonl } }
service: { pipelines: { flows: { receivers: [file], exporters: [file] } } }
`,
      );
      const lines = await linesOf(input);
      expect(lines.length).toBe(113);

      const first = new AgentProcess(['run', '-c', config]);
      // Two intervals (40 records) handed over and written out, then kill -9: no shutdown, no flush.
      await until('checkpoint past two intervals, written out', async () => {
        if (!existsSync(checkpoint)) return undefined;
        const cp = JSON.parse(await readFile(checkpoint, 'utf8')) as { line: number };
        return cp.line >= 40 && (await linesOf(out)).length >= cp.line ? true : undefined;
      });
      first.signal('SIGKILL');
      expect(await first.exit()).toBe(null);
      const written = (await linesOf(out)).length;
      const handed = (JSON.parse(await readFile(checkpoint, 'utf8')) as { line: number }).line;
      expect(handed).toBeGreaterThanOrEqual(40);
      expect(handed).toBeLessThan(113);
      expect(written).toBeGreaterThanOrEqual(handed);

      const second = new AgentProcess(['run', '-c', config]);
      await second.waitForLog((l) => l.msg === 'replay finished');
      const resumed = second.logs.find((l) => String(l.msg).startsWith('resuming after line'));
      expect(resumed?.line).toBe(handed);
      second.signal('SIGTERM');
      expect(await second.exit()).toBe(0);

      // The first run's output, then the file from the checkpoint on: nothing lost, and repeated only
      // what was handed over after the last checkpoint write before the kill (at least once).
      const all = await linesOf(out);
      expect(all).toEqual([...lines.slice(0, written), ...lines.slice(handed)]);
      expect(written - handed).toBeLessThanOrEqual(20);
      expect(new Set(all)).toEqual(new Set(lines));
    });
  }, 60_000);
});
