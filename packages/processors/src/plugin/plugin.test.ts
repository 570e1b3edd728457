// The plugin processor: its validate hook in-process, and the real `netmon` command (the built agent,
// packages/agent/dist) run as a child process with real plugin modules from testdata/.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pluginProcessorFactory } from './factory.js';

const TESTDATA = path.join(import.meta.dirname, 'testdata');
const REPO = path.resolve(import.meta.dirname, '../../../..');
const CLI = path.join(REPO, 'packages/agent/dist/cli.js');
const SAMPLE = path.join(REPO, 'packages/receivers/src/file/testdata/sample-flows.jsonl');

const validate = (module: string, ctx: { configDir: string; startTimeoutMs?: number }) =>
  pluginProcessorFactory.validate?.(pluginProcessorFactory.config.parse({ module }), ctx);

describe('plugin validate hook', () => {
  it('gives up at the deadline it is given, naming the module and the deadline', async () => {
    expect(await validate('./never.mjs', { configDir: TESTDATA, startTimeoutMs: 200 })).toEqual([
      {
        key: 'module',
        message:
          'cannot load plugin module "./never.mjs": it did not finish loading within 200ms (service::start_timeout): its top-level code is still running or waiting (a top-level await that never settles?)',
      },
    ]);
  });

  it('refuses a data: URL without running it', async () => {
    const spec = 'data:text/javascript,globalThis.__pluginHookRan = 1; export default (b) => b;';
    expect(await validate(spec, { configDir: TESTDATA })).toEqual([
      {
        key: 'module',
        message:
          'cannot load plugin module (a data: URL): URLs are refused; give a file path (absolute, or relative to the config file: ./x.mjs, ../x.mjs) or the name of a package installed with netmon',
      },
    ]);
    expect((globalThis as { __pluginHookRan?: number }).__pluginHookRan).toBeUndefined();
  });

  it('accepts a module that loads', async () => {
    expect(await validate('./passthrough.mjs', { configDir: TESTDATA, startTimeoutMs: 5000 })).toEqual([]);
  });
});

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `node packages/agent/dist/cli.js ARGS…` to completion. */
function netmon(args: string[]): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: REPO });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A running `netmon run` whose JSON log lines (stderr) can be awaited. */
function agent(config: string) {
  const child = spawn(process.execPath, [CLI, 'run', '--config', config], { cwd: REPO });
  const logs: Record<string, unknown>[] = [];
  let pending = '';
  child.stderr.on('data', (d: Buffer) => {
    pending += d.toString();
    for (let nl = pending.indexOf('\n'); nl >= 0; nl = pending.indexOf('\n')) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        logs.push({ msg: line, unparsed: true });
      }
    }
  });
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  return {
    logs,
    exited,
    stop: () => child.kill('SIGTERM'),
    async waitFor(msg: string): Promise<Record<string, unknown>> {
      for (const until = Date.now() + 20_000; Date.now() < until; ) {
        const found = logs.find((l) => l.msg === msg);
        if (found) return found;
        await new Promise((r) => setTimeout(r, 20));
      }
      throw new Error(`no log line "${msg}"; logs:\n${logs.map((l) => JSON.stringify(l)).join('\n')}`);
    },
  };
}

describe('netmon validate|run with a plugin that never finishes loading', () => {
  let dir = '';
  const config = (name: string, module: string) => {
    const file = path.join(dir, `${name}.yaml`);
    return writeFile(
      file,
      [
        'receivers:',
        `  file: { path: ${JSON.stringify(SAMPLE)} }`,
        'processors:',
        '  plugin/x:',
        `    module: ${JSON.stringify(module)}`,
        'exporters:',
        '  debug: {}',
        'service:',
        '  start_timeout: 1s',
        '  pipelines:',
        '    flows: { receivers: [file], processors: [plugin/x], exporters: [debug] }',
        '',
      ].join('\n'),
    ).then(() => file);
  };
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'netmon-plugin-cli-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  // The validate hooks' deadline names the component; once the hook is handed service::start_timeout,
  // the loader's own deadline names the module. Either way: the plugin, the deadline, exit 2.
  const timedOut = (name: string, module: string) => [
    [
      'netmon: invalid configuration (1 problem):',
      `  ${name}.yaml:4:3: processors::plugin/x: its checks did not finish within service::start_timeout (1s), e.g. a plugin module whose top-level code never finishes loading`,
      '',
    ].join('\n'),
    [
      'netmon: invalid configuration (1 problem):',
      `  ${name}.yaml:5:5: processors::plugin/x::module: cannot load plugin module "${module}": it did not finish loading within 1s (service::start_timeout): its top-level code is still running or waiting (a top-level await that never settles?)`,
      '',
    ].join('\n'),
  ];

  it.each([
    ['validate', 'never'],
    ['run', 'never'],
    ['validate', 'slow'],
  ])(
    '%s with a %s plugin ends at service::start_timeout with exit 2, naming the plugin',
    async (cmd, name) => {
      const module = path.join(TESTDATA, `${name}.mjs`);
      const file = await config(`${cmd}-${name}`, module);
      const r = await netmon([cmd, '--config', file]);
      expect(r.stdout).toBe('');
      expect(timedOut(`${cmd}-${name}`, module)).toContain(r.stderr.replaceAll(dir + path.sep, ''));
      expect(r.code).toBe(2);
    },
  );
});

