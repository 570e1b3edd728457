// zxporter-netmon's command line and environment, run through the real `netmon` (bin/netmon and the bundle)
// as its container would run it. `--print-config` shows the pipeline each combination makes; the golden
// files in testdata/ are that output (UPDATE_GOLDEN=1 rewrites them). `validate` checks the same documents.
// Needs `npm run build` first.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { AgentProcess, freePort, ROOT, runCli, withTmpDir } from '../../../../test/harness/agent.js';
import { buildProgram } from '../program.js';
import { collectionMode, normalizeArgs, parseBool, ZXPORTER_FLAGS } from './flags.js';
import { flagsDocument } from './pipeline.js';

const TESTDATA = path.join(import.meta.dirname, 'testdata');

// Every variable configs/devzero.yaml reads, empty unless a case sets it: the machine's own must not leak in.
const CLEAN_ENV = Object.fromEntries(
  [
    'DAKR_URL',
    'CLUSTER_TOKEN',
    'CLUSTER_ID',
    'FLUSH_INTERVAL',
    'NODE_NAME',
    'NETMON_STATE_DIR',
    'NETMON_HEALTH_ENDPOINT',
    'NETMON_COLLECTION_MODE',
    'NETMON_READ_INTERVAL',
    'NETMON_CLOUD_PROVIDER',
    'NETMON_CLOUD_REGION',
    'NETMON_CLOUD_ZONE',
  ].map((k) => [k, '']),
);

// What zxporter-netmon's chart sets: NODE_NAME from the downward API, FLUSH_INTERVAL from
// config.exportInterval, DAKR_URL from the devzero-zxporter-env-config ConfigMap, CLUSTER_TOKEN from the
// devzero-zxporter-token Secret.
const CHART_ENV = {
  NODE_NAME: 'ip-10-0-1-17.ec2.internal',
  FLUSH_INTERVAL: '60s',
  DAKR_URL: 'https://dakr.devzero.io',
  CLUSTER_TOKEN: 'dzt-7f3a9c1e5b2d4068',
};

// The real commands and their options: which take zxporter-netmon's flags, which options take a value.
const COMMANDS = buildProgram().commands;
const normalize = (args: string[]) => normalizeArgs(args, COMMANDS).args;

/** Every zxporter-netmon flag once, as its container args would give them. */
const EVERY_FLAG = [
  '-collector-mode=conntrack',
  '-read-interval=10s',
  '-cleanup-interval=2m',
  '-metrics-bind-address=:8081',
  '-standalone',
  '-metrics-kubeconfig=packages/agent/src/zxporter/testdata/kubeconfig',
];

