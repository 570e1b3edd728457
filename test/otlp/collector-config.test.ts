// The otlp exporter configured as OpenTelemetry Collector users configure theirs: endpoint host:port, TLS
// decided by `tls`, sending_queue, retry_on_failure, timeout, compression, headers. Against the OTLP/gRPC
// sink of the test harness (which decodes real OTLP), plaintext and over TLS; once through the real CLI.
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { FlowBatch, type FlowInit, StatusBoard } from '@netmon/core';
import { testSettings } from '@netmon/core/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { otlpExporterConfig } from '../../packages/exporters/src/otlp/config.js';
import { OtlpExporter } from '../../packages/exporters/src/otlp/exporter.js';
import { AgentProcess, ROOT, runCli, withTmpDir } from '../harness/agent.js';
import { OtlpSink } from '../harness/otlp-sink.js';

const TESTDATA = path.join(ROOT, 'packages/exporters/src/otlp/testdata');
const SERVER_TLS = {
  cert: readFileSync(path.join(TESTDATA, 'server.pem')),
  key: readFileSync(path.join(TESTDATA, 'server-key.pem')),
};

const T0 = Date.parse('2026-01-01T00:00:00Z');
const flow = (txBytes: number, workload = 'cart'): FlowInit => ({
  timeStart: T0,
  timeEnd: T0 + 10_000,
  protocol: 6,
  srcIp: '10.0.0.1',
  srcPort: 40000,
  dstIp: '10.0.0.2',
  dstPort: 443,
  txBytes,
  rxBytes: 0,
  txPackets: 1,
  rxPackets: 0,
  attributes: { 'src.k8s.namespace.name': 'shop', 'src.k8s.workload.name': workload },
});

interface QueueStats {
  sentPayloads: number;
  sentItems: number;
  failedAttempts: number;
  lastError?: string;
  dropped: Record<string, number>;
}

const live: { exporters: OtlpExporter[]; sinks: OtlpSink[] } = { exporters: [], sinks: [] };
afterEach(async () => {
  await Promise.all(live.exporters.splice(0).map((e) => e.shutdown()));
  await Promise.all(live.sinks.splice(0).map((s) => s.close()));
});

async function sink(opts: Parameters<typeof OtlpSink.start>[0] = {}): Promise<OtlpSink> {
  const s = await OtlpSink.start(opts);
  live.sinks.push(s);
  return s;
}

/** An exporter from a config as a user writes it (relative TLS files from the testdata folder). */
function exporter(config: Record<string, unknown>) {
  const board = new StatusBoard();
  const settings = { ...testSettings('exporter', 'otlp', { board }), configDir: TESTDATA };
  const e = new OtlpExporter(settings, otlpExporterConfig.parse({ interval: '1h', ...config }));
  live.exporters.push(e);
  e.start();
  const stats = () => (e as unknown as { queue: { statistics(): QueueStats } }).queue.statistics();
  return { e, stats, state: board.all()[0] };
}

const until = async (cond: () => boolean, ms = 10_000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met');
    await new Promise((r) => setTimeout(r, 10));
  }
};

/** The transmit bytes the sink received, in order. */
const txValues = (s: OtlpSink) =>
  s
    .points()
    .filter((p) => p.metric === 'netmon.flow.io' && p.attributes['network.io.direction'] === 'transmit')
    .map((p) => p.value);

