// The bench's own parts: the cluster plan, the parsing and statistics behind its figures, /proc
// parsing, and the load generator itself on loopback (no root: 127.0.0.0/8 only).
//   npx vitest run --config bench/footprint/vitest.config.mjs
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  agentArgv,
  agentFigures,
  parseDuration,
  parsePrometheus,
  parseTimes,
  podTxBytes,
  rounded,
  slope,
  splitCommand,
  summary,
  sumOf,
} from './figures.mjs';
import { parseStat, parseStatus } from './lib.mjs';
import {
  CLIENT_PODS,
  LOCAL_SERVERS,
  makePlan,
  REMOTE_SERVERS,
  replacePod,
  THIS_NODE_INDEX,
  workloadPods,
} from './plan.mjs';

describe('plan', () => {
  it('is deterministic and spreads every workload over the nodes', () => {
    const a = makePlan({ pods: 1000, nodes: 10 });
    const b = makePlan({ pods: 1000, nodes: 10 });
    expect(a.pods.map((p) => `${p.name} ${p.ip}`)).toEqual(b.pods.map((p) => `${p.name} ${p.ip}`));
    expect(a.pods).toHaveLength(1000);
    expect(a.workloads).toHaveLength(100);
    for (let k = 0; k < 10; k++) expect(a.pods.filter((p) => p.node === k)).toHaveLength(100);
    expect(new Set(workloadPods(a, 7).map((p) => p.node)).size).toBe(10);
    expect(new Set(a.pods.map((p) => p.ip)).size).toBe(1000);
    expect(new Set(a.pods.map((p) => p.name)).size).toBe(1000);
    // Pod addresses lie in their node's pod range.
    for (const p of a.pods) expect(p.ip.startsWith(`10.${80 + p.node}.`)).toBe(true);
    expect(a.nodes[0].podCIDR).toBe('10.80.0.0/16');
  });

  it('places nodes in three zones of one region and the last in another, with AWS provider IDs', () => {
    const { nodes } = makePlan({ pods: 1000, nodes: 10 });
    expect(nodes.map((n) => n.zone)).toEqual([
      'us-east-1a',
      'us-east-1b',
      'us-east-1c',
      'us-east-1a',
      'us-east-1b',
      'us-east-1c',
      'us-east-1a',
      'us-east-1b',
      'us-east-1c',
      'us-west-2a',
    ]);
    expect(nodes[9].region).toBe('us-west-2');
    expect(nodes[3].providerID).toBe('aws:///us-east-1a/i-0f000000000000003');
  });

  it('gives the roles to distinct pods: clients, marker and churn on this node, servers here and elsewhere', () => {
    const { roles, pods } = makePlan({ pods: 1000, nodes: 10 });
    const all = [...roles.clients, ...roles.servers, roles.marker, roles.churn];
    expect(new Set(all.map((p) => p.ip)).size).toBe(all.length);
    expect(roles.clients).toHaveLength(CLIENT_PODS);
    expect(roles.servers).toHaveLength(LOCAL_SERVERS + REMOTE_SERVERS);
    for (const p of [...roles.clients, roles.marker, roles.churn]) expect(p.node).toBe(THIS_NODE_INDEX);
    expect(roles.servers.filter((p) => p.node === THIS_NODE_INDEX)).toHaveLength(LOCAL_SERVERS);
    expect(new Set(roles.servers.map((p) => p.node)).size).toBe(10);
    // Servers are of other workloads than the clients.
    const clientWorkloads = new Set(roles.clients.map((p) => p.workload));
    expect(roles.servers.some((p) => clientWorkloads.has(p.workload))).toBe(false);
    expect(pods.filter((p) => p.role !== undefined)).toHaveLength(all.length);
  });

  it('replaces an idle pod with a new one of its workload on its node', () => {
    const plan = makePlan({ pods: 1000, nodes: 10 });
    const roleIps = new Set(plan.pods.filter((p) => p.role).map((p) => p.ip));
    for (let i = 0; i < 200; i++) {
      const { old, fresh } = replacePod(plan);
      expect(old.role).toBeUndefined();
      expect(fresh.workload).toBe(old.workload);
      expect(fresh.node).toBe(old.node);
      expect(fresh.name).not.toBe(old.name);
      expect(plan.pods.includes(old)).toBe(false);
      expect(plan.pods.includes(fresh)).toBe(true);
    }
    expect(plan.pods).toHaveLength(1000);
    expect(new Set(plan.pods.map((p) => p.ip)).size).toBe(1000);
    expect(new Set(plan.pods.filter((p) => p.role).map((p) => p.ip))).toEqual(roleIps);
  });

  it('refuses clusters too small for the traffic', () => {
    expect(() => makePlan({ pods: 100, nodes: 10 })).toThrow(/raise --pods/);
    expect(() => makePlan({ pods: 1000, nodes: 1 })).toThrow(/--nodes/);
  });
});