describe('normalizeArgs', () => {
  it.each(['run', 'validate'])(
    "%s: Go's single-dash long flags are read as commander's double-dash ones",
    (cmd) => {
      expect(normalize([cmd, '-collector-mode=ebpf', '-read-interval', '10s', '-standalone'])).toEqual([
        cmd,
        '--collector-mode=ebpf',
        '--read-interval',
        '10s',
        '--standalone',
      ]);
    },
  );

  it("runs the agent when the command line starts with a zxporter flag (its container's args)", () => {
    expect(normalize(['-collector-mode=netfilter'])).toEqual(['run', '--collector-mode=netfilter']);
    expect(normalize(['--metrics-bind-address', ':8081'])).toEqual([
      'run',
      '--metrics-bind-address',
      ':8081',
    ]);
    expect(normalize(['--zxporter'])).toEqual(['run', '--zxporter']);
    // Anywhere on a command line without a command, as Go's flag package takes flags in any order.
    expect(normalize(['--print-config', '-collector-mode=ebpf'])).toEqual([
      'run',
      '--print-config',
      '--collector-mode=ebpf',
    ]);
    // A flag's value is not a command, nor rewritten: Go takes the next argument whatever it is.
    expect(normalize(['-collector-mode', 'ebpf'])).toEqual(['run', '--collector-mode', 'ebpf']);
    expect(normalize(['-metrics-kubeconfig', '-standalone'])).toEqual([
      'run',
      '--metrics-kubeconfig',
      '-standalone',
    ]);
    expect(normalize(['-standalone', '-c', 'version'])).toEqual(['run', '--standalone', '-c', 'version']);
  });

  it('leaves them as typed where no command takes them, so the error quotes what was typed', () => {
    expect(normalize(['components', '-standalone'])).toEqual(['components', '-standalone']);
    expect(normalize(['version', '-collector-mode=ebpf'])).toEqual(['version', '-collector-mode=ebpf']);
    // Before a command they would be the program's options.
    expect(normalize(['-standalone', 'validate', '-c', 'a.yaml'])).toEqual([
      '-standalone',
      'validate',
      '-c',
      'a.yaml',
    ]);
    expect(normalize(['help', '-standalone'])).toEqual(['help', '-standalone']);
  });

  it("leaves netmon's own options, unknown flags and everything after -- alone", () => {
    expect(normalize(['validate', '-c', 'a.yaml'])).toEqual(['validate', '-c', 'a.yaml']);
    expect(normalize(['run', '-cfile.yaml'])).toEqual(['run', '-cfile.yaml']);
    expect(normalize(['run', '-c', '-standalone'])).toEqual(['run', '-c', '-standalone']);
    expect(normalize(['run', '--', '-standalone'])).toEqual(['run', '--', '-standalone']);
    expect(normalize([])).toEqual([]);
  });

  it('a Go-style option commander would misread or not place is unknown, as typed, with what was meant', () => {
    const unknown = (args: string[]) => normalizeArgs(args, COMMANDS).unknown;
    // Commander would read it as `-c olector-mode=ebpf`: a config file.
    expect(unknown(['run', '-colector-mode=ebpf'])).toEqual({
      command: 'run',
      arg: '-colector-mode=ebpf',
      suggestion: '-collector-mode',
    });
    expect(unknown(['validate', '-config', 'a.yaml'])).toEqual({
      command: 'validate',
      arg: '-config',
      suggestion: '--config',
    });
    expect(unknown(['-standalone', '-log-level=debug'])).toEqual({
      command: 'run',
      arg: '-log-level=debug',
      suggestion: '--log-level',
    });
    expect(unknown(['validate', '-standalon'])).toEqual({
      command: 'validate',
      arg: '-standalon',
      suggestion: '-standalone',
    });
    expect(unknown(['validate', '-colour-scheme'])).toEqual({
      command: 'validate',
      arg: '-colour-scheme',
      suggestion: undefined,
    });
    expect(unknown(['validate', '--colector-mode=ebpf'])).toEqual({
      command: 'validate',
      arg: '--colector-mode=ebpf',
      suggestion: '--collector-mode',
    });
    // Commander's own message says the same, or suggests itself: `--colr` → --color.
    expect(unknown(['validate', '--bogus=1', '--colr', '--config=a.yaml', '-cb.yaml'])).toBeUndefined();
    expect(
      unknown(['run', '-cfile.yaml', '-standalone', '-metrics-kubeconfig', '-kube-config']),
    ).toBeUndefined();
  });
});

describe('-collector-mode and -standalone values', () => {
  it.each([
    ['netfilter', 'netfilter'],
    ['ebpf', 'ebpf'],
    ['cilium', 'cilium'],
    ['auto', 'auto'],
    ['conntrack', 'netfilter'],
    ['bpf', 'ebpf'],
    ['Cilium', 'cilium'],
  ])('%s → %s', (given, mode) => {
    expect(collectionMode(given)).toEqual({ mode });
  });

  it('anything else is refused with the accepted values', () => {
    expect(collectionMode('iptables')).toEqual({
      error: expect.stringMatching(/^-collector-mode=iptables: expected netfilter .*ebpf .*cilium, or auto/),
    });
  });

  it("reads bools as Go's strconv.ParseBool", () => {
    expect([true, '1', 't', 'TRUE', 'True'].map(parseBool)).toEqual([true, true, true, true, true]);
    expect(['0', 'f', 'false', 'FALSE'].map(parseBool)).toEqual([false, false, false, false]);
    expect(parseBool('yes')).toBeUndefined();
  });

  it('a flag document sets only what was given', () => {
    expect(flagsDocument({})).toBe('');
    expect(flagsDocument({ standalone: false })).toBe("# zxporter-netmon's flags: -standalone=false\n{}\n");
  });
});

