// prometheus exporter: rows/s into the series, scrape time as a separate client sees it (curl; text and
// gzip as Prometheus asks), the agent's CPU and event-loop lag while it serves the scrape, and its memory,
// with SERIES live flow label sets at pod granularity, on the built packages; then the real agent
// (bin/netmon replaying a file of SERIES label sets into the exporter): its RSS and a scrape.
//   make build && .tools/bin/node --expose-gc bench/prometheus.mjs
// SERIES=10000,100000 ROWS=1000000 BATCH=8192 SCRAPES=7 AGENT=1 by default. Each size runs in a fresh
// process so its RSS is its own. Prints one line per measurement; docs/PERFORMANCE.md keeps the figures.
import { execFile, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { FlowBatch } from '@netmon/core';
import { prometheusExporterFactory } from '@netmon/exporters';
import { PrometheusExporter } from '../packages/exporters/dist/prometheus/exporter.js';
import { gc, report, rng, settings } from './common.mjs';

const SERIES = (process.env.SERIES ?? '10000,100000').split(',').map(Number);
const ROWS = Number(process.env.ROWS ?? 1_000_000);
const BATCH = Number(process.env.BATCH ?? 8192);
const SCRAPES = Number(process.env.SCRAPES ?? 7);
const t0 = Date.parse('2026-01-01T00:00:00Z');
const CLASSES = ['same_zone', 'same_node', 'cross_zone', 'internet_egress', 'same_zone'];

if (!process.env.BENCH_ONE) {
  // One child per size: RSS never shrinks, so a second size in the same process would inherit the first.
  for (const n of SERIES) {
    const r = spawnSync(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url)], {
      env: { ...process.env, BENCH_ONE: String(n) },
      stdio: 'inherit',
    });
    if (r.status !== 0) process.exit(r.status ?? 1);
  }
  if (process.env.AGENT !== '0') {
    const idle = await agentMemory(0);
    report('agent RSS, no series', idle.rss, 'MiB', 'file receiver → prometheus exporter, after a scrape');
    for (const n of SERIES) {
      const a = await agentMemory(n);
      const label = n.toLocaleString('en-US');
      report(
        `agent RSS, ${label} series`,
        a.rss,
        'MiB',
        `+${(a.rss - idle.rss).toFixed(0)} MiB over no series`,
      );
      report(
        `agent scrape (OpenMetrics + gzip), ${label} series`,
        a.scrapeMs,
        'ms',
        `median of ${SCRAPES}, curl against bin/netmon`,
      );
    }
  }
  process.exit(0);
}