describe('netmon run with a plugin that returns nothing', () => {
  let dir = '';
  let records = 0;
  const config = async (name: string) => {
    const file = path.join(dir, `${name}.yaml`);
    await writeFile(
      file,
      [
        'receivers:',
        `  file: { path: ${JSON.stringify(SAMPLE)} }`,
        'processors:',
        `  plugin/${name}: { module: ${JSON.stringify(path.join(TESTDATA, `${name}.mjs`))} }`,
        'exporters:',
        '  prometheus: { endpoint: "127.0.0.1:0" }',
        'service:',
        '  pipelines:',
        `    flows: { receivers: [file], processors: [plugin/${name}], exporters: [prometheus] }`,
        '',
      ].join('\n'),
    );
    return file;
  };
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'netmon-plugin-drop-'));
    records = (await readFile(SAMPLE, 'utf8')).split('\n').filter(Boolean).length;
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('counts every batch it got as dropped by it, and the last line says so', async () => {
    const a = agent(await config('nothing'));
    const { url } = (await a.waitFor('serving Prometheus metrics')) as { url: string };
    await a.waitFor('replay finished');
    // The self-metric, as Prometheus scrapes it.
    const body = await (await fetch(url)).text();
    const series = (outcome: string) =>
      body
        .split('\n')
        .find(
          (l) =>
            l.startsWith('netmon_component_items_total{') &&
            l.includes('component="plugin/nothing"') &&
            l.includes('direction="out"') &&
            l.includes(`outcome="${outcome}"`),
        );
    expect(series('dropped')).toMatch(new RegExp(` ${records}$`));
    expect(series('success')).toMatch(/ 0$/);
    a.stop();
    expect(await a.exited).toBe(0);
    const final = (await a.waitFor('final item counts')) as {
      components: { id: string; items: Record<string, number> }[];
    };
    expect(final.components.find((c) => c.id === 'plugin/nothing')?.items).toEqual({
      in: records,
      out: 0,
      dropped: records,
      filtered: 0,
      failed: 0,
    });
    const last = a.logs.at(-1);
    expect(last?.msg).toBe(
      `netmon stopped; ${records} flows were dropped by processors that returned no batch (plugin/nothing in pipeline flows: ${records}); everything else read was delivered to the exporters`,
    );
    expect(last?.processor_dropped_items).toBe(records);
    expect(last?.dropped_by_processors).toEqual([
      { component: 'plugin/nothing', pipeline: 'flows', signal: 'flows', items: records },
    ]);
    expect(
      a.logs.some((l) => l.msg === 'netmon stopped; everything read was delivered to the exporters'),
    ).toBe(false);
  });

  // Leaving rows out of the batch it returns is a processor's design (a filter, delta's baselines), not a
  // loss: counted as filtered, and the last line says where they went without calling them dropped.
  it('a plugin that filters ends with "delivered … or filtered out", its rows counted as filtered', async () => {
    const a = agent(await config('tcp-only'));
    await a.waitFor('replay finished');
    a.stop();
    expect(await a.exited).toBe(0);
    const input = (await readFile(SAMPLE, 'utf8')).split('\n').filter(Boolean);
    const udp = input.filter((l) => JSON.parse(l).protocol !== 6).length;
    expect(udp).toBeGreaterThan(0);
    const final = (await a.waitFor('final item counts')) as {
      components: { id: string; items: Record<string, number> }[];
    };
    expect(final.components.find((c) => c.id === 'plugin/tcp-only')?.items).toEqual({
      in: input.length,
      out: input.length - udp,
      dropped: 0,
      filtered: udp,
      failed: 0,
    });
    const last = a.logs.at(-1);
    expect(last?.level).toBe(30);
    expect(last?.msg).toBe(
      `netmon stopped; everything read was delivered to the exporters, or filtered out by processors by design (plugin/tcp-only in pipeline flows: ${udp})`,
    );
    expect(last?.processor_filtered_items).toBe(udp);
  });

  it('a plugin that passes everything on still ends with "everything read was delivered"', async () => {
    const a = agent(await config('passthrough'));
    await a.waitFor('replay finished');
    a.stop();
    expect(await a.exited).toBe(0);
    expect(a.logs.at(-1)?.msg).toBe('netmon stopped; everything read was delivered to the exporters');
    expect(a.logs.at(-1)?.processor_dropped_items).toBeUndefined();
  });
});