/** `netmon ARGS` with CLEAN_ENV and `env`; its stdout compared with testdata/NAME.yaml. */
async function expectGolden(name: string, args: string[], env: Record<string, string> = {}) {
  const r = await runCli(args, { env: { ...CLEAN_ENV, ...env } });
  expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
  const golden = path.join(TESTDATA, `${name}.yaml`);
  // Where the checkout lies is not part of the output.
  const out = r.stdout.replaceAll(ROOT, '<checkout>');
  if (process.env.UPDATE_GOLDEN === '1') {
    await mkdir(TESTDATA, { recursive: true });
    await writeFile(golden, out);
  }
  expect(out).toBe(await readFile(golden, 'utf8'));
  return out;
}

describe('--print-config: the pipeline each zxporter-netmon command line and environment makes', () => {
  it("zxporter-netmon's chart: -collector-mode=netfilter, with the env it sets; the token never shows", async () => {
    const out = await expectGolden(
      'chart-netfilter',
      ['-collector-mode=netfilter', '--print-config'],
      CHART_ENV,
    );
    expect(out).not.toContain(CHART_ENV.CLUSTER_TOKEN);
    expect(out).toMatch(/^ {4}mode: netfilter$/m);
    expect(out).toMatch(/^ {4}endpoint: https:\/\/dakr\.devzero\.io$/m);
    expect(out).toMatch(/^ {4}token: \$\{env:CLUSTER_TOKEN\}$/m);
  });

  it.each(['ebpf', 'cilium'])('-collector-mode %s, double dash and a separate value', async (mode) => {
    const out = await expectGolden(
      `mode-${mode}`,
      ['run', '--collector-mode', mode, '--print-config'],
      CHART_ENV,
    );
    expect(out).toMatch(new RegExp(`^ {4}mode: ${mode}$`, 'm'));
  });

  it('every flag at once, DAKR_URL unset: local only', async () => {
    const out = await expectGolden('all-flags', ['run', ...EVERY_FLAG, '--print-config'], {
      NODE_NAME: 'node-1',
      FLUSH_INTERVAL: '30s',
      CLUSTER_ID: 'c-42',
    });
    expect(out).toMatch(/^ {4}endpoint: ""$/m);
    expect(out).toMatch(/^ {4}flush_interval: 30s$/m);
    expect(out).toMatch(/^ {4}standalone: true$/m);
    expect(out.match(/^ {6}read_interval: 10s$/gm)).toHaveLength(3);
  });

  it('--zxporter alone: the pipeline with netmon defaults (auto picks the mode)', async () => {
    await expectGolden('zxporter-defaults', ['--zxporter', '--print-config']);
  });

  it('-c files merge over the zxporter pipeline', async () => {
    await withTmpDir(async (dir) => {
      const file = path.join(dir, 'prometheus.yaml');
      await writeFile(
        file,
        'exporters:\n  prometheus: {endpoint: "127.0.0.1:9464"}\nservice:\n  pipelines:\n    flows:\n      exporters: [devzero, prometheus]\n',
      );
      const r = await runCli(['-collector-mode=ebpf', '-c', file, '--print-config'], { env: CLEAN_ENV });
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`#   ${file}\n`);
      expect(r.stdout).toMatch(/exporters:\n {8}- devzero\n {8}- prometheus\n/);
      expect(r.stdout).toMatch(/^ {4}mode: ebpf$/m);
    });
  });

  it('without zxporter flags it prints the given files, expanded', async () => {
    await expectGolden('kubernetes', ['run', '-c', 'configs/kubernetes.yaml', '--print-config'], {
      NODE_NAME: 'node-1',
      POD_IP: '10.0.0.5',
    });
  });
});