const METRICS = `# HELP netmon_flow_bytes_total Bytes.
# TYPE netmon_flow_bytes_total counter
netmon_flow_bytes_total{src_pod="a",dst_pod="b",direction="tx"} 100
netmon_flow_bytes_total{src_pod="a",dst_pod="b",direction="rx"} 200
netmon_flow_bytes_total{src_pod="a",dst_pod="c",direction="tx"} 5
netmon_flow_bytes_total{src_pod="ab",dst_pod="a",direction="tx"} 7000
netmon_flow_bytes_total{dst_kind="node",direction="tx"} 1
netmon_process_heap_used_bytes 1048576
netmon_process_heap_total_bytes 2097152
netmon_process_event_loop_lag_p99_seconds 0.012
netmon_process_event_loop_lag_max_seconds 0.25
netmon_conntrack_entries 10024
netmon_delta_flows_tracked{origin="receiver/flows"} 10030
netmon_component_items_total{kind="receiver",component="flows",pipeline="",signal="flows",direction="out",outcome="success"} 5000
netmon_component_items_total{kind="receiver",component="flows",pipeline="",signal="flows",direction="out",outcome="refused"} 3
netmon_component_items_total{kind="processor",component="delta",pipeline="flows",signal="flows",direction="out",outcome="success"} 4000
netmon_prometheus_series{table="flows"} 409
netmon_prometheus_series{table="dns"} 2
odd_label{v="quote \\" and \\\\ back, comma"} 3
`;

describe('Prometheus text', () => {
  it('parses names, labels (with escapes) and values', () => {
    const s = parsePrometheus(METRICS);
    expect(s).toHaveLength(17);
    expect(s[0]).toEqual({
      name: 'netmon_flow_bytes_total',
      labels: { src_pod: 'a', dst_pod: 'b', direction: 'tx' },
      value: 100,
    });
    expect(s.at(-1)).toEqual({ name: 'odd_label', labels: { v: 'quote " and \\ back, comma' }, value: 3 });
    expect(parsePrometheus(METRICS, 'netmon_process_')).toHaveLength(4);
  });

  it('sums matching samples, undefined when none', () => {
    const s = parsePrometheus(METRICS);
    expect(sumOf(s, 'netmon_flow_bytes_total', { direction: 'tx' })).toBe(7106);
    expect(sumOf(s, 'netmon_flow_bytes_total', { src_pod: 'a' })).toBe(305);
    expect(sumOf(s, 'netmon_ebpf_flows')).toBeUndefined();
  });

  it("reads the agent's figures", () => {
    const f = agentFigures(METRICS);
    expect(f.heapUsed).toBe(1048576);
    expect(f.heapTotal).toBe(2097152);
    expect(f.lagP99).toBe(0.012);
    expect(f.lagMax).toBe(0.25);
    expect(f.conntrackEntries).toBe(10024);
    expect(f.deltaTracked).toBe(10030);
    expect(f.receiverItems).toBe(5000);
    expect(f.flowSeries).toBe(409);
    expect(f.ebpfFlows).toBeUndefined();
  });

  it("sums a source pod's tx bytes only, by exact name", () => {
    expect(podTxBytes(METRICS, 'a')).toBe(105);
    expect(podTxBytes(METRICS, 'ab')).toBe(7000);
    expect(podTxBytes(METRICS, 'zz')).toBe(0);
  });
});

