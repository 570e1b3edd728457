// The metrics endpoint against clients that abuse it: floods of connections, pipelined requests that are
// never read, more connections than allowed; and scrapes that share a rendering. Real sockets, a real
// flooding process, the real HTTP server.
import { spawn } from 'node:child_process';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { type ComponentSettings, createLogger, FlowBatch, type FlowInit } from '@netmon/core';
import { testSettings, until } from '@netmon/core/testkit';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { prometheusExporterConfig } from './config.js';
import { MAX_WAITING, MetricsEndpoint } from './endpoint.js';
import { PrometheusExporter } from './exporter.js';
import { FlowFamilies } from './families.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');

/** `n` rows, each its own label set at pod granularity; `pad` makes each label set that much longer. */
function flows(n: number, pad = 0, from = 0): FlowBatch {
  const rows: FlowInit[] = [];
  for (let k = from; k < from + n; k++) {
    const w = k % 1000;
    rows.push({
      timeStart: T0,
      timeEnd: T0 + 10_000,
      protocol: 6,
      srcIp: '10.0.1.5',
      srcPort: 40000,
      dstIp: '10.0.2.9',
      dstPort: 8080,
      txBytes: 1000 + k,
      rxBytes: 2000 + k,
      txPackets: 2,
      rxPackets: 3,
      attributes: {
        'src.k8s.namespace.name': `ns-${w % 50}`,
        'src.k8s.workload.kind': 'Deployment',
        'src.k8s.workload.name': `app-${w}`,
        'src.k8s.pod.name': `app-${w}-6d4cf56db6-${k.toString(36).padStart(5, 'x')}`,
        'dst.k8s.namespace.name': `ns-${(k * 7) % 50}`,
        'dst.k8s.workload.kind': 'Deployment',
        'dst.k8s.workload.name': `app-${(k * 7) % 1000}`,
        'dst.k8s.pod.name': `app-${(k * 7) % 1000}-6d4cf56db6-${k}`,
        'dst.kind': 'pod',
        'traffic.class': 'same_zone',
        ...(pad > 0 ? { 'dst.domain': `${'x'.repeat(pad)}-${k}` } : {}),
      },
    });
  }
  return FlowBatch.from(rows);
}

const running: { shutdown(): Promise<void> }[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const e of running.splice(0)) await e.shutdown();
});

