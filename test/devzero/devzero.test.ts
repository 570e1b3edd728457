// The devzero exporter end to end: the real agent (`bin/netmon run`) replays a generated flow file to the
// DevZero control-plane stand-in over real gRPC, through outages and restarts; the stand-in decodes the
// protobuf with netmon's dakr.proto and the sums must match the file exactly.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentProcess, runCli, withTmpDir } from '../harness/agent.js';
import { DakrStandIn } from '../harness/dakr-stand-in.js';

const T0 = Date.parse('2026-01-01T00:00:00.000Z');
const PODS = ['web-7c9d8f6b5-x2k8p', 'cart-5b7f9c4d8-h6t2m', 'api-6d5f7c8b9-q9w4n'];

interface Totals {
  tx_bytes: number;
  rx_bytes: number;
  tx_packets: number;
  rx_packets: number;
}

/**
 * `intervals` intervals of 5 s (time_end 5 s apart), each with 12 flows over 6 aggregation keys (two
 * source ports per key), some with source and destination pods. Deterministic counters.
 */
function flowFile(intervals: number): { text: string; totals: Totals; records: number } {
  const lines: string[] = [];
  const totals: Totals = { tx_bytes: 0, rx_bytes: 0, tx_packets: 0, rx_packets: 0 };
  for (let k = 0; k < intervals; k++) {
    const start = new Date(T0 + k * 5000).toISOString();
    const end = new Date(T0 + (k + 1) * 5000).toISOString();
    for (let f = 0; f < 12; f++) {
      const key = f % 6;
      const tx = 1000 + k * 131 + f * 17;
      const rx = 50_000 + k * 977 + f * 29;
      const txp = 10 + f;
      const rxp = 40 + k;
      totals.tx_bytes += tx;
      totals.rx_bytes += rx;
      totals.tx_packets += txp;
      totals.rx_packets += rxp;
      const attributes: Record<string, string> = {};
      if (key < 3) {
        attributes['src.k8s.pod.name'] = PODS[key];
        attributes['src.k8s.namespace.name'] = 'shop';
      }
      if (key === 0) {
        attributes['dst.k8s.pod.name'] = 'db-0';
        attributes['dst.k8s.namespace.name'] = 'data';
      }
      lines.push(
        JSON.stringify({
          time_start: start,
          time_end: end,
          family: 4,
          protocol: key === 5 ? 17 : 6,
          src_ip: `10.0.1.${10 + key}`,
          src_port: 40000 + f,
          dst_ip: key === 4 ? '52.94.236.248' : `10.0.2.${20 + key}`,
          dst_port: key === 5 ? 53 : 443 + key,
          tx_bytes: tx,
          rx_bytes: rx,
          tx_packets: txp,
          rx_packets: rxp,
          attributes,
        }),
      );
    }
  }
  return { text: `${lines.join('\n')}\n`, totals, records: lines.length };
}

const sums = (s: DakrStandIn): Totals => {
  const { items: _items, ...t } = s.totals();
  return t;
};

/** The config; health_check binds port 0 (no race for a port picked in advance): see `healthPort`. */
function config(opts: { flows: string; endpoint: string; stateDir?: string; speed?: number }): string {
  return `receivers:
  file:
    path: ${JSON.stringify(opts.flows)}
    pace: recorded
    speed: ${opts.speed ?? 10}
exporters:
  devzero:
    endpoint: ${opts.endpoint}
    token: e2e-token
    node_name: node-e2e
    cluster_id: cluster-e2e
    flush_interval: 1s
    heartbeat_interval: 1s
    retry_on_failure: { initial_interval: 100ms, max_interval: 400ms }
${opts.stateDir ? `    sending_queue: { directory: ${JSON.stringify(opts.stateDir)} }\n` : ''}extensions:
  health_check:
    endpoint: 127.0.0.1:0
service:
  extensions: [health_check]
  pipelines:
    flows:
      receivers: [file]
      exporters: [devzero]
`;
}

const running: AgentProcess[] = [];
const standIns: DakrStandIn[] = [];
afterEach(async () => {
  for (const a of running.splice(0)) {
    a.signal('SIGKILL');
    await a.exit().catch(() => undefined);
  }
  for (const s of standIns.splice(0)) await s.stop();
});

/** The port health_check bound, from its start log line (`endpoint: "127.0.0.1:<port>"`). */
async function healthPort(a: AgentProcess): Promise<number> {
  const line = await a.waitForLog((l) => l.msg === 'health endpoints listening');
  const port = Number(String(line.endpoint).split(':').pop());
  expect(port).toBeGreaterThan(0);
  return port;
}