describe('options and tools output', () => {
  it('parses durations', () => {
    expect(parseDuration('5s')).toBe(5000);
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('2m')).toBe(120_000);
    expect(parseDuration('1.5h')).toBe(5_400_000);
    expect(() => parseDuration('5')).toThrow(/not a duration/);
    expect(() => parseDuration('5 sec')).toThrow(/not a duration/);
  });

  it('splits command lines with quotes and escapes', () => {
    expect(splitCommand(' bin/netmon run  --config "a b.yaml" \'c d\' e\\ f ""')).toEqual([
      'bin/netmon',
      'run',
      '--config',
      'a b.yaml',
      'c d',
      'e f',
      '',
    ]);
    expect(() => splitCommand('node "x')).toThrow(/unbalanced/);
  });

  it('puts Node.js flags after node, else into NODE_OPTIONS', () => {
    expect(agentArgv('/x/.tools/bin/node cli.js run', '--max-old-space-size=64 --expose-gc')).toEqual({
      argv: ['/x/.tools/bin/node', '--max-old-space-size=64', '--expose-gc', 'cli.js', 'run'],
      env: {},
    });
    expect(
      agentArgv('bin/netmon run', '--max-old-space-size=64', { NODE_OPTIONS: '--enable-source-maps' }),
    ).toEqual({
      argv: ['bin/netmon', 'run'],
      env: { NODE_OPTIONS: '--enable-source-maps --max-old-space-size=64' },
    });
    expect(agentArgv('bin/netmon run', '')).toEqual({ argv: ['bin/netmon', 'run'], env: {} });
    expect(() => agentArgv('  ', '')).toThrow(/empty/);
  });

  it("reads the children's times from bash's times", () => {
    expect(parseTimes('0m0.001s 0m0.002s\n0m0.120s 1m0.040s\n')).toEqual({ user: 0.12, system: 60.04 });
    expect(() => parseTimes('garbage')).toThrow(/times/);
  });

  it('parses /proc/<pid>/stat and status', () => {
    const stat =
      '1234 (node (x) y) S 1 1234 1234 0 -1 4194560 5000 0 0 0 250 75 0 0 20 0 11 0 100 123456 789 18446744073709551615';
    expect(parseStat(stat)).toEqual({ utime: 250, stime: 75 });
    const status =
      'Name:\tnode\nVmHWM:\t  204800 kB\nVmRSS:\t  190000 kB\nRssAnon:\t  130000 kB\nRssFile:\t   60000 kB\n';
    expect(parseStatus(status)).toEqual({
      VmHWM: 204800 * 1024,
      VmRSS: 190000 * 1024,
      RssAnon: 130000 * 1024,
      RssFile: 60000 * 1024,
    });
  });
});

describe('statistics', () => {
  it('summarises, leaving out what is not a number', () => {
    expect(summary([3, 1, Number.NaN, 2, undefined])).toEqual({ min: 1, avg: 2, max: 3, n: 3 });
    expect(summary([]).n).toBe(0);
  });

  it('fits a slope (MiB per hour from per-second samples)', () => {
    const points = Array.from({ length: 3600 }, (_, i) => [
      i / 3600,
      100 + (5 * i) / 3600 + (i % 2 ? 0.5 : -0.5),
    ]);
    expect(slope(points)).toBeCloseTo(5, 2);
    expect(slope([[1, 2]])).toBeNaN();
    expect(
      slope([
        [1, 2],
        [1, 3],
      ]),
    ).toBeNaN();
  });

  it('rounds JSON numbers and turns NaN into null', () => {
    expect(rounded({ a: 1.23456, b: [Number.NaN, 2.5], c: 'x' }, 2)).toEqual({
      a: 1.23,
      b: [null, 2.5],
      c: 'x',
    });
  });
});

