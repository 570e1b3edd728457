// The agent's lifecycle through the real CLI when a plugin misbehaves: a start that never finishes, a
// process() that never resolves, a process() that returns something other than a batch.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { AgentProcess, freePort, ROOT, withTmpDir } from './harness/agent.js';

const SAMPLE = path.join(ROOT, 'packages/receivers/src/file/testdata/sample-flows.jsonl');

const PLUGINS = {
  'hang-start.mjs': 'export default { start: () => new Promise(() => {}), process: (batch) => batch };\n',
  'hang-process.mjs': 'export default { process: () => new Promise(() => {}) };\n',
  'returns-object.mjs': 'export default { process: () => ({}) };\n',
};

interface Health {
  code: number;
  body: { status?: string; reasons?: string[] };
}

interface StatusDoc {
  phase: string;
  components: {
    kind: string;
    id: string;
    status: string;
    last_error: string | null;
    items: Record<string, number | null>;
  }[];
}

/** Writes the plugins and a config (file receiver → plugin → file exporter, health_check on `port`). */
async function setup(
  dir: string,
  port: number,
  plugin: keyof typeof PLUGINS,
  service: string,
  receiver = 'pace: none, loop: false',
): Promise<string> {
  for (const [name, text] of Object.entries(PLUGINS)) await writeFile(path.join(dir, name), text);
  const config = path.join(dir, 'netmon.yaml');
  await writeFile(
    config,
    `receivers: { file: { path: ${JSON.stringify(SAMPLE)}, ${receiver} } }
processors: { plugin/p: { module: ./${plugin} } }
exporters: { file: { path: ./out.jsonl } }
extensions: { health_check: { endpoint: 127.0.0.1:${port}, recovery_duration: 500ms } }
service:
  extensions: [health_check]
  ${service}
  pipelines: { flows: { receivers: [file], processors: [plugin/p], exporters: [file] } }
`,
  );
  return config;
}

const get = async (port: number, p: string): Promise<Health> => {
  const res = await fetch(`http://127.0.0.1:${port}${p}`);
  return { code: res.status, body: (await res.json()) as Health['body'] };
};