function agent(configFile: string): AgentProcess {
  const a = new AgentProcess(['run', '--config', configFile]);
  running.push(a);
  return a;
}

async function stopAgent(a: AgentProcess): Promise<void> {
  a.signal('SIGTERM');
  expect(await a.exit()).toBe(0);
  running.splice(running.indexOf(a), 1);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('devzero exporter end to end (real CLI, real gRPC)', () => {
  it('loses nothing and sends nothing twice across a control-plane outage; serves /metrics', async () => {
    await withTmpDir(async (dir) => {
      // 12 intervals at 10x: one every 0.5 s, about 6 s of replay; flushes every 1 s.
      const file = flowFile(12);
      const flows = path.join(dir, 'flows.jsonl');
      await writeFile(flows, file.text);
      const standIn = await DakrStandIn.start();
      standIns.push(standIn);
      const cfg = path.join(dir, 'devzero.yaml');
      await writeFile(cfg, config({ flows, endpoint: standIn.url }));
      const a = agent(cfg);
      const port = await healthPort(a);
      await a.waitForLog((l) => l.msg === 'sending flows and DNS lookups to the DevZero control plane');

      // The zxporter JSON on the health port, while the interval fills.
      await standIn.waitFor(() => standIn.traffic.length >= 1, 10_000, 'a first request');
      const res = await fetch(`http://127.0.0.1:${port}/metrics`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('application/json');
      const doc = (await res.json()) as Record<string, unknown>;
      expect(Object.keys(doc)).toEqual(['node_name', 'items', 'dns_lookups']);
      expect(doc.node_name).toBe('node-e2e');
      expect(doc.dns_lookups).toBeNull();
      for (const item of doc.items as Record<string, unknown>[]) {
        const keys = Object.keys(item);
        expect(keys.slice(0, 2)).toEqual(['src_ip', 'dst_ip']);
        expect(keys.slice(-7)).toEqual([
          'protocol',
          'dst_port',
          'tx_bytes',
          'rx_bytes',
          'tx_packets',
          'rx_packets',
          'timestamp',
        ]);
        expect(item.timestamp).toMatch(/^2026-01-01T00:\d\d:\d\d(\.\d+)?Z$/);
      }

      // Outage: the server goes away for several flush intervals, while the replay goes on.
      await standIn.stop();
      const devzeroStatus = async () => {
        const st = (await (await fetch(`http://127.0.0.1:${port}/status`)).json()) as {
          components: {
            kind: string;
            id: string;
            status: string;
            details?: { queue?: { pending_items: number } };
          }[];
        };
        return st.components.find((c) => c.kind === 'exporter' && c.id === 'devzero');
      };
      let sawError = false;
      for (let i = 0; i < 30 && !sawError; i++) {
        await sleep(100);
        sawError = (await devzeroStatus())?.status === 'recoverable_error';
      }
      expect(sawError).toBe(true);
      await sleep(2500);
      // The outage really held data: intervals were queued while nothing could be delivered (were the
      // replay over before the outage, this would be 0 and the test would prove nothing).
      const held = (await devzeroStatus())?.details?.queue?.pending_items ?? 0;
      expect(held).toBeGreaterThan(0);
      await standIn.restart();

      await a.waitForLog((l) => l.msg === 'replay finished', 20_000);
      await standIn.waitFor(
        () => standIn.totals().tx_bytes === file.totals.tx_bytes,
        10_000,
        'every byte of the file delivered',
      );
      expect(sums(standIn)).toEqual(file.totals);
      // Heartbeats failed during the outage (logged, not queued) and resume after it.
      const delivered = Date.now();
      await standIn.waitFor(
        () => standIn.health.some((h) => h.time > delivered),
        5000,
        'a heartbeat after the outage',
      );
      expect(a.logs.some((l) => l.msg === 'heartbeat (ReportHealth) failed')).toBe(true);
      await stopAgent(a);
      // Nothing more (and nothing twice) at shutdown.
      expect(sums(standIn)).toEqual(file.totals);
      expect(a.logs.some((l) => l.msg === 'send failed; will retry')).toBe(true);

      // What zxporter-netmon sends, as decoded with dakr.proto.
      for (const call of standIn.traffic) {
        // zxporter-netmon's newest release by default (client_version), not netmon's own version.
        expect(call.headers).toMatchObject({
          authorization: 'Bearer e2e-token',
          'x-client': 'zxporter/0.1.6',
          'x-operator-type': 'zxporter',
          'x-operator-version': '0.1.6',
        });
        expect(call.request).toMatchObject({ node_name: 'node-e2e', cluster_id: '', team_id: '' });
        expect(call.request.operator_version).toBe('0.1.6');
        expect(call.request._operator_version).toBe('operator_version');
        for (const item of call.request.items) {
          expect(item.tx_bytes + item.rx_bytes + item.tx_packets + item.rx_packets).toBeGreaterThan(0);
        }
      }
      const items = standIn.traffic.flatMap((c) => c.request.items);
      const web = items.find((i) => i.src_ip === '10.0.1.10');
      expect(web).toMatchObject({
        src_pod_name: PODS[0],
        src_pod_namespace: 'shop',
        dst_ip: '10.0.2.20',
        dst_port: 443,
        protocol: 6,
      });
      // Two source ports per key, one item per key and request.
      for (const call of standIn.traffic) {
        const keys = call.request.items.map((i) => `${i.src_ip}|${i.dst_ip}|${i.dst_port}|${i.protocol}`);
        expect(new Set(keys).size).toBe(keys.length);
      }
      expect(items.find((i) => i.src_ip === '10.0.1.15')).toMatchObject({
        protocol: 17,
        dst_port: 53,
        src_pod_name: '',
      });
      expect(standIn.health.length).toBeGreaterThanOrEqual(2);
      expect(standIn.health[0].request).toMatchObject({
        cluster_id: 'cluster-e2e',
        operator_type: 5,
        version: '0.1.6',
      });
      // Only zxporter-netmon's components (no dns receiver: no ebpf_tracer; no k8s_metadata: standalone).
      const last = (standIn.health.find((h) => h.time > delivered) ?? standIn.health[0]).request;
      expect(last.components.map((c) => [c.name, c.status, c.message])).toEqual([
        ['monitor', 1, 'collecting'],
        ['dakr_transport', 1, 'connected'],
        ['pod_cache', 1, 'standalone mode'],
      ]);
      expect(last.components[0].metadata.components).toBe('extension/health_check, receiver/file@flows');
      expect(last.overall_status).toBe(1);
    });
  });

  it('keeps unsent intervals across an agent restart (sending_queue::directory) and delivers each once', async () => {
    await withTmpDir(async (dir) => {
      const file = flowFile(8);
      const flows = path.join(dir, 'flows.jsonl');
      const empty = path.join(dir, 'empty.jsonl');
      await writeFile(flows, file.text);
      await writeFile(empty, '');
      const stateDir = path.join(dir, 'state');
      // The control plane is down the whole time the first agent runs.
      const standIn = await DakrStandIn.start();
      standIns.push(standIn);
      await standIn.stop();

      const cfg1 = path.join(dir, 'first.yaml');
      await writeFile(cfg1, config({ flows, endpoint: standIn.url, stateDir, speed: 20 }));
      const first = agent(cfg1);
      await first.waitForLog((l) => l.msg === 'replay finished', 20_000);
      // A few flush intervals pass with nothing delivered, then the agent stops mid-interval.
      await sleep(1500);
      await stopAgent(first);
      expect(standIn.traffic).toHaveLength(0);
      const kept = first.logs.find(
        (l) =>
          l.msg ===
          'kept what the control plane has not acknowledged in the state file; the next start sends it',
      );
      expect(kept?.items).toBeGreaterThan(0);
      const stateFile = path.join(stateDir, 'devzero.queue.json');
      const saved = JSON.parse(await readFile(stateFile, 'utf8')) as {
        pending: { items: { tx_bytes: number }[] }[];
      };
      expect(saved.pending.flatMap((p) => p.items).reduce((s, i) => s + i.tx_bytes, 0)).toBe(
        file.totals.tx_bytes,
      );

      // Control plane back; a new agent on the same directory, with nothing new to read.
      await standIn.restart();
      const cfg2 = path.join(dir, 'second.yaml');
      await writeFile(cfg2, config({ flows: empty, endpoint: standIn.url, stateDir }));
      const second = agent(cfg2);
      await second.waitForLog(
        (l) => l.msg === 'restored intervals a previous run had not delivered; sending them first',
      );
      await standIn.waitFor(
        () => standIn.totals().tx_bytes >= file.totals.tx_bytes,
        10_000,
        'the restored intervals delivered',
      );
      await sleep(1200);
      await stopAgent(second);
      expect(sums(standIn)).toEqual(file.totals);
      expect(JSON.parse(await readFile(stateFile, 'utf8')).pending).toEqual([]);
      expect(standIn.traffic.every((c) => c.request.node_name === 'node-e2e')).toBe(true);
    });
  });

  it('local only (no endpoint): sends nothing, /metrics shows the interval and reading it resets nothing', async () => {
    await withTmpDir(async (dir) => {
      const file = flowFile(3);
      const flows = path.join(dir, 'flows.jsonl');
      await writeFile(flows, file.text);
      const cfg = path.join(dir, 'local.yaml');
      await writeFile(
        cfg,
        `receivers: { file: { path: ${JSON.stringify(flows)} } }
exporters: { devzero: { endpoint: "", node_name: node-local, flush_interval: 1h } }
extensions: { health_check: { endpoint: "127.0.0.1:0" } }
service: { extensions: [health_check], pipelines: { flows: { receivers: [file], exporters: [devzero] } } }
`,
      );
      const a = agent(cfg);
      const port = await healthPort(a);
      await a.waitForLog((l) => l.msg === 'replay finished');
      expect(
        a.logs.some((l) =>
          String(l.msg).startsWith(
            'local only (no endpoint: set endpoint, DAKR_URL, and token to send): nothing is sent; GET /metrics',
          ),
        ),
      ).toBe(true);
      const read = async () => {
        const res = await fetch(`http://127.0.0.1:${port}/metrics`);
        return (await res.json()) as { node_name: string; items: Totals[] };
      };
      const first = await read();
      expect(first.node_name).toBe('node-local');
      // Six aggregation keys; the three intervals summed into them.
      expect(first.items).toHaveLength(6);
      const tx = first.items.reduce((n, i) => n + i.tx_bytes, 0);
      expect(tx).toBe(file.totals.tx_bytes);
      expect(await read()).toEqual(first);
      const missing = await fetch(`http://127.0.0.1:${port}/nope`);
      expect(((await missing.json()) as { error: string }).error).toBe(
        'no such endpoint /nope; try /healthz, /readyz, /status or /metrics',
      );
      await stopAgent(a);
    });
  });

  it('configs/devzero.yaml validates with the zxporter-netmon environment, and without it (local only)', async () => {
    const env = { DAKR_URL: 'https://dakr.devzero.io', CLUSTER_TOKEN: 'x', NETMON_STATE_DIR: '/tmp' };
    const ok = await runCli(['validate', '-c', 'configs/devzero.yaml'], { env });
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    // No CLUSTER_TOKEN is valid: the exporter runs local only (and says so at start).
    const tokenless = await runCli(['validate', '-c', 'configs/devzero.yaml'], {
      env: { ...env, CLUSTER_TOKEN: undefined },
    });
    expect(tokenless.stderr).toBe('');
    expect(tokenless.code).toBe(0);
    // No DAKR_URL either: local only too, as zxporter-netmon runs without it (the start log says so).
    const missing = await runCli(['validate', '-c', 'configs/devzero.yaml'], {
      env: { NETMON_STATE_DIR: '/tmp', DAKR_URL: undefined, CLUSTER_TOKEN: undefined },
    });
    expect({ stderr: missing.stderr, code: missing.code }).toEqual({ stderr: '', code: 0 });
    // DAKR_URL as host:port (the Collector's form) and http:// (plaintext, as zxporter-netmon) are valid too.
    for (const url of ['dakr.devzero.io:443', 'http://10.0.0.5:9090', 'http://[fd00::5]:9090']) {
      const r = await runCli(['validate', '-c', 'configs/devzero.yaml'], { env: { ...env, DAKR_URL: url } });
      expect({ url, stderr: r.stderr, code: r.code }).toEqual({ url, stderr: '', code: 0 });
    }
    const portless = await runCli(['validate', '-c', 'configs/devzero.yaml'], {
      env: { ...env, DAKR_URL: 'dakr.devzero.io' },
    });
    expect(portless.code).toBe(2);
    expect(portless.stderr).toContain(
      'exporters::devzero::endpoint: "dakr.devzero.io": the port is missing; expected host:port, e.g. dakr.devzero.io:443 or https://dakr.devzero.io',
    );
    const bad = await runCli(['validate', '-c', 'configs/devzero.yaml'], {
      env: { ...env, FLUSH_INTERVAL: '60' },
    });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('exporters::devzero::flush_interval');
  });
});