async function started(
  config: Record<string, unknown> = {},
  settings: ComponentSettings = testSettings('exporter', 'prometheus'),
): Promise<PrometheusExporter> {
  const e = new PrometheusExporter(
    settings,
    prometheusExporterConfig.parse({ endpoint: '127.0.0.1:0', self_metrics: false, ...config }),
  );
  running.push(e);
  await e.start();
  return e;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The bound of the timed checks below, set to what only a stall exceeds. The defect they guard: under a
 * flood of pipelined scrapes the event loop stalled for 61 s (/healthz went unanswered) and stopping
 * never finished. A loaded 2-core CI machine makes a millisecond answer take a second or more, so a
 * tighter bound would fail there with nothing wrong; 10 s is below every timeout of the server (idle
 * 30 s, keep-alive 65 s) that could end the connections instead of stop. Speed is bench/'s to measure.
 */
const STALL_MS = 10_000;

/** `p`, or an error saying that `what` stalled: it fails at its own step, not at the test's timeout. */
async function notStalled<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const stalled = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${STALL_MS} ms`)), STALL_MS);
  });
  try {
    return await Promise.race([p, stalled]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The server's side of the first connection to `port` and how many requests Node's HTTP server has parsed
 * on it (a pipelined one is handed over as soon as it is parsed), from Node's public diagnostics channel:
 * what a test waits for instead of guessing how long a loaded machine takes.
 */
function parsedRequests(port: number): { count: () => number; socket: () => Socket | undefined } {
  let socket: Socket | undefined;
  let count = 0;
  const onRequest = (message: unknown) => {
    const { socket: s } = message as { socket: Socket };
    if (s.localPort !== port || (socket && s !== socket)) return;
    socket = s;
    count++;
  };
  subscribe('http.server.request.start', onRequest);
  running.push({ shutdown: async () => void unsubscribe('http.server.request.start', onRequest) });
  return { count: () => count, socket: () => socket };
}

/**
 * Resolves once the server's side of a connection can send nothing more: more buffered than its mark, and
 * none of it taken by the kernel for 250 ms (the client stopped reading, and the kernel's buffers are full).
 */
async function cannotSend(socket: () => Socket | undefined): Promise<void> {
  let length = -1;
  let since = 0;
  await until(() => {
    const s = socket();
    if (!s?.writableNeedDrain || s.writableLength !== length) {
      length = s?.writableLength ?? -1;
      since = performance.now();
      return false;
    }
    return performance.now() - since >= 250;
  }, STALL_MS);
}

/** A raw TCP connection to the endpoint of `url`, closed after the test. */
async function client(url: string): Promise<Socket> {
  const u = new URL(url);
  const s = connect(Number(u.port), u.hostname);
  s.on('error', () => undefined);
  sockets.push(s);
  await once(s, 'connect');
  return s;
}

const GET = 'GET /metrics HTTP/1.1\r\nHost: netmon\r\n\r\n';
const HEAD = 'HEAD /metrics HTTP/1.1\r\nHost: netmon\r\n\r\n';

/** Everything `s` receives, and whether it has closed. */
function received(s: Socket): { text: () => string; closed: () => boolean } {
  let text = '';
  let closed = false;
  s.setEncoding('latin1');
  s.on('data', (d: string) => {
    text += d;
  });
  s.on('close', () => {
    closed = true;
  });
  return { text: () => text, closed: () => closed };
}

/** Resident memory of this process (the endpoint's), in MiB. */
const rss = () => process.memoryUsage().rss / 2 ** 20;

class Reader extends MetricReader {
  protected async onShutdown(): Promise<void> {}
  protected async onForceFlush(): Promise<void> {}
}

/** The value of a counter the exporter observes, by its `reason`. */
async function dropped(reader: Reader, reason: string): Promise<number | undefined> {
  const { resourceMetrics } = await reader.collect();
  for (const scope of resourceMetrics.scopeMetrics) {
    for (const m of scope.metrics) {
      if (m.descriptor.name !== 'netmon_prometheus_dropped_connections') continue;
      const point = m.dataPoints.find((p) => p.attributes.reason === reason);
      return point?.value as number | undefined;
    }
  }
  return undefined;
}

// Opens CONNS connections to PORT, writes REQUESTS pipelined GET /metrics on each at once and never
// reads; says "flooding" once every write is done (or failed: a refused connection).
const FLOODER = `
const net = require('node:net');
const [port, conns, requests] = process.argv.slice(1).map(Number);
const request = 'GET /metrics HTTP/1.1\\r\\nHost: netmon\\r\\n\\r\\n'.repeat(requests);
let written = 0;
for (let i = 0; i < conns; i++) {
  const s = net.connect(port, '127.0.0.1');
  s.on('error', () => {});
  s.on('connect', () => {
    s.pause();
    s.write(request, () => { if (++written === conns) console.log('flooding'); });
  });
}
setInterval(() => {}, 1000);
`;

// Each test waits up to STALL_MS at several steps; a stall fails at its step, within the test's time.
describe('prometheus endpoint under abuse', { timeout: 6 * STALL_MS }, () => {
  it('a flood of pipelined scrapes never read costs bounded memory, another server answers meanwhile, and stop ends it at once', async () => {
    const e = await started({ granularity: 'pod', max_series: 20_000 });
    e.export(flows(10_000));
    const url = e.url() as string;
    // One scrape as Prometheus makes it: the label text is built and cached, as in a running agent.
    expect((await fetch(url, { headers: { 'accept-encoding': 'gzip' } })).status).toBe(200);
    // The stand-in for /healthz: another HTTP server of the same process.
    const health: Server = createServer((_req, res) => res.end('ok'));
    await new Promise<void>((r) => health.listen(0, '127.0.0.1', r));
    running.push({ shutdown: () => new Promise<void>((r) => health.close(() => r())) });
    const healthz = `http://127.0.0.1:${(health.address() as { port: number }).port}/healthz`;
    const before = rss();

    const flooder = spawn(process.execPath, ['-e', FLOODER, new URL(url).port, '50', '50'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    running.push({
      shutdown: async () => {
        if (flooder.exitCode === null) {
          flooder.kill('SIGKILL');
          await once(flooder, 'exit');
        }
      },
    });
    let peak = before;
    const sampler = setInterval(() => {
      peak = Math.max(peak, rss());
    }, 20);
    try {
      const [line] = await once(flooder.stdout, 'data');
      expect(String(line)).toContain('flooding');
      const latencies: number[] = [];
      const end = performance.now() + 3000;
      while (performance.now() < end) {
        const t = performance.now();
        const res = await fetch(healthz, { signal: AbortSignal.timeout(STALL_MS) });
        expect(await res.text()).toBe('ok');
        latencies.push(performance.now() - t);
        await sleep(50);
      }
      expect(Math.max(...latencies)).toBeLessThan(STALL_MS);
    } finally {
      clearInterval(sampler);
    }
    // 10k series are ~3 MiB of text; 2500 renderings of it were gigabytes.
    expect(peak - before).toBeLessThan(128);
    expect(peak).toBeLessThan(512);
    // Every connection was refused or closed to admit another (16 open at most), or closed for its 49
    // pipelined requests; on a loaded machine the last ones may still be on their way.
    const droppedAll = () => {
      const d = e.endpoint.stats.dropped;
      return d.max_connections + d.evicted_idle + d.pipelining;
    };
    await until(() => droppedAll() >= 50, STALL_MS);
    expect(droppedAll()).toBe(50);
    const { dropped } = e.endpoint.stats;
    expect(dropped.pipelining).toBeGreaterThanOrEqual(16);
    // Still serving.
    const after = await fetch(url);
    expect(after.status).toBe(200);
    expect(
      (await after.text()).split('\n').filter((l) => l.startsWith('netmon_flow_bytes_total{')),
    ).toHaveLength(20_000);
    await notStalled(e.shutdown(), 'stop during the flood');
  });

  it('answers pipelined requests one at a time; while the one in progress cannot be sent, Node reads no more of them; stop closes the connection', async () => {
    const e = await started({ granularity: 'pod', max_series: 50_000 });
    // About 20 MB of text (no gzip asked for): far more than the socket buffers take.
    e.export(flows(20_000, 200));
    const url = e.url() as string;
    const parsed = parsedRequests(Number(new URL(url).port));
    const s = await client(url);
    s.pause(); // never reads
    const seen = received(s);
    s.write(GET.repeat(10));
    await until(() => parsed.count() === 10, STALL_MS);
    // Waited for, not slept: how long a 20 MB response takes to fill the buffers depends on the load.
    await cannotSend(parsed.socket);
    // Ten requests parsed, one answered: the other nine wait and hold no output.
    expect(e.endpoint.inFlight).toBe(1);
    expect(e.endpoint.stats.renderings).toBe(1);
    // The response cannot be sent. Node checks that when it parses a request, and then stops reading
    // the connection (what came with that request is parsed all the same): after this one request, the
    // thousand that follow are not parsed. Were they, more than MAX_WAITING requests would wait, and
    // the connection would be closed (pipelining).
    s.write(GET);
    await until(() => parsed.count() === 11, STALL_MS);
    s.write(GET.repeat(1000));
    await sleep(500);
    expect(parsed.count()).toBe(11);
    expect(e.endpoint.stats.dropped).toEqual({ max_connections: 0, evicted_idle: 0, pipelining: 0 });
    expect(e.endpoint.inFlight).toBe(1);
    // stop() does not wait for the connection or its waiting requests: it closes it, which the client
    // sees once it reads again.
    await notStalled(e.shutdown(), 'stop with a response that cannot be sent');
    s.resume();
    await until(() => seen.closed(), STALL_MS);
    expect(seen.text()).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    // Cut off: not the end of a chunked body.
    expect(seen.text().endsWith('\r\n0\r\n\r\n')).toBe(false);
    await until(() => e.endpoint.inFlight === 0);
    expect(e.endpoint.stats).toMatchObject({ scrapes: 0, aborted: 1 });
    // Nothing was sent whole, so no series counts as shown.
    expect(e.tables[0].served).toBe(0);
  });

  it(`closes a connection with more than ${MAX_WAITING} requests waiting, and counts it`, async () => {
    const reader = new Reader();
    const provider = new MeterProvider({ readers: [reader] });
    const settings = { ...testSettings('exporter', 'prometheus'), meter: provider.getMeter('test') };
    try {
      const e = await started({}, settings);
      const s = await client(e.url() as string);
      const seen = received(s); // reads everything
      s.write(GET.repeat(MAX_WAITING + 1));
      await sleep(300);
      // One answered, the rest waiting: at the limit, still open.
      expect(seen.closed()).toBe(false);
      expect(e.endpoint.stats.dropped.pipelining).toBe(0);
      s.write(GET.repeat(MAX_WAITING + 2));
      await until(() => seen.closed());
      expect(e.endpoint.stats.dropped).toEqual({ max_connections: 0, evicted_idle: 0, pipelining: 1 });
      expect(await dropped(reader, 'pipelining')).toBe(1);
      expect(await dropped(reader, 'max_connections')).toBe(0);
      // Other connections are served.
      expect((await fetch(e.url() as string)).status).toBe(200);
    } finally {
      await provider.shutdown();
    }
  });

  it('16 scrapers keeping their connections alive do not lock Prometheus out: the one idle longest gives way, and is counted', async () => {
    const reader = new Reader();
    const provider = new MeterProvider({ readers: [reader] });
    const settings = { ...testSettings('exporter', 'prometheus'), meter: provider.getMeter('test') };
    try {
      const e = await started({ granularity: 'pod' }, settings);
      e.export(flows(100));
      const url = e.url() as string;
      // Each sends one GET, reads the whole answer, and keeps the connection open (HTTP/1.1 keep-alive).
      const kept: { s: Socket; seen: ReturnType<typeof received> }[] = [];
      for (let i = 0; i < 16; i++) {
        const s = await client(url);
        const seen = received(s);
        s.write(GET);
        await until(() => seen.text().endsWith('\r\n0\r\n\r\n'));
        expect(seen.text()).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
        kept.push({ s, seen });
      }
      expect(await e.endpoint.connections()).toBe(16);
      // Prometheus' scrape, on a connection of its own.
      const res = await fetch(url, { headers: { 'accept-encoding': 'gzip' } });
      expect(res.status).toBe(200);
      expect(
        (await res.text()).split('\n').filter((l) => l.startsWith('netmon_flow_bytes_total{')),
      ).toHaveLength(200);
      // The first of the sixteen made room, and only it.
      await until(() => kept[0].seen.closed());
      expect(kept.slice(1).filter((k) => k.seen.closed())).toEqual([]);
      expect(e.endpoint.stats.dropped).toEqual({ max_connections: 0, evicted_idle: 1, pipelining: 0 });
      expect(await dropped(reader, 'evicted_idle')).toBe(1);
      expect(await dropped(reader, 'max_connections')).toBe(0);
      expect(await e.endpoint.connections()).toBe(16);
    } finally {
      await provider.shutdown();
    }
  });

  it('refuses a connection past max_connections when every one has a response in progress, and counts it; a freed one is taken again', async () => {
    const reader = new Reader();
    const provider = new MeterProvider({ readers: [reader] });
    const settings = { ...testSettings('exporter', 'prometheus'), meter: provider.getMeter('test') };
    try {
      const e = await started({ granularity: 'pod', max_series: 50_000 }, settings);
      // About 20 MB of text (no gzip asked for): far more than the socket buffers take.
      e.export(flows(20_000, 200));
      const url = e.url() as string;
      // Sixteen scrapers that stopped reading: each has its response in progress.
      const stuck: Socket[] = [];
      for (let i = 0; i < 16; i++) {
        const s = await client(url);
        s.pause();
        s.write(GET);
        stuck.push(s);
      }
      await until(() => e.endpoint.inFlight === 16);
      const refused = received(await client(url));
      await until(() => refused.closed());
      expect(refused.text()).toBe('');
      expect(e.endpoint.stats.dropped).toEqual({ max_connections: 1, evicted_idle: 0, pipelining: 0 });
      expect(await dropped(reader, 'max_connections')).toBe(1);
      expect(await dropped(reader, 'evicted_idle')).toBe(0);
      expect(e.endpoint.inFlight).toBe(16);
      // One leaves: a new connection is answered, and no other made room for it.
      stuck[0].destroy();
      await until(() => e.endpoint.inFlight === 15);
      const fourth = await client(url);
      const served = received(fourth);
      fourth.write(HEAD);
      await until(() => served.text().includes('\r\n\r\n') || served.closed());
      expect(served.text()).toMatch(/^HTTP\/1\.1 200 OK/);
      expect(e.endpoint.stats.dropped).toEqual({ max_connections: 1, evicted_idle: 0, pipelining: 0 });
      expect(e.endpoint.inFlight).toBe(15);
    } finally {
      await provider.shutdown();
    }
  });

  it('cuts connections that stopped reading at the idle timeout, under a flood of them', async () => {
    const settings = testSettings('exporter', 'prometheus');
    const config = prometheusExporterConfig.parse({
      endpoint: '127.0.0.1:0',
      self_metrics: false,
      granularity: 'pod',
    });
    const families = new FlowFamilies('pod', 50_000, undefined, config.expiration);
    families.add(flows(20_000, 200), Date.now());
    const endpoint = new MetricsEndpoint(settings, config, [families], undefined, { idleTimeoutMs: 1000 });
    running.push({ shutdown: () => endpoint.stop() });
    await endpoint.start();
    const url = endpoint.url() as string;
    const flood: { s: Socket; seen: ReturnType<typeof received> }[] = [];
    for (let i = 0; i < config.max_connections; i++) {
      const s = await client(url);
      s.pause();
      flood.push({ s, seen: received(s) });
      s.write(GET.repeat(10));
    }
    await until(() => endpoint.inFlight === config.max_connections);
    // Every one is stuck, and closed once it has been idle for a second, its waiting requests with it
    // (two seconds at most: Node grants a write still pending one more period). Waited for up to
    // STALL_MS, below the default idle timeout (30 s): the one given is what cut them.
    await until(() => endpoint.inFlight === 0, STALL_MS);
    expect(endpoint.stats).toMatchObject({ scrapes: 0, aborted: config.max_connections });
    expect(endpoint.stats.dropped).toEqual({ max_connections: 0, evicted_idle: 0, pipelining: 0 });
    // The clients see it once they read again: a response cut short, then the end of the connection.
    for (const f of flood) f.s.resume();
    await until(() => flood.every((f) => f.seen.closed()), STALL_MS);
    for (const f of flood) expect(f.seen.text().endsWith('\r\n0\r\n\r\n')).toBe(false);
    // Their places are free again.
    const res = await fetch(url, { headers: { 'accept-encoding': 'gzip' } });
    expect(res.status).toBe(200);
    expect((await res.text()).length).toBeGreaterThan(1_000_000);
  });
});