describe('otlp endpoint and tls, as the Collector decides them', () => {
  it('host:port is TLS by default: delivered with tls::ca_file to a TLS sink, by IP and by name', async () => {
    const s = await sink({ tls: SERVER_TLS });
    const a = exporter({ endpoint: `127.0.0.1:${s.port}`, tls: { ca_file: 'ca.pem' } });
    a.e.export(FlowBatch.from([flow(7)]));
    a.e.flush();
    await s.waitFor(() => s.requests.length === 1);
    const b = exporter({ endpoint: `localhost:${s.port}`, tls: { ca_file: 'ca.pem' } });
    b.e.export(FlowBatch.from([flow(8)]));
    b.e.flush();
    await s.waitFor(() => s.requests.length === 2);
    expect(txValues(s)).toEqual([7, 8]);
  });

  it('https:// is TLS even with tls.insecure: true', async () => {
    const s = await sink({ tls: SERVER_TLS });
    const { e } = exporter({
      endpoint: `https://127.0.0.1:${s.port}`,
      tls: { insecure: true, ca_file: 'ca.pem' },
    });
    e.export(FlowBatch.from([flow(9)]));
    e.flush();
    await s.waitFor(() => s.requests.length === 1);
    expect(txValues(s)).toEqual([9]);
  });

  it('tls.insecure: true is plaintext: refused by a TLS sink, delivered to a plaintext one', async () => {
    const secure = await sink({ tls: SERVER_TLS });
    const a = exporter({
      endpoint: `127.0.0.1:${secure.port}`,
      tls: { insecure: true },
      retry_on_failure: { initial_interval: '20ms', max_interval: '50ms' },
    });
    a.e.export(FlowBatch.from([flow(1)]));
    a.e.flush();
    await until(() => a.stats().failedAttempts >= 2);
    expect(a.stats().lastError).toMatch(/UNAVAILABLE/);
    expect(a.state.status).toBe('recoverable_error');
    expect(secure.requests).toHaveLength(0);

    const plain = await sink();
    const b = exporter({ endpoint: `127.0.0.1:${plain.port}`, tls: { insecure: true } });
    b.e.export(FlowBatch.from([flow(2)]));
    b.e.flush();
    await plain.waitFor(() => plain.requests.length === 1);
    expect(txValues(plain)).toEqual([2]);
    // http:// with tls.insecure says the same and is accepted.
    const c = exporter({ endpoint: `http://[::ffff:127.0.0.1]:${plain.port}`, tls: { insecure: true } });
    c.e.export(FlowBatch.from([flow(3)]));
    c.e.flush();
    await plain.waitFor(() => plain.requests.length === 2);
    expect(txValues(plain)).toEqual([2, 3]);
  });

  it('without tls.insecure a plaintext sink is never sent plaintext: TLS fails the handshake, retried', async () => {
    const plain = await sink();
    const { e, stats, state } = exporter({
      endpoint: `127.0.0.1:${plain.port}`,
      retry_on_failure: { initial_interval: '20ms', max_interval: '50ms' },
    });
    e.export(FlowBatch.from([flow(1)]));
    e.flush();
    await until(() => stats().failedAttempts >= 2);
    expect(stats().lastError).toMatch(/UNAVAILABLE/);
    expect(state.status).toBe('recoverable_error');
    expect(plain.requests).toHaveLength(0);
    // And an http:// endpoint that would be TLS is refused at load, with the fix.
    expect(
      otlpExporterConfig.safeParse({ endpoint: `http://127.0.0.1:${plain.port}` }).error?.issues[0].message,
    ).toBe(
      `"http://127.0.0.1:${plain.port}": http:// does not turn TLS off (TLS is on unless tls::insecure is true, as in the OpenTelemetry Collector, whatever the scheme); for plaintext write 127.0.0.1:${plain.port} with tls: {insecure: true}; for TLS write 127.0.0.1:${plain.port} or https://127.0.0.1:${plain.port}`,
    );
  });
});

describe('otlp retry_on_failure and sending_queue', () => {
  it('max_elapsed_time: a request retried that long is dropped and counted; later ones are delivered', async () => {
    const s = await sink();
    s.failFor(60_000);
    const { e, stats } = exporter({
      endpoint: `127.0.0.1:${s.port}`,
      tls: { insecure: true },
      retry_on_failure: {
        initial_interval: '50ms',
        max_interval: '50ms',
        max_elapsed_time: '300ms',
        randomization_factor: 0,
      },
    });
    e.export(FlowBatch.from([flow(1), flow(2, 'web')]));
    const t0 = Date.now();
    e.flush();
    // Two series, each bytes and packets in both directions: the request's 8 points are dropped.
    await until(() => stats().dropped.retry_exhausted > 0);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(240);
    expect(stats().dropped).toEqual({ queue_full: 0, rejected: 0, retry_exhausted: 8, shutdown: 0 });
    expect(stats().failedAttempts).toBeGreaterThanOrEqual(3);
    s.recover();
    e.export(FlowBatch.from([flow(5)]));
    e.flush();
    await s.waitFor(() => s.requests.length === 1);
    expect(txValues(s)).toEqual([5]);
    expect(stats().sentItems).toBe(4);
  });

  it('retry_on_failure::enabled false: a failed request is dropped at once (counted), the next is sent', async () => {
    const s = await sink();
    s.failNext(1);
    const { e, stats } = exporter({
      endpoint: `127.0.0.1:${s.port}`,
      tls: { insecure: true },
      retry_on_failure: { enabled: false },
    });
    e.export(FlowBatch.from([flow(1)]));
    e.flush();
    await until(() => stats().dropped.retry_exhausted === 4);
    expect(stats().failedAttempts).toBe(1);
    expect(s.refused).toBe(1);
    e.export(FlowBatch.from([flow(2)]));
    e.flush();
    await s.waitFor(() => s.requests.length === 1);
    expect(txValues(s)).toEqual([2]);
  });

  it('sending_queue::enabled false: an interval made while the previous is being retried is dropped, not queued', async () => {
    const s = await sink();
    s.failFor(60_000);
    const { e, stats } = exporter({
      endpoint: `127.0.0.1:${s.port}`,
      tls: { insecure: true },
      sending_queue: { enabled: false },
      retry_on_failure: { initial_interval: '20ms', max_interval: '20ms' },
    });
    e.export(FlowBatch.from([flow(1)]));
    e.flush();
    await until(() => stats().failedAttempts >= 1);
    e.export(FlowBatch.from([flow(2)]));
    e.flush();
    expect(stats().dropped.queue_full).toBe(4);
    s.recover();
    await s.waitFor(() => s.requests.length === 1);
    // Idle again once the exporter has the answer: the next interval is sent.
    await until(() => stats().sentPayloads === 1);
    e.export(FlowBatch.from([flow(4)]));
    e.flush();
    await s.waitFor(() => s.requests.length === 2);
    expect(txValues(s)).toEqual([1, 4]);
    expect(stats().dropped).toEqual({ queue_full: 4, rejected: 0, retry_exhausted: 0, shutdown: 0 });
  });
});

