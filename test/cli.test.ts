import { readFileSync } from 'node:fs';
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
      const r = await runCli(['validate', '-c', file], { cwd: dir });
      expect(r.code).toBe(2);
      expect(r.stderr).toBe(
        [
          'netmon: invalid configuration (1 problem):',
          `  plugin.yaml:2:25: processors::plugin::module: cannot load plugin module "./no-such-plugin.mjs": no file ${path.join(dir, 'no-such-plugin.mjs')}`,
          '',
        ].join('\n'),
      );
      const run = await runCli(['run', '-c', file], { cwd: dir });
      expect(run.code).toBe(2);
      expect(run.stderr).toBe(r.stderr);
    });
  });

  it('validate: every problem of a file in one run, sorted by line, with "did you mean" for near misses; run says the same', async () => {
    await withTmpDir(async (dir) => {
      await writeFile(path.join(dir, 'ports.mjs'), 'export default (batch) => batch;\n');
      await writeFile(path.join(dir, 'named.mjs'), 'export function process(batch) { return batch; }\n');
      // Top-level code that never finishes: its check must end at service::start_timeout, not hang.
      await writeFile(
        path.join(dir, 'stuck.mjs'),
        'await new Promise(() => {});\nexport default (b) => b;\n',
      );
      const file = path.join(dir, 'all.yaml');
      await writeFile(
        file,
        [
          'receivers:',
          '  conntrack:',
          '    read_intervl: 5s',
          '  file:',
          '    path: missing.jsonl',
          '  k8sattributes: {}',
          'processors:',
          '  plugin/a:',
          '    module: ./port.mjs',
          '  plugin/b:',
          '    module: ./named.mjs',
          '  plugin/c:',
          '    module: ./stuck.mjs',
          'exporters:',
          '  prometheusexporter: {}',
          '  otlp_exporter: {}',
          '  file:',
          '    path: /proc/netmon/flows.jsonl',
          'servce: {}',
          'service:',
          '  start_timeout: 1s',
          '  pipelines:',
          '    flows:',
          '      receivers: [conntrack, file]',
          '      processors: [plugin/a, plugin/b, plugin/c]',
          '      exporters: [file, debug]',
          '    dns:',
          '      receivers: [file]',
          '      exporters: [file]',
          '',
        ].join('\n'),
      );
      const r = await runCli(['validate', '-c', 'all.yaml'], { cwd: dir });
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr.split('\n')).toEqual([
        'netmon: invalid configuration (13 problems):',
        '  all.yaml:3:5: receivers::conntrack::read_intervl: unknown key "read_intervl"; did you mean read_interval? (expected one of: read_interval, events, netns, families, protocols, enable_accounting, event_buffer_size)',
        `  all.yaml:5:5: receivers::file::path: cannot read ${path.join(dir, 'missing.jsonl')}: ENOENT (no such file or directory)`,
        '  all.yaml:6:3: receivers::k8sattributes: unknown receiver type "k8sattributes"; k8s_attributes is a processor type: configure it under processors (known receiver types: cilium, conntrack, dns, ebpf, file, flows)',
        `  all.yaml:9:5: processors::plugin/a::module: cannot load plugin module "./port.mjs": no file ${path.join(dir, 'port.mjs')}; did you mean ./ports.mjs?`,
        '  all.yaml:11:5: processors::plugin/b::module: plugin module "./named.mjs" must default-export a function (batch, ctx) => batch, or an object with a process function; it has no default export, only named ones (process): write export default { process, … }',
        '  all.yaml:13:5: processors::plugin/c::module: cannot load plugin module "./stuck.mjs": it did not finish loading within 1s (service::start_timeout): its top-level code is still running or waiting (a top-level await that never settles?)',
        '  all.yaml:15:3: exporters::prometheusexporter: unknown exporter type "prometheusexporter"; did you mean prometheus? (known exporter types: debug, devzero, file, otlp, prometheus)',
        '  all.yaml:16:3: exporters::otlp_exporter: unknown exporter type "otlp_exporter"; did you mean otlp? (known exporter types: debug, devzero, file, otlp, prometheus)',
        '  all.yaml:18:5: exporters::file::path: /proc/netmon/flows.jsonl is under /proc, a kernel pseudo-filesystem where no file can be created; write to a real filesystem (e.g. /var/lib/netmon/flows.jsonl)',
        '  all.yaml:19:1: servce: unknown key "servce"; did you mean service? (expected one of: receivers, processors, exporters, extensions, service)',
        '  all.yaml:26:25: service::pipelines::flows::exporters::1: references exporter "debug" which is not configured under exporters',
        '  all.yaml:28:19: service::pipelines::dns::receivers::0: receiver "file" does not support dns (it supports: flows)',
        '  all.yaml:29:19: service::pipelines::dns::exporters::0: exporter "file" does not support dns (it supports: flows)',
        '',
      ]);
      const run = await runCli(['run', '-c', 'all.yaml'], { cwd: dir });
      expect(run.code).toBe(2);
      expect(run.stderr).toBe(r.stderr);
    });
  });

  it("validate: keys and types renamed to the Collector's names point to the new ones", async () => {
    await withTmpDir(async (dir) => {
      await writeFile(
        path.join(dir, 'old.yaml'),
        [
          'receivers:',
          `  file: { path: ${JSON.stringify(path.join(ROOT, 'packages/receivers/src/file/testdata/sample-flows.jsonl'))} }`,
          '  otlp: {}',
          'exporters:',
          '  otlp:',
          '    endpoint: localhost:4317',
          '    tls: { insecure: true }',
          '    retry: { max_elapsed: 10s }',
          '    queue_size: 100000',
          '    retry_on_failure: { max_elapsed: 10s }',
          '  devzero:',
          '    endpoint: localhost:4318',
          '    state_dir: /var/lib/netmon',
          '  logging: {}',
          'service:',
          '  pipelines:',
          '    flows: { receivers: [file], exporters: [otlp] }',
          '    flow: { receivers: [file], exporters: [otlp] }',
          '',
        ].join('\n'),
      );
      const r = await runCli(['validate', '-c', 'old.yaml'], { cwd: dir });
      expect(r.code).toBe(2);
      const otlpKeys =
        'endpoint, tls, headers, compression, timeout, sending_queue, retry_on_failure, temporality, interval, granularity, labels, max_series, expiration, resource, max_points_per_request';
      expect(r.stderr.split('\n')).toEqual([
        'netmon: invalid configuration (7 problems):',
        '  old.yaml:3:3: receivers::otlp: unknown receiver type "otlp"; otlp is an exporter type: configure it under exporters (known receiver types: cilium, conntrack, dns, ebpf, file, flows)',
        `  old.yaml:8:5: exporters::otlp::retry: unknown key "retry"; did you mean retry_on_failure? (expected one of: ${otlpKeys})`,
        `  old.yaml:9:5: exporters::otlp::queue_size: unknown key "queue_size"; did you mean sending_queue::queue_size? (expected one of: ${otlpKeys})`,
        '  old.yaml:10:25: exporters::otlp::retry_on_failure::max_elapsed: unknown key "max_elapsed"; did you mean max_elapsed_time? (expected one of: enabled, initial_interval, max_interval, max_elapsed_time, multiplier, randomization_factor)',
        '  old.yaml:13:5: exporters::devzero::state_dir: unknown key "state_dir"; did you mean sending_queue::directory? (expected one of: endpoint, tls, token, cluster_id, node_name, client_version, heartbeat_components, flush_interval, heartbeat_interval, timeout, compression, headers, sending_queue, retry_on_failure, max_items_per_interval, max_items_per_request, ip2domain_max_entries)',
        '  old.yaml:14:3: exporters::logging: unknown exporter type "logging"; did you mean debug? (known exporter types: debug, devzero, file, otlp, prometheus)',
        // flows exists already: no suggestion to rename flow to it.
        '  old.yaml:18:5: service::pipelines::flow: a pipeline id is `signal[/name]` with signal one of: flows, dns',
        '',
      ]);
    });
  });

  it('validate: a value made by ${env:…} names the variable', async () => {
    const r = await runCli(['validate', '-c', 'configs/default.yaml'], {
      env: { NETMON_CLOUD_PROVIDER: 'awz', NETMON_STATE_DIR: os.tmpdir() },
    });
    expect(r.code).toBe(2);
    // The lines of the two `provider: ${env:NETMON_CLOUD_PROVIDER:-}` keys, whatever else the file holds.
    const [classifyLine, costLine] = readFileSync(path.join(ROOT, 'configs/default.yaml'), 'utf8')
      .split('\n')
      .flatMap((line, i) => (line.includes('provider: ${env:NETMON_CLOUD_PROVIDER') ? [i + 1] : []));
    expect(r.stderr).toBe(
      [
        'netmon: invalid configuration (2 problems):',
        `  configs/default.yaml:${classifyLine}:5: processors::classify::provider: "awz" is not a provider; expected aws, gcp, azure or none; did you mean aws? (from \${env:NETMON_CLOUD_PROVIDER})`,
        `  configs/default.yaml:${costLine}:5: processors::cost::provider: "awz" is not a provider; expected aws, gcp, azure or none; did you mean aws? (from \${env:NETMON_CLOUD_PROVIDER})`,
        '',
      ].join('\n'),
    );
  });

  it('validate: a config file that cannot be read is one problem; the readable files are still checked', async () => {
    await withTmpDir(async (dir) => {
      await writeFile(
        path.join(dir, 'broken.yaml'),
        [
          'receivers: { file: { path: /dev/null, colour: blue } }',
          'exporters: { debug: {} }',
          'service: { pipelines: { flows: { receivers: [file], exporters: [debug, otlp] } } }',
          '',
        ].join('\n'),
      );
      const r = await runCli(['validate', '-c', 'nope.yaml', 'broken.yaml'], { cwd: dir });
      expect(r.code).toBe(2);
      const lines = r.stderr.split('\n');
      expect(lines[0]).toBe('netmon: invalid configuration (3 problems):');
      expect(lines[1]).toBe(
        '  cannot read config file nope.yaml: ENOENT (no such file or directory); checked the other file without it',
      );
      expect(lines[2]).toMatch(
        /^ {2}broken\.yaml:1:39: receivers::file::colour: unknown key "colour"; expected one of: /,
      );
      expect(lines.slice(3)).toEqual([
        '  broken.yaml:3:72: service::pipelines::flows::exporters::1: references exporter "otlp" which is not configured under exporters',
        '',
      ]);
      // A YAML syntax error is the one thing that stops the rest: what the file sets is unknown.
      await writeFile(path.join(dir, 'syntax.yaml'), 'exporters: [\n');
      const s = await runCli(['validate', '-c', 'nope.yaml', 'syntax.yaml', 'broken.yaml'], { cwd: dir });
      expect(s.code).toBe(2);
      expect(s.stderr.split('\n')).toEqual([
        'netmon: invalid configuration (2 problems):',
        '  cannot read config file nope.yaml: ENOENT (no such file or directory)',
        '  syntax.yaml:2:1: invalid YAML: Flow sequence in block collection must be sufficiently indented and end with a ]',
        '',
      ]);
    });
  });

  it('usage errors exit 2 and say what to type; --help exits 0', async () => {
    // Side by side: each is a process start.
    const [noConfig, noConfigRun, positional, positionalRun, flag, level, command, bare, help, top] =
      await Promise.all(
        [
          ['validate'],
          ['run'],
          ['validate', 'a.yaml', '-c', 'b.yaml'],
          ['run', 'a.yaml'],
          ['validate', '--bogus', '-c', 'configs/default.yaml'],
          ['run', '-c', 'configs/default.yaml', '--log-level', 'loud'],
          ['valdate'],
          [],
          ['validate', '--help'],
          ['--help'],
        ].map((args) => runCli(args)),
      );
    for (const r of [noConfig, noConfigRun, positional, positionalRun, flag, level, command, bare]) {
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
    }
    expect(noConfig.stderr).toBe(
      "netmon validate: no config file given: name it with -c/--config, e.g. netmon validate -c configs/default.yaml\n(run 'netmon validate --help' for usage)\n",
    );
    expect(noConfigRun.stderr.split('\n')[0]).toBe(
      'netmon run: no config file given: name it with -c/--config, e.g. netmon run -c configs/default.yaml',
    );
    // The file that was meant comes first in the command shown.
    expect(positional.stderr.split('\n')[0]).toBe(
      'netmon validate: unexpected argument a.yaml: config files follow -c/--config, e.g. netmon validate -c a.yaml b.yaml',
    );
    expect(positionalRun.stderr.split('\n')[0]).toBe(
      'netmon run: unexpected argument a.yaml: config files follow -c/--config, e.g. netmon run -c a.yaml',
    );
    expect(flag.stderr).toBe(
      "netmon validate: unknown option '--bogus'\n(run 'netmon validate --help' for usage)\n",
    );
    expect(level.stderr.split('\n')[0]).toBe(
      "netmon run: option '--log-level <level>' argument 'loud' is invalid. Allowed choices are trace, debug, info, warn, error, fatal, silent.",
    );
    expect(command.stderr.split('\n')[0]).toBe("netmon: unknown command 'valdate'");
    expect(command.stderr).toContain('validate');
    expect(bare.stderr).toMatch(/^Usage: netmon \[options\] \[command\]/);

    expect(help.code).toBe(0);
    expect(help.stderr).toBe('');
    expect(help.stdout).toContain('Exit codes: 0 valid; 2 invalid configuration');
    expect(top.code).toBe(0);
    expect(top.stdout.replace(/\s+/g, ' ')).toContain(
      'Exit codes: 0 success; 1 could not start, or lost data on shutdown (run); 2 invalid command line or configuration (nothing was started).',
    );
  }, 60_000);

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
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('netmon run: no config file given');
  });
});