describe('prometheus endpoint: shared renderings', () => {
  it('scrapes that arrive together share one rendering; a change to the tables, or another variant, makes a new one', async () => {
    // The endpoint's clock held still: a finished rendering is shared for SHARE_WINDOW_MS (1 s), which
    // a loaded machine can spend between two of these scrapes. Only Date: sockets and timers run.
    vi.useFakeTimers({ toFake: ['Date'] });
    running.push({ shutdown: async () => void vi.useRealTimers() });
    const e = await started({ granularity: 'pod' });
    e.export(flows(2000));
    const url = e.url() as string;
    const gzip = { 'accept-encoding': 'gzip' };
    const bodies = await Promise.all(
      Array.from({ length: 8 }, async () => {
        const res = await fetch(url, { headers: gzip });
        expect(res.headers.get('content-encoding')).toBe('gzip');
        return res.text();
      }),
    );
    expect(new Set(bodies).size).toBe(1);
    expect(bodies[0].split('\n').filter((l) => l.startsWith('netmon_flow_bytes_total{'))).toHaveLength(4000);
    expect(e.endpoint.stats).toMatchObject({ scrapes: 8, aborted: 0, renderings: 1 });
    // Each scrape counts as having shown every update it carried.
    for (const t of e.tables) expect(t.served).toBe(t.table.updates);
    // Nothing changed: served from the same rendering.
    expect(await (await fetch(url, { headers: gzip })).text()).toBe(bodies[0]);
    expect(e.endpoint.stats.renderings).toBe(1);
    // New bytes: a new rendering shows them.
    e.export(flows(1, 0, 5000));
    const fresh = await (await fetch(url, { headers: gzip })).text();
    expect(fresh).toContain('dst_pod="app-0-6d4cf56db6-5000"');
    expect(e.endpoint.stats.renderings).toBe(2);
    // Another variant: its own rendering, the same series.
    const plain = await fetch(url, { headers: { 'accept-encoding': 'identity' } });
    expect(plain.headers.get('content-encoding')).toBeNull();
    expect(await plain.text()).toBe(fresh);
    expect(e.endpoint.stats).toMatchObject({ scrapes: 11, renderings: 3 });
  });
});

describe('prometheus endpoint address', () => {
  it('says once, at start, when it serves every interface', async () => {
    const noted = async (endpoint: string) => {
      const logs: Record<string, unknown>[] = [];
      const logger = createLogger({
        level: 'info',
        pretty: false,
        destination: { write: (line: string) => logs.push(JSON.parse(line)) },
      });
      const e = await started({ endpoint }, { ...testSettings('exporter', 'prometheus'), logger });
      await e.shutdown();
      return logs.filter((l) => l.msg === 'serving every interface unauthenticated');
    };
    expect(await noted('0.0.0.0:0')).toEqual([
      expect.objectContaining({ level: 30, endpoint: expect.stringMatching(/^0\.0\.0\.0:\d+$/) }),
    ]);
    expect(await noted(':0')).toHaveLength(1);
    expect(await noted('127.0.0.1:0')).toEqual([]);
  });
});