describe('what zxporter-netmon users get wrong is said, and nothing starts', () => {
  it.each([
    [['-collector-mode=iptables'], /netmon run: -collector-mode=iptables: expected netfilter/],
    [['-read-interval=5'], /netmon run: -read-interval=5: expected a duration such as 5s/],
    [['-cleanup-interval', 'soon'], /netmon run: -cleanup-interval=soon: expected a duration/],
    [['-standalone=maybe'], /netmon run: -standalone=maybe: expected true or false/],
    [['-metrics-adress=:8081'], /unknown option '-metrics-adress=:8081'/],
  ])('%j', async (args, message) => {
    const r = await runCli([...args, '--print-config'], { env: CLEAN_ENV });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stdout).toBe('');
  });

  it('a bad FLUSH_INTERVAL names the variable and where devzero.yaml uses it', async () => {
    const r = await runCli(['-collector-mode=netfilter', '--print-config'], {
      env: { ...CLEAN_ENV, FLUSH_INTERVAL: 'hourly' },
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /configs\/devzero\.yaml:\d+:\d+: exporters::devzero::flush_interval: .*\(from \$\{env:FLUSH_INTERVAL\}\)/,
    );
  });
});

describe('validate checks what run would run with the same flags, files and environment', () => {
  /** `netmon ARGS` with CLEAN_ENV, a state directory of its own and `env`. */
  const netmon = (args: string[], env: Record<string, string> = {}, dir = ROOT) =>
    runCli(args, { cwd: dir, env: { ...CLEAN_ENV, NETMON_STATE_DIR: os.tmpdir(), ...env } });

  it("zxporter-netmon's chart: -collector-mode=netfilter, one dash or two, and --zxporter alone", async () => {
    const [single, double, alone] = await Promise.all([
      netmon(['validate', '-collector-mode=netfilter'], CHART_ENV),
      netmon(['validate', '--collector-mode', 'netfilter'], CHART_ENV),
      netmon(['validate', '--zxporter']),
    ]);
    const checked = [
      'configuration is valid: 2 pipelines (flows, dns)',
      'checked, merged in order:',
      "  configs/devzero.yaml (built in): zxporter-netmon's pipeline",
    ];
    for (const r of [single, double]) {
      expect(r).toEqual({
        code: 0,
        stdout: [...checked, "  zxporter-netmon's flags: -collector-mode=netfilter", ''].join('\n'),
        stderr: '',
      });
    }
    expect(alone).toEqual({ code: 0, stdout: [...checked, ''].join('\n'), stderr: '' });
  });

  it('every flag at once, and a file merged over them; -cleanup-interval is said to do nothing', async () => {
    await withTmpDir(async (dir) => {
      const file = path.join(dir, 'prometheus.yaml');
      await writeFile(
        file,
        'exporters:\n  prometheus: {endpoint: "127.0.0.1:9464"}\nservice:\n  pipelines:\n    flows:\n      exporters: [devzero, prometheus]\n',
      );
      const r = await netmon(['validate', ...EVERY_FLAG, '-c', file]);
      expect(r).toEqual({
        code: 0,
        stdout: [
          'configuration is valid: 2 pipelines (flows, dns)',
          'checked, merged in order:',
          "  configs/devzero.yaml (built in): zxporter-netmon's pipeline",
          "  zxporter-netmon's flags: -collector-mode=netfilter -read-interval=10s -cleanup-interval=2m -metrics-bind-address=:8081 -metrics-kubeconfig=packages/agent/src/zxporter/testdata/kubeconfig -standalone=true",
          `  ${file}`,
          '',
        ].join('\n'),
        stderr:
          'netmon validate: note: -cleanup-interval=2m is accepted and has no effect: netmon forgets a connection when the kernel reports it gone, not on a timer\n',
      });
    });
  });

  // Where configs/devzero.yaml sets flush_interval, as problems name it: the built-in document has a
  // comment line in front.
  const flushAt = async () => {
    const lines = (await readFile(path.join(ROOT, 'configs/devzero.yaml'), 'utf8')).split('\n');
    const i = lines.findIndex((l) => /^ +flush_interval:/.test(l));
    return `configs/devzero.yaml:${i + 2}:${lines[i].indexOf('flush_interval') + 1}`;
  };

  it.each([
    [
      'a bad flag value',
      ['-collector-mode=iptables'],
      {},
      async () =>
        "netmon validate: -collector-mode=iptables: expected netfilter (also conntrack), ebpf (also bpf), cilium, or auto (netmon probes the node and says what it chose)\n(run 'netmon validate --help' for usage)\n",
    ],
    [
      'a kubeconfig that does not exist, and a bad FLUSH_INTERVAL',
      ['-standalone', '-metrics-kubeconfig=nope'],
      { FLUSH_INTERVAL: 'hourly' },
      async (dir: string) =>
        [
          'netmon: invalid configuration (2 problems):',
          `  <command line>:4:5: extensions::k8s_metadata::kubeconfig: ${dir}/nope does not exist`,
          `  ${await flushAt()}: exporters::devzero::flush_interval: "hourly" is not a duration; expected e.g. 500ms, 5s or 1m30s (from \${env:FLUSH_INTERVAL})`,
          '',
        ].join('\n'),
    ],
    [
      'a file merged over them that names an exporter it does not configure',
      ['-collector-mode=ebpf', '-c', 'pipeline.yaml'],
      {},
      async () =>
        'netmon: invalid configuration (1 problem):\n  pipeline.yaml:4:28: service::pipelines::flows::exporters::1: references exporter "prometheus" which is not configured under exporters\n',
    ],
  ])('%s: the problems run reports, exit 2', async (_, args, env, expected) => {
    await withTmpDir(async (dir) => {
      await writeFile(
        path.join(dir, 'pipeline.yaml'),
        'service:\n  pipelines:\n    flows:\n      exporters: [devzero, prometheus]\n',
      );
      // run refuses the configuration before it starts anything: the two can run side by side.
      const [validate, run] = await Promise.all([
        netmon(['validate', ...args], env, dir),
        netmon(['run', ...args], env, dir),
      ]);
      expect(validate).toEqual({ code: 2, stdout: '', stderr: await expected(dir) });
      expect(run).toEqual({
        code: 2,
        stdout: '',
        stderr: validate.stderr.replaceAll('netmon validate', 'netmon run'),
      });
    });
  });
});

