import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, runCli, withTmpDir } from './harness/agent.js';

describe('netmon CLI', () => {
  it('validate: exit 2 naming path, file, line and column of an unknown key, a bad duration and an undefined component', async () => {
    await withTmpDir(async (dir) => {
      const file = path.join(dir, 'broken.yaml');
      await writeFile(
        file,
        [
          'receivers:',
          '  file:',
          '    path: flows.jsonl',
          '    pace: recorded',
          '    colour: blue',
          'exporters:',
          '  debug:',
          '    interval: ten seconds',
          'service:',
          '  pipelines:',
          '    flows:',
          '      receivers: [file]',
          '      exporters: [debug, otlp]',
          '',
        ].join('\n'),
      );
      const r = await runCli(['validate', '--config', file], { cwd: dir });
      expect(r.code).toBe(2);
      const lines = r.stderr
        .trim()
        .split('\n')
        .map((l) => l.trim());
      expect(lines[0]).toBe('netmon: invalid configuration (3 problems):');
      expect(lines).toContain(
        'broken.yaml:5:5: receivers::file::colour: unknown key "colour"; expected one of: ' +
          lines[1].split('expected one of: ')[1],
      );
      expect(
        lines.some((l) =>
          l.startsWith('broken.yaml:8:5: exporters::debug::interval: "ten seconds" is not a duration'),
        ),
      ).toBe(true);
      expect(lines).toContain(
        'broken.yaml:13:26: service::pipelines::flows::exporters::1: references exporter "otlp" which is not configured under exporters',
      );
    });
  });

  it('validate: exit 0 for the shipped configs', async () => {
    for (const config of [
      'configs/default.yaml',
      'configs/examples/replay.yaml',
      'configs/examples/plugin.yaml',
    ]) {
      // default.yaml keeps the delta state under /var/lib/netmon unless told otherwise (not writable for all).
      const r = await runCli(['validate', '-c', config], { env: { NETMON_STATE_DIR: os.tmpdir() } });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^configuration is valid: \d+ pipelines? \(/);
    }
  });

  it('validate: a plugin module that does not exist is an invalid configuration', async () => {
    await withTmpDir(async (dir) => {
      const file = path.join(dir, 'plugin.yaml');
      await writeFile(
        file,
        `receivers: { file: { path: ${JSON.stringify(path.join(ROOT, 'packages/receivers/src/file/testdata/sample-flows.jsonl'))} } }
processors: { plugin: { module: ./no-such-plugin.mjs } }
exporters: { debug: {} }
service: { pipelines: { flows: { receivers: [file], processors: [plugin], exporters: [debug] } } }
`,
      );
      const r = await runCli(['validate', '-c', file]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(
        /plugin\.yaml:2:25: processors::plugin::module: cannot load plugin module "\.\/no-such-plugin\.mjs": Cannot find module/,
      );
      const run = await runCli(['run', '-c', file]);
      expect(run.code).toBe(2);
      expect(run.stderr).toContain('processors::plugin::module: cannot load plugin module');
    });
  });

  it('components lists every registered type with kind, signals and stability', async () => {
    const r = await runCli(['components', '--json']);
    expect(r.code).toBe(0);
    const rows = JSON.parse(r.stdout) as { kind: string; type: string; stability: string }[];
    expect(rows.map((x) => `${x.kind}/${x.type}`)).toEqual(
      expect.arrayContaining([
        'receiver/file',
        'processor/plugin',
        'exporter/file',
        'exporter/debug',
        'extension/health_check',
      ]),
    );
    const table = await runCli(['components']);
    expect(table.stdout.split('\n')[0]).toMatch(/^KIND\s+TYPE\s+SIGNALS\s+STABILITY\s+DESCRIPTION$/);
  });

  it('version and --help are useful', async () => {
    expect((await runCli(['version'])).stdout).toMatch(/^netmon \d+\.\d+\.\d+ \(node v24\./);
    const help = await runCli(['run', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--config <file...>');
    expect(help.stdout).toContain('Exit codes');
    const missing = await runCli(['run']);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain("required option '-c, --config <file...>' not specified");
  });
});
