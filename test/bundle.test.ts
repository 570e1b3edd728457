// The bundled agent that bin/netmon runs (packages/agent/dist/bundle): what bundling could break. A plugin that
// imports @netmon/core gets the running agent's own classes, and the V8 flags bin/netmon adds for a small
// container reach the process (and give way to the user's NODE_OPTIONS).
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { AgentProcess, NETMON, ROOT, runCli, runCommand, withTmpDir } from './harness/agent.js';

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
      const config = await heapReporter(dir);
      const inside = async (env: NodeJS.ProcessEnv) => {
        const r = await runCli(['validate', '-c', config], { env });
        expect(r.code, r.stderr).toBe(0);
        return JSON.parse(r.stdout.split('\n')[0]) as HeapReport;
      };
      const ours = await inside({});
      expect(ours.argv).toContain('--max-semi-space-size=1');
      expect(ours.argv).toContain('--max-opt=2');
      expect(ours.arenas).toBe('2');
      expect(ours.mmapThreshold).toBe('262144');
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

  // The setting that keeps a container from being OOM-killed: V8's own default heap under a 128 MiB limit is
  // 259 MiB, so it would not collect before the kernel kills the pod. The agent is put in a memory cgroup of
  // its own, as a container is; the limit bin/netmon finds must be that cgroup's, read through
  // /proc/self/cgroup (a privileged container sharing the host's cgroup namespace sees the whole hierarchy).
  const memory = memoryCgroupRoot();
  const privileged = process.geteuid?.() === 0 && memory !== undefined;
  if (!privileged && process.env.NETMON_REQUIRE_PRIVILEGED === '1') {
    throw new Error(
      'NETMON_REQUIRE_PRIVILEGED=1 but no writable memory cgroup (root and a memory controller needed)',
    );
  }
  it.skipIf(!privileged)(
    "sizes V8's old space to half the memory limit of the agent's own cgroup (root: makes a memory cgroup)",
    async () => {
      await withTmpDir(async (dir) => {
        const config = await heapReporter(dir);
        const group = path.join(memory!.root, `netmon-heap-${process.pid}`);
        await mkdir(group);
        try {
          await writeFile(path.join(group, memory!.limitFile), String(256 * 2 ** 20));
          const inGroup = async (env: NodeJS.ProcessEnv) => {
            // The shell joins the cgroup, then becomes bin/netmon: the agent starts inside it.
            const r = await runCommand(
              'sh',
              [
                '-c',
                'echo $$ > "$1/cgroup.procs" && exec "$2" validate -c "$3"',
                'sh',
                group,
                NETMON,
                config,
              ],
              { env },
            );
            expect(r.code, r.stderr).toBe(0);
            return JSON.parse(r.stdout.split('\n')[0]) as HeapReport;
          };
          const limited = await inGroup({});
          expect(limited.argv).toContain('--max-old-space-size=128');
          // V8 took it: its heap limit is the old space plus the young generation, well below V8's default.
          expect(limited.heapLimit).toBeLessThan(160 * 2 ** 20);
          expect(limited.heapLimit).toBeGreaterThanOrEqual(128 * 2 ** 20);
          // A user's own heap size wins, whatever the limit.
          const theirs = await inGroup({ NODE_OPTIONS: '--max_old_space_size=200' });
          expect(theirs.argv.filter((a) => a.startsWith('--max-old-space-size'))).toEqual([]);
          expect(theirs.heapLimit).toBeGreaterThanOrEqual(200 * 2 ** 20);
          // Outside any limit: no flag, V8's default.
          const free = JSON.parse(
            (await runCli(['validate', '-c', config])).stdout.split('\n')[0],
          ) as HeapReport;
          if (!free.argv.some((a) => a.startsWith('--max-old-space-size'))) {
            expect(free.heapLimit).toBeGreaterThan(256 * 2 ** 20);
          }
        } finally {
          await rmdir(group);
        }
      });
    },
  );
});

type HeapReport = {
  argv: string[];
  young: number;
  heapLimit: number;
  arenas?: string;
  mmapThreshold?: string;
};

/** A config whose plugin, run inside the agent, prints the flags node got and the heap V8 made of them. */
async function heapReporter(dir: string): Promise<string> {
  await writeFile(
    path.join(dir, 'heap.mjs'),
    `import v8 from 'node:v8';
const young = v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
process.stdout.write(JSON.stringify({
  argv: process.execArgv,
  young: young.space_size,
  heapLimit: v8.getHeapStatistics().heap_size_limit,
  arenas: process.env.MALLOC_ARENA_MAX,
  mmapThreshold: process.env.MALLOC_MMAP_THRESHOLD_,
}) + '\\n');
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
  return config;
}

/** Where a memory cgroup can be made: cgroup v1's memory hierarchy, or a cgroup2-only host's root. */
function memoryCgroupRoot(): { root: string; limitFile: string } | undefined {
  if (existsSync('/sys/fs/cgroup/memory/memory.limit_in_bytes')) {
    return { root: '/sys/fs/cgroup/memory', limitFile: 'memory.limit_in_bytes' };
  }
  // cgroup2 alone: a child has memory.max only where the root hands the memory controller down.
  const subtree = '/sys/fs/cgroup/cgroup.subtree_control';
  if (existsSync(subtree) && readFileSync(subtree, 'utf8').split(/\s+/).includes('memory')) {
    return { root: '/sys/fs/cgroup', limitFile: 'memory.max' };
  }
  return undefined;
}