const collectorStyle = (endpoint: string) => `receivers:
  file: { path: ./flows.jsonl }
exporters:
  otlp:
    endpoint: ${endpoint}
    tls:
      insecure: true
    headers:
      x-scope-orgid: shop
      authorization: Bearer \${env:OTLP_TOKEN}
    compression: gzip
    timeout: 10s
    sending_queue:
      enabled: true
      queue_size: 500000
    retry_on_failure:
      enabled: true
      initial_interval: 1s
      max_interval: 5s
      max_elapsed_time: 2m
    interval: 200ms
service:
  pipelines:
    flows: { receivers: [file], exporters: [otlp] }
`;

describe('a Collector-style otlp block through the real CLI', () => {
  it('validates as written for the Collector (endpoint: localhost:4317)', async () => {
    await withTmpDir(async (dir) => {
      await writeFile(path.join(dir, 'flows.jsonl'), '');
      await writeFile(path.join(dir, 'agent.yaml'), collectorStyle('localhost:4317'));
      const r = await runCli(['validate', '-c', path.join(dir, 'agent.yaml')], { env: { OTLP_TOKEN: 't' } });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
    });
  });

  it('runs: gzip requests with the headers reach the sink, plaintext, and the sums are the file’s', async () => {
    await withTmpDir(async (dir) => {
      const s = await sink();
      const lines = [1, 2, 3].map((k) =>
        JSON.stringify({
          time_start: new Date(T0).toISOString(),
          time_end: new Date(T0 + 10_000).toISOString(),
          family: 4,
          protocol: 6,
          src_ip: `10.0.0.${k}`,
          src_port: 40000,
          dst_ip: '10.0.0.9',
          dst_port: 443,
          tx_bytes: 1000 * k,
          rx_bytes: 10 * k,
          tx_packets: k,
          rx_packets: k,
          attributes: { 'src.k8s.namespace.name': 'shop', 'src.k8s.workload.name': 'cart' },
        }),
      );
      await writeFile(path.join(dir, 'flows.jsonl'), `${lines.join('\n')}\n`);
      await writeFile(path.join(dir, 'agent.yaml'), collectorStyle(`localhost:${s.port}`));
      const agent = new AgentProcess(['run', '--config', path.join(dir, 'agent.yaml')], {
        env: { OTLP_TOKEN: 'secret-token' },
      });
      try {
        await agent.waitForLog((l) => l.msg === 'replay finished', 20_000);
        await s.waitFor(() => txValues(s).reduce((a, b) => a + b, 0) === 6000, 20_000);
      } finally {
        agent.signal('SIGTERM');
        expect(await agent.exit()).toBe(0);
      }
      const start = agent.logs.find((l) => l.msg === 'exporting OTLP metrics');
      expect(start).toMatchObject({ endpoint: `localhost:${s.port}`, tls: false, compression: 'gzip' });
      expect(s.requests.length).toBeGreaterThan(0);
      for (const r of s.requests) {
        expect(r.encoding).toBe('gzip');
        expect(r.metadata).toMatchObject({ 'x-scope-orgid': 'shop', authorization: 'Bearer secret-token' });
      }
    });
  }, 45_000);
});