describe('an unknown option is quoted as it was typed', () => {
  it.each([
    // No command but components takes zxporter-netmon's flags.
    [['components', '-standalone'], "netmon components: unknown option '-standalone'"],
    [['version', '-collector-mode=ebpf'], "netmon version: unknown option '-collector-mode=ebpf'"],
    // Before a command, options are the program's.
    [['-standalone', 'validate', '-c', 'configs/default.yaml'], "netmon: unknown option '-standalone'"],
    // Commander alone would read these as -c with a file name.
    [
      ['validate', '-colector-mode=ebpf'],
      "netmon validate: unknown option '-colector-mode=ebpf'\n(Did you mean -collector-mode?)",
    ],
    [
      ['-collector-mode=ebpf', '-config', 'a.yaml'],
      "netmon run: unknown option '-config'\n(Did you mean --config?)",
    ],
    [
      ['validate', '-metrics-adress=:8081'],
      "netmon validate: unknown option '-metrics-adress=:8081'\n(Did you mean -metrics-bind-address?)",
    ],
    [
      ['validate', '--colector-mode=ebpf'],
      "netmon validate: unknown option '--colector-mode=ebpf'\n(Did you mean --collector-mode?)",
    ],
    // Container args with a typo and no command: the flag meant, not only "unknown".
    [
      ['-colector-mode=ebpf'],
      "netmon: unknown option '-colector-mode=ebpf'\n(Did you mean -collector-mode?)",
    ],
    [['-standalon'], "netmon: unknown option '-standalon'\n(Did you mean -standalone?)"],
  ])('%j', async (args, message) => {
    const r = await runCli(args, { env: CLEAN_ENV });
    const command = /^netmon( \w+)?/.exec(message)?.[0];
    expect(r).toEqual({
      code: 2,
      stdout: '',
      stderr: `${message}\n(run '${command} --help' for usage)\n`,
    });
  });
});

