// The bundled agent that bin/netmon runs (packages/agent/dist/bundle): what bundling could break. A plugin that
// imports @netmon/core gets the running agent's own classes, and the V8 flags bin/netmon adds for a small
// container reach the process (and give way to the user's NODE_OPTIONS).
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { AgentProcess, ROOT, runCli, withTmpDir } from './harness/agent.js';

const SAMPLE = path.join(ROOT, 'packages/receivers/src/file/testdata/sample-flows.jsonl');

describe('the bundled agent (bin/netmon)', () => {
  it("hands plugins that import or require @netmon/core the agent's own FlowBatch", async () => {
    await withTmpDir(async (dir) => {
      const seen = path.join(dir, 'seen.txt');
      // An ES module and a CommonJS plugin in one config: they load at once, and the CommonJS one's
      // require() must not meet the bundle's core still loading for the other.
      await writeFile(
        path.join(dir, 'check.mjs'),
        `import { appendFileSync } from 'node:fs';
import { FlowBatch } from '@netmon/core';
export default { process(batch, ctx) { appendFileSync(ctx.options.out, 'esm ' + (batch instanceof FlowBatch) + '\\n'); return batch; } };
`,
      );
      await writeFile(
        path.join(dir, 'check.cjs'),
        `const { appendFileSync } = require('node:fs');
const { FlowBatch } = require('@netmon/core');
module.exports = { process(batch, ctx) { appendFileSync(ctx.options.out, 'cjs ' + (batch instanceof FlowBatch) + '\\n'); return batch; } };
`,
      );
      const config = path.join(dir, 'plugin.yaml');
      const out = JSON.stringify(seen);
      await writeFile(
        config,
        `receivers: { file: { path: ${JSON.stringify(SAMPLE)} } }
processors:
  plugin/esm: { module: ./check.mjs, options: { out: ${out} } }
  plugin/cjs: { module: ./check.cjs, options: { out: ${out} } }
exporters: { file: { path: ./out.jsonl } }
service: { pipelines: { flows: { receivers: [file], processors: [plugin/esm, plugin/cjs], exporters: [file] } } }
`,
      );
      const agent = new AgentProcess(['run', '-c', config]);
      await agent.waitForLog((l) => l.msg === 'replay finished');
      agent.signal('SIGTERM');
      expect(await agent.exit()).toBe(0);
      const answers = (await readFile(seen, 'utf8')).trim().split('\n');
      expect(answers.length).toBeGreaterThan(0);
      expect(new Set(answers)).toEqual(new Set(['esm true', 'cjs true']));
      expect(await readFile(path.join(dir, 'out.jsonl'), 'utf8')).toBe(await readFile(SAMPLE, 'utf8'));
    });
  });

  it('runs Node with a small young generation, Maglev at most and two malloc arenas unless told otherwise', async () => {
    await withTmpDir(async (dir) => {
      // A plugin module runs inside the agent: it reports the flags node got and the young generation's size.
      await writeFile(
        path.join(dir, 'heap.mjs'),
        `import v8 from 'node:v8';
const young = v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
process.stdout.write(JSON.stringify({ argv: process.execArgv, young: young.space_size, arenas: process.env.MALLOC_ARENA_MAX }) + '\\n');
export default (batch) => batch;
`,
      );
      const config = path.join(dir, 'heap.yaml');
      await writeFile(
        config,
        `receivers: { file: { path: ${JSON.stringify(SAMPLE)} } }
processors: { plugin/heap: { module: ./heap.mjs } }
exporters: { debug: {} }
service: { pipelines: { flows: { receivers: [file], processors: [plugin/heap], exporters: [debug] } } }
`,
      );
      const inside = async (env: NodeJS.ProcessEnv) => {
        const r = await runCli(['validate', '-c', config], { env });
        expect(r.code, r.stderr).toBe(0);
        return JSON.parse(r.stdout.split('\n')[0]) as { argv: string[]; young: number; arenas?: string };
      };
      const ours = await inside({});
      expect(ours.argv).toContain('--max-semi-space-size=1');
      expect(ours.argv).toContain('--max-opt=2');
      expect(ours.arenas).toBe('2');
      // Three semi-spaces of 1 MiB at most; V8's default lets them grow to 16 MiB each.
      expect(ours.young).toBeLessThanOrEqual(3 * 2 ** 20);
      const theirs = await inside({
        NODE_OPTIONS: '--max-semi-space-size=8',
        NETMON_NODE_FLAGS: '--max-opt=3',
        MALLOC_ARENA_MAX: '4',
      });
      expect(theirs.argv.filter((a) => a.startsWith('--max-semi-space-size'))).toEqual([]);
      expect(theirs.argv).toContain('--max-opt=3');
      expect(theirs.arenas).toBe('4');
      expect((await inside({ NETMON_NODE_FLAGS: '' })).argv).not.toContain('--max-opt=2');
    });
  });
});