// The C load generator, for real, between loopback addresses: every connection up, messages answered
// with twice their size, short connections and a marker.
const haveCc = spawnSync('sh', ['-c', 'command -v cc']).status === 0;
describe.skipIf(process.platform !== 'linux' || !haveCc)('loadgen on loopback', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'netmon-footprint-test-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps N connections talking, churns, answers a marker, and reports totals', async () => {
    const bin = path.join(dir, 'loadgen');
    const cc = spawnSync(
      'cc',
      ['-O2', '-Wall', '-Wextra', '-Werror', '-o', bin, path.join(import.meta.dirname, 'loadgen.c')],
      {
        encoding: 'utf8',
      },
    );
    expect(cc.stderr).toBe('');
    expect(cc.status).toBe(0);
    const port = 20_000 + (process.pid % 20_000);
    const server = spawn(bin, ['server', 'flows=300', `port=${port}`, 'ports=2', 'ips=127.0.0.2,127.0.0.3']);
    const out = (p) => {
      let text = '';
      p.stdout.on('data', (d) => {
        text += d;
      });
      return () => text;
    };
    const serverOut = out(server);
    try {
      await until(() => /^ready 1$/m.test(serverOut()));
      const client = spawn(bin, [
        'client',
        'flows=300',
        'period=200',
        'churn=50',
        `port=${port}`,
        'ports=2',
        'clients=127.0.0.4,127.0.0.5',
        'servers=127.0.0.2,127.0.0.3',
        'churn-from=127.0.0.6',
        'marker-from=127.0.0.7',
      ]);
      const clientOut = out(client);
      await until(() => /^ready 300 \d+ 1$/m.test(clientOut()));
      client.stdin.write('mark 5000\n');
      await until(() => /^answered 1 /m.test(clientOut()));
      const marked = Number(/^marked 1 ([\d.]+)$/m.exec(clientOut())[1]);
      expect(Math.abs(marked - Date.now())).toBeLessThan(5000);
      await new Promise((r) => setTimeout(r, 1000));
      client.kill('SIGTERM');
      await new Promise((r) => client.on('close', r));
      server.kill('SIGTERM');
      await new Promise((r) => server.on('close', r));
      const c = JSON.parse(clientOut().trim().split('\n').at(-1));
      const s = JSON.parse(serverOut().trim().split('\n').at(-1));
      expect(c).toMatchObject({ role: 'client', flows: 300, established: 300, reconnects: 0, markers: 1 });
      // ~1 s of talk at one message per connection per 200 ms.
      expect(c.messages).toBeGreaterThan(900);
      expect(c.messages).toBeLessThan(2500);
      expect(c.churn_done).toBeGreaterThan(20);
      expect(c.churn_failed).toBe(0);
      // The server read what the clients wrote and answered twice as much; all of it arrived but what
      // was in flight at the stop.
      // (a connection reset at the client's exit may take its last unread message with it).
      expect(s.bytes_in).toBeLessThanOrEqual(c.bytes_out);
      expect(s.bytes_in).toBeGreaterThan(0.98 * c.bytes_out);
      expect(s.bytes_out).toBe(2 * s.bytes_in);
      expect(c.bytes_in).toBeGreaterThan(0.95 * s.bytes_out);
      expect(c.bytes_in).toBeLessThanOrEqual(s.bytes_out);
      // Every live connection, every finished short one and the marker; a few short ones in flight.
      expect(s.accepted).toBeGreaterThanOrEqual(300 + c.churn_done + 1);
      expect(s.accepted).toBeLessThanOrEqual(300 + c.churn_done + c.churn_failed + 1 + 5);
    } finally {
      server.kill('SIGKILL');
    }
  }, 30_000);
});

async function until(check, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}