async function until<T>(what: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      const v = await what();
      if (ok(v)) return v;
      if (Date.now() > end) throw new Error(`condition not met within ${timeoutMs} ms: ${JSON.stringify(v)}`);
    } catch (err) {
      if (Date.now() > end) throw err;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('lifecycle (real CLI)', () => {
  it('SIGTERM while a start hangs stops the agent at once, stopping what started', async () => {
    await withTmpDir(async (dir) => {
      const port = await freePort();
      const config = await setup(dir, port, 'hang-start.mjs', 'shutdown_timeout: 2s');
      const agent = new AgentProcess(['run', '-c', config], { cwd: dir });
      await until(
        () => get(port, '/readyz'),
        (r) => r.code === 503,
      );
      expect((await get(port, '/healthz')).code).toBe(200);
      const status = (await (await fetch(`http://127.0.0.1:${port}/status`)).json()) as StatusDoc;
      // Not started yet is `starting`, one of the seven statuses.
      expect(status.components.map((c) => [c.kind, c.status])).toEqual([
        ['extension', 'ok'],
        ['exporter', 'ok'],
        ['processor', 'starting'],
        ['receiver', 'starting'],
      ]);
      const signalled = Date.now();
      agent.signal('SIGTERM');
      expect(await agent.exit(5000)).toBe(0);
      expect(Date.now() - signalled).toBeLessThan(3000);
      expect(agent.logs.map((l) => l.msg)).toEqual(
        expect.arrayContaining([
          'stop requested while processor "plugin/p" was starting',
          'stopping: draining in-flight data',
          'netmon stopped; everything read was delivered to the exporters',
        ]),
      );
    });
  });

  it('a start that outlasts service::start_timeout exits 1 naming the component', async () => {
    await withTmpDir(async (dir) => {
      const port = await freePort();
      const config = await setup(dir, port, 'hang-start.mjs', 'start_timeout: 1s');
      const agent = new AgentProcess(['run', '-c', config], { cwd: dir });
      const began = Date.now();
      expect(await agent.exit(10_000)).toBe(1);
      expect(Date.now() - began).toBeLessThan(8000);
      const fatal = agent.logs.find((l) => l.msg === 'netmon could not start');
      expect(fatal?.err).toBe(
        'processor "plugin/p" failed to start: did not finish starting within 1s (service::start_timeout)',
      );
    });
  });

  it('a plugin stuck on one batch turns /healthz unhealthy after stall_timeout + recovery_duration', async () => {
    await withTmpDir(async (dir) => {
      const port = await freePort();
      const config = await setup(
        dir,
        port,
        'hang-process.mjs',
        'stall_timeout: 300ms\n  shutdown_timeout: 1s',
        'pace: none, loop: false, batch_size: 16',
      );
      const agent = new AgentProcess(['run', '-c', config], { cwd: dir });
      await agent.waitForLog(
        (l) => l.msg === 'netmon is running; SIGTERM or Ctrl-C stops it after draining in-flight data',
      );
      const healthz = await until(
        () => get(port, '/healthz'),
        (r) => r.code === 503,
      );
      expect(healthz.body.reasons?.[0]).toMatch(
        /^processor "plugin\/p" in pipeline flows has been failing for [\d.]+ min: processing one batch of 16 items for \d+(ms|s) \(longer than service::stall_timeout, 300ms\); pipeline flows waits behind it$/,
      );
      agent.signal('SIGTERM');
      // The stuck batch cannot drain: abandoned, counted, exit 1.
      expect(await agent.exit(5000)).toBe(1);
      const last = agent.logs.find((l) => l.msg === 'netmon stopped before the queues drained');
      expect(last?.abandoned_items).toBeGreaterThan(0);
    });
  });

  it('a plugin returning {} fails its batches on the plugin; the final verdict says they were lost', async () => {
    await withTmpDir(async (dir) => {
      const port = await freePort();
      const config = await setup(dir, port, 'returns-object.mjs', 'shutdown_timeout: 2s');
      const agent = new AgentProcess(['run', '-c', config], { cwd: dir });
      await agent.waitForLog((l) => l.msg === 'replay finished');
      const status = await until(
        async () => (await (await fetch(`http://127.0.0.1:${port}/status`)).json()) as StatusDoc,
        (s) => s.components.find((c) => c.id === 'plugin/p')?.status === 'recoverable_error',
      );
      const plugin = status.components.find((c) => c.id === 'plugin/p');
      const exporter = status.components.find((c) => c.kind === 'exporter');
      expect(plugin?.last_error).toBe(
        'process returned an object {}; expected a FlowBatch, or null to pass nothing on',
      );
      expect(plugin?.items.failed).toBe(plugin?.items.in);
      expect(plugin?.items.out).toBe(0);
      expect(exporter?.status).toBe('ok');
      expect(exporter?.items).toEqual({ in: 0, out: 0, dropped: 0, failed: 0 });
      agent.signal('SIGTERM');
      expect(await agent.exit()).toBe(0);
      const read = (
        agent.logs.find((l) => l.msg === 'final item counts') as unknown as StatusDoc
      ).components.find((c) => c.kind === 'receiver')?.items.out;
      expect(read).toBeGreaterThan(50);
      const verdict = agent.logs.at(-1);
      expect(verdict?.msg).toBe(
        'netmon stopped; not everything read reached the exporters (see failed, dropped and refused above)',
      );
      expect(verdict).toMatchObject({ failed_items: read, dropped_items: 0, refused_items: 0 });
      expect(
        agent.logs.some((l) => l.msg === 'netmon stopped; everything read was delivered to the exporters'),
      ).toBe(false);
    });
  });
});