describe('--help', () => {
  it.each(['run', 'validate'])("%s lists zxporter-netmon's flags", async (cmd) => {
    const r = await runCli([cmd, '--help']);
    expect(r.code).toBe(0);
    const group = r.stdout.slice(r.stdout.indexOf("zxporter-netmon's flags (one dash or two):"));
    for (const flag of ['--zxporter', ...Object.keys(ZXPORTER_FLAGS).map((f) => `--${f}`)])
      expect(group).toMatch(new RegExp(`^ {2}${flag} `, 'm'));
  });
});

describe('a missing DAKR_URL runs local only and says so', () => {
  it("serves zxporter-netmon's JSON /metrics of the interval", async () => {
    await withTmpDir(async (dir) => {
      // The flows come from a file here, so the test needs no kernel access: -c merges over the pipeline.
      const flows = path.join(dir, 'flows.jsonl');
      const t0 = Date.now() - 10_000;
      const row = (i: number) =>
        JSON.stringify({
          time_start: new Date(t0).toISOString(),
          time_end: new Date(t0 + 5000).toISOString(),
          family: 4,
          protocol: 6,
          src_ip: '10.0.0.1',
          src_port: 40000 + i,
          dst_ip: '10.0.0.2',
          dst_port: 443,
          tx_bytes: 1000,
          rx_bytes: 5000,
          tx_packets: 10,
          rx_packets: 20,
          attributes: {},
        });
      await writeFile(flows, `${[0, 1, 2].map(row).join('\n')}\n`);
      const override = path.join(dir, 'from-file.yaml');
      await writeFile(
        override,
        `receivers:\n  file: {path: ${JSON.stringify(flows)}}\nservice:\n  pipelines:\n    flows:\n      receivers: [file]\n      processors: [k8s_attributes, classify]\n`,
      );
      const port = await freePort();
      const agent = new AgentProcess(
        ['-standalone', `-metrics-bind-address=127.0.0.1:${port}`, '-c', override, '--log-level', 'info'],
        { env: { ...CLEAN_ENV, NETMON_STATE_DIR: dir, NODE_NAME: 'node-1' } },
      );
      try {
        await agent.waitForLog((l) => String(l.msg).startsWith('local only (no endpoint'));
        let body: { node_name: string; items: { tx_bytes: number; rx_bytes: number }[] } | undefined;
        for (let i = 0; i < 100 && !(body?.items.length ?? 0); i++) {
          const res = await fetch(`http://127.0.0.1:${port}/metrics`);
          body = (await res.json()) as typeof body;
          if (!body?.items.length) await new Promise((r) => setTimeout(r, 100));
        }
        expect(body?.node_name).toBe('node-1');
        // zxporter-netmon sums a flush interval per src IP, dst IP, dst port and protocol.
        expect(body?.items).toEqual([expect.objectContaining({ tx_bytes: 3000, rx_bytes: 15000 })]);
      } finally {
        agent.signal('SIGTERM');
        expect(await agent.exit()).toBe(0);
      }
    });
  });
});