/** A free TCP port on 127.0.0.1. */
function freePort() {
  return new Promise((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Runs bin/netmon replaying `count` flow records, each its own label set, into the prometheus exporter;
 * once every record is counted, scrapes it SCRAPES times and reads the process' VmRSS.
 */
/** A dst_domain top N that names every domain of `count` label sets (one in ten has its own domain). */
function domainTop(count) {
  return Math.min(10_000, Math.max(1, Math.ceil(count / 10)));
}

async function agentMemory(count) {
  const dir = mkdtempSync(path.join(tmpdir(), 'netmon-bench-prom-'));
  try {
    const lines = [];
    for (let k = 0; k < count; k++) {
      const w = k % 1000;
      lines.push(
        JSON.stringify({
          time_start: '2026-01-01T00:00:00.000Z',
          time_end: '2026-01-01T00:00:10.000Z',
          family: 4,
          protocol: 6,
          src_ip: '10.0.0.1',
          src_port: 40000,
          dst_ip: '10.0.0.2',
          dst_port: 443,
          tx_bytes: 1000 + k,
          rx_bytes: 2000 + k,
          tx_packets: 10,
          rx_packets: 20,
          attributes: {
            'dst.k8s.namespace.name': `ns-${(k * 7) % 50}`,
            'dst.k8s.pod.name': `app-${(k * 7) % 1000}-6d4cf56db6-${k.toString(36)}`,
            'dst.k8s.workload.kind': 'Deployment',
            'dst.k8s.workload.name': `app-${(k * 7) % 1000}`,
            'dst.kind': 'pod',
            'src.k8s.namespace.name': `ns-${w % 50}`,
            'src.k8s.pod.name': `app-${w}-6d4cf56db6-${(k >> 2).toString(36).padStart(5, 'x')}`,
            'src.k8s.workload.kind': 'Deployment',
            'src.k8s.workload.name': `app-${w}`,
            'traffic.class': CLASSES[k % CLASSES.length],
          },
        }),
      );
    }
    writeFileSync(path.join(dir, 'flows.jsonl'), lines.length ? `${lines.join('\n')}\n` : '');
    const port = await freePort();
    writeFileSync(
      path.join(dir, 'agent.yaml'),
      `receivers: { file: { path: ./flows.jsonl } }
exporters: { prometheus: { endpoint: 127.0.0.1:${port}, granularity: pod, max_series: ${Math.max(2, count * 2)}, labels: { dst_domain: { top: ${domainTop(count)} } } } }
service: { pipelines: { flows: { receivers: [file], exporters: [prometheus] } } }
`,
    );
    const root = fileURLToPath(new URL('..', import.meta.url));
    const agent = spawn(path.join(root, 'bin/netmon'), ['run', '-c', path.join(dir, 'agent.yaml')], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    agent.stderr.resume();
    const url = `http://127.0.0.1:${port}/metrics`;
    const want = new RegExp(
      `^netmon_prometheus_series\\{table="flows",component="prometheus"\\} ${count}$`,
      'm',
    );
    for (let i = 0; ; i++) {
      const text = await fetch(url)
        .then((r) => r.text())
        .catch(() => '');
      if (want.test(text)) break;
      if (i > 600) throw new Error(`agent did not reach ${count} series`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const times = [];
    const accept =
      'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1';
    for (let i = 0; i < SCRAPES; i++) {
      times.push((await scrape(url, { accept, 'accept-encoding': 'gzip' })).ms);
    }
    const status = readFileSync(`/proc/${agent.pid}/status`, 'utf8');
    const rss = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1]) / 1024;
    const exited = new Promise((r) => agent.once('exit', r));
    agent.kill('SIGTERM');
    await exited;
    return { rss, scrapeMs: median(times) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const n = Number(process.env.BENCH_ONE);
const label = n.toLocaleString('en-US');

/**
 * Batches whose rows fall on exactly `n` label sets (pod granularity): pods of a thousand workloads in 50
 * namespaces talking to each other, a fifth of them across zones, some to internet domains. Made one at
 * a time, columnar (as receivers and k8s_attributes make them), so the benchmark's own garbage stays small.
 */
function* makeBatches(rows, seed) {
  const next = rng(seed);
  const pod = (i) => {
    const w = i % 1000;
    return [`ns-${w % 50}`, `app-${w}`, `app-${w}-6d4cf56db6-${i.toString(36).padStart(5, 'x')}`];
  };
  for (let done = 0; done < rows; done += BATCH) {
    const size = Math.min(BATCH, rows - done);
    const b = new FlowBatch(size, 'delta');
    b.length = size;
    const col = (key) => b.ensureColumn(key, 'string');
    const [srcNs, srcKind, srcWl, srcPod, dstNs, dstKind, dstWl, dstPod, kind, cls, domain] = [
      'src.k8s.namespace.name',
      'src.k8s.workload.kind',
      'src.k8s.workload.name',
      'src.k8s.pod.name',
      'dst.k8s.namespace.name',
      'dst.k8s.workload.kind',
      'dst.k8s.workload.name',
      'dst.k8s.pod.name',
      'dst.kind',
      'traffic.class',
      'dst.domain',
    ].map(col);
    const set = (c, r, v) => {
      c.codes[r] = c.code(v);
    };
    const cost = b.ensureColumn('cost.usd', 'number');
    for (let r = 0; r < size; r++) {
      // Label set k = (src pod, dst pod or domain, class), all functions of k; the first n rows make all n.
      const k = done + r < n ? done + r : next() % n;
      const [sNs, sWl, sPod] = pod(k % Math.max(1, n / 4));
      set(srcNs, r, sNs);
      set(srcKind, r, 'Deployment');
      set(srcWl, r, sWl);
      set(srcPod, r, sPod);
      if (k % 10 === 9) {
        set(cls, r, 'internet_egress');
        set(kind, r, 'external_public');
        set(domain, r, `api-${k}.example.com`);
      } else {
        const [dNs, dWl, dPod] = pod((k * 7919) % Math.max(1, n / 4));
        set(cls, r, CLASSES[(k >> 2) % CLASSES.length]);
        set(kind, r, 'pod');
        set(dstNs, r, dNs);
        set(dstKind, r, 'Deployment');
        set(dstWl, r, dWl);
        set(dstPod, r, `${dPod}-${k}`);
      }
      cost.values[r] = 0.000001 * (next() % 100);
      b.family[r] = 4;
      b.protocol[r] = 6;
      b.timeStart[r] = t0;
      b.timeEnd[r] = t0 + 10_000;
      b.txBytes[r] = next() % 100_000;
      b.rxBytes[r] = next() % 1_000_000;
      b.txPackets[r] = 10;
      b.rxPackets[r] = 20;
    }
    yield b.seal();
  }
}

/** One scrape by curl (another process, as Prometheus is): wall time to the last byte, bytes, our CPU. */
function scrape(url, headers) {
  const args = ['-sS', '-o', '/dev/null', '-w', '%{time_total} %{size_download}'];
  for (const [k, v] of Object.entries(headers)) args.push('-H', `${k}: ${v}`);
  args.push(url);
  const cpu = process.cpuUsage();
  return new Promise((resolve, reject) => {
    execFile('curl', args, (err, out) => {
      if (err) return reject(err);
      const used = process.cpuUsage(cpu);
      const [seconds, bytes] = out.split(' ').map(Number);
      resolve({ ms: seconds * 1000, bytes, cpuMs: (used.user + used.system) / 1000 });
    });
  });
}

function median(xs) {
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
}
function mib(bytes) {
  return bytes / 2 ** 20;
}

gc();
const base = process.memoryUsage();
const config = prometheusExporterFactory.config.parse({
  endpoint: '127.0.0.1:0',
  granularity: 'pod',
  max_series: n * 2,
  // Every tenth label set has a domain of its own: name them all, so the table holds n label sets.
  labels: { dst_domain: { top: domainTop(n) } },
  self_metrics: false,
});
const exporter = new PrometheusExporter(settings('exporter', 'prometheus'), config);
await exporter.start();

// The first n rows create the n series; ROWS more land on existing ones (steady state). Only the time in
// export() counts, not making the batches.
let createMs = 0;
for (const b of makeBatches(n, 1)) {
  const s = performance.now();
  exporter.export(b);
  createMs += performance.now() - s;
}
const tables = exporter.tables;
report(
  `add, creating ${label} series`,
  (n / createMs) * 1000,
  'rows/s',
  `${tables.map((x) => `${x.family} ${x.table.size.toLocaleString('en-US')}`).join(', ')} series`,
  0,
);
let steadyMs = 0;
for (const b of makeBatches(ROWS, 2)) {
  const s = performance.now();
  exporter.export(b);
  steadyMs += performance.now() - s;
}
report(
  `add, ${ROWS.toLocaleString('en-US')} rows onto ${label} series`,
  (ROWS / steadyMs) * 1000,
  'rows/s',
  '',
  0,
);

const url = exporter.url();
const prometheusAccept =
  'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1';
const first = await scrape(url, { 'accept-encoding': 'identity' });
report(`first scrape, ${label} series`, first.ms, 'ms', 'builds the cached label text of every series');
gc();
const after = process.memoryUsage();
const body = Buffer.concat(await exporter.endpoint.render('text')).toString();
const samples = body.split('\n').filter((l) => l && !l.startsWith('#')).length;
for (const [name, headers] of [
  ['text', { 'accept-encoding': 'identity' }],
  ['OpenMetrics + gzip, as Prometheus asks', { accept: prometheusAccept, 'accept-encoding': 'gzip' }],
]) {
  const runs = [];
  const lag = monitorEventLoopDelay({ resolution: 5 });
  lag.enable();
  for (let i = 0; i < SCRAPES; i++) {
    // Flows keep arriving between scrapes, as they do between Prometheus' (15–60 s apart): without a
    // change, scrapes within a second of each other share one rendering and measure only the sending.
    exporter.export(makeBatches(1, 100 + i).next().value);
    runs.push(await scrape(url, headers));
  }
  lag.disable();
  report(
    `scrape (${name}), ${label} series`,
    median(runs.map((r) => r.ms)),
    'ms',
    `median of ${SCRAPES}; ${samples.toLocaleString('en-US')} samples, ${mib(runs[0].bytes).toFixed(1)} MiB sent; agent CPU ${Math.round(median(runs.map((r) => r.cpuMs)))} ms; event loop max lag ${(lag.max / 1e6).toFixed(0)} ms`,
  );
}

const heap = after.heapUsed - base.heapUsed;
const external = after.external - base.external;
report(
  `memory, ${label} series`,
  mib(heap + external),
  'MiB',
  `heap +${mib(heap).toFixed(1)} MiB, typed arrays +${mib(external).toFixed(1)} MiB: ${Math.round((heap + external) / n)} B per label set, label text included`,
);
report(
  `RSS with ${label} series`,
  mib(after.rss),
  'MiB',
  'the whole benchmark process, after the first scrape',
);
await exporter.shutdown();
