// prometheus exporter under abuse: CONNS connections each write REQUESTS pipelined `GET /metrics` at once
// and never read a byte, against an exporter holding SERIES flow label sets. Measures what the agent
// process pays: its RSS (peak and after), its event-loop lag, how long the health_check extension's
// /healthz (another server in the same process) takes to answer meanwhile, and how long SIGTERM takes to
// stop it with the flood still connected. On the built packages:
//   make build && .tools/bin/node bench/prometheus-flood.mjs
// CONNS=300 REQUESTS=200 SERIES=10000 SECONDS=70 by default. More than 16 requests on a connection get it
// closed at once (pipelining); REQUESTS=12 keeps 16 connections stuck instead, until the exporter's idle
// timeout cuts them (30 s, up to 60 s: SECONDS is past that). The agent is a child process; this one floods
// and probes. docs/PERFORMANCE.md keeps the figures.
import { fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { report } from './common.mjs';

const CONNS = Number(process.env.CONNS ?? 300);
const REQUESTS = Number(process.env.REQUESTS ?? 200);
const SERIES = Number(process.env.SERIES ?? 10_000);
const SECONDS = Number(process.env.SECONDS ?? 70);

if (process.env.FLOOD_AGENT) await agent();
else await flood();

/** The agent side: the exporter with SERIES label sets and health_check, reporting RSS and lag. */
async function agent() {
  const { FlowBatch } = await import('@netmon/core');
  const { healthCheckFactory } = await import('@netmon/extensions');
  const { prometheusExporterFactory } = await import('@netmon/exporters');
  const { PrometheusExporter } = await import('../packages/exporters/dist/prometheus/exporter.js');
  const { settings } = await import('./common.mjs');
  const config = prometheusExporterFactory.config.parse({
    endpoint: '127.0.0.1:0',
    granularity: 'pod',
    max_series: SERIES * 2,
    self_metrics: false,
  });
  const exporter = new PrometheusExporter(settings('exporter', 'prometheus'), config);
  await exporter.start();
  const t0 = Date.now();
  for (let done = 0; done < SERIES; done += 5000) {
    const rows = [];
    for (let k = done; k < Math.min(SERIES, done + 5000); k++) {
      const w = k % 1000;
      rows.push({
        timeStart: t0,
        timeEnd: t0 + 10_000,
        protocol: 6,
        srcIp: '10.0.0.1',
        srcPort: 40000,
        dstIp: '10.0.0.2',
        dstPort: 443,
        txBytes: 1000 + k,
        rxBytes: 2000 + k,
        txPackets: 10,
        rxPackets: 20,
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
        },
      });
    }
    exporter.export(FlowBatch.from(rows));
  }
  const health = await healthCheckFactory.create(
    settings('extension', 'health_check'),
    healthCheckFactory.config.parse({ endpoint: '127.0.0.1:0' }),
  );
  await health.start();
  const lag = monitorEventLoopDelay({ resolution: 10 });
  lag.enable();
  setInterval(() => {
    process.send?.({ rss: process.memoryUsage().rss, lagMaxMs: lag.max / 1e6 });
    lag.reset();
  }, 250).unref();
  process.on('message', async (m) => {
    if (m === 'stats') {
      const open = await exporter.endpoint.connections();
      process.send?.({ stats: exporter.endpoint.stats, open });
    }
  });
  process.on('SIGTERM', async () => {
    await exporter.shutdown();
    await health.shutdown();
    process.exit(0);
  });
  const h = health.address();
  process.send?.({
    ready: true,
    metrics: exporter.url(),
    healthz: `http://127.0.0.1:${h.port}/healthz`,
    series: exporter.tables[0].table.size,
  });
}

/** The client side: one scrape, then the flood, with /healthz probed throughout; then SIGTERM. */
async function flood() {
  const child = fork(fileURLToPath(import.meta.url), {
    env: { ...process.env, FLOOD_AGENT: '1' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let rssMax = 0;
  let lagMax = 0;
  let measuring = false;
  let stats;
  const ready = new Promise((resolve) =>
    child.on('message', (m) => {
      if (m.ready) resolve(m);
      if (m.stats) stats = m;
      if (measuring) {
        rssMax = Math.max(rssMax, m.rss);
        lagMax = Math.max(lagMax, m.lagMaxMs);
      }
    }),
  );
  const { metrics, healthz, series } = await ready;
  const rss = () =>
    Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))[1]) / 1024;
  // A scrape as Prometheus makes it: builds the cached label text, as a running agent has.
  const first = await timed(metrics, { 'accept-encoding': 'gzip' }, 30_000);
  const before = rss();
  report(
    'agent RSS before the flood',
    before,
    'MiB',
    `${series.toLocaleString('en-US')} series, after one scrape (${first.ms.toFixed(0)} ms)`,
  );

  measuring = true;
  const { port, hostname } = new URL(metrics);
  const request = `GET /metrics HTTP/1.1\r\nHost: ${hostname}:${port}\r\n\r\n`.repeat(REQUESTS);
  let connected = 0;
  const sockets = [];
  const start = performance.now();
  for (let i = 0; i < CONNS; i++) {
    const s = connect(Number(port), hostname);
    s.on('error', () => undefined);
    s.on('connect', () => {
      connected++;
      s.pause(); // never reads
      s.write(request);
    });
    sockets.push(s);
  }
  const latencies = [];
  let failures = 0;
  let scrape = 'not tried';
  const end = start + SECONDS * 1000;
  let n = 0;
  // RSS from /proc, read here: the agent's own reports stop while its event loop is blocked.
  const sampler = setInterval(() => {
    rssMax = Math.max(rssMax, rss() * 2 ** 20);
  }, 250);
  while (performance.now() < end) {
    const r = await timed(healthz, {}, 10_000);
    if (r.ok) latencies.push(r.ms);
    else failures++;
    if (++n === 10) {
      const s = await timed(metrics, { 'accept-encoding': 'gzip' }, 10_000);
      scrape = s.ok ? `answered in ${s.ms.toFixed(0)} ms` : `failed after ${s.ms.toFixed(0)} ms (${s.error})`;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  clearInterval(sampler);
  const during = rss();
  // The agent's last lag report covers the end of the flood, even after a blocked loop.
  await new Promise((r) => setTimeout(r, 600));
  latencies.sort((a, b) => a - b);
  report(
    `agent RSS, peak during the flood`,
    rssMax / 2 ** 20,
    'MiB',
    `${CONNS} connections × ${REQUESTS} pipelined GET /metrics, never read, ${SECONDS} s`,
  );
  report('agent RSS at the end of the flood', during, 'MiB');
  report('agent event-loop lag, max', lagMax, 'ms', 'monitorEventLoopDelay in the agent, 10 ms resolution');
  report(
    '/healthz latency, median',
    latencies[Math.floor(latencies.length / 2)] ?? Number.NaN,
    'ms',
    `${latencies.length} answered, ${failures} failed or not within 10 s`,
  );
  report('/healthz latency, max', latencies.at(-1) ?? Number.NaN, 'ms');
  child.send('stats');
  while (!stats) await new Promise((r) => setTimeout(r, 10));
  const { dropped, aborted, renderings, scrapes } = stats.stats;
  report(
    'flood connections the agent still holds at the end',
    stats.open,
    '',
    `of ${connected} connected; dropped ${dropped.max_connections} at max_connections, ${dropped.evicted_idle} idle ones closed for new ones and ${dropped.pipelining} for pipelining; ${scrapes} scrapes sent whole, ${aborted} aborted; ${renderings} renderings`,
    0,
  );
  console.log(`a scrape during the flood: ${scrape}`);

  // SIGTERM with the flood still connected.
  const t = performance.now();
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timeout = new Promise((resolve) => setTimeout(() => resolve('timeout'), 30_000));
  const how = await Promise.race([exited, timeout]);
  report(
    'SIGTERM to exit, flood connected',
    performance.now() - t,
    'ms',
    how === 'timeout' ? 'did not exit within 30 s' : '',
  );
  if (how === 'timeout') child.kill('SIGKILL');
  for (const s of sockets) s.destroy();
}

/** GET `url` with a deadline: whether it answered 200 with its whole body, and how long it took. */
async function timed(url, headers, ms) {
  const t = performance.now();
  try {
    const res = await fetch(url, { headers, signal: AbortSignal.timeout(ms) });
    await res.arrayBuffer();
    return { ok: res.status === 200, ms: performance.now() - t };
  } catch (err) {
    return { ok: false, ms: performance.now() - t, error: err.cause?.code ?? err.name };
  }
}
