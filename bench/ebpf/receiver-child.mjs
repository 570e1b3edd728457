// The process bench/ebpf/receiver.mjs measures: the real ebpf receiver, made by its factory, on one cgroup,
// handing its batches to a sink that drops them. Nothing else runs here, so the process's CPU time and
// peak RSS are the receiver's (plus Node's own). The first read is a warm-up (its interval began before
// the flows did); the next READS are measured. Prints one JSON line.
//
//   CGROUP=<path> INTERVAL_MS=5000 MAX_FLOWS=131072 READS=4 node bench/ebpf/receiver-child.mjs
import { performance } from 'node:perf_hooks';
import { ebpfReceiverFactory } from '@netmon/receivers';
import { settings } from '../common.mjs';

const CGROUP = process.env.CGROUP;
const INTERVAL_MS = Number(process.env.INTERVAL_MS ?? 5000);
const MAX_FLOWS = Number(process.env.MAX_FLOWS ?? 131072);
const READS = Number(process.env.READS ?? 4);
if (!CGROUP) throw new Error('CGROUP is not set');

const rssStart = process.memoryUsage().rss;
const reads = [];
let resolvedAt = 0;
let pending;
let measureFrom;
let finish;
const finished = new Promise((resolve) => {
  finish = resolve;
});

// The sink drops the batch; it only notes when the receiver handed it over, so the time from the
// addon's result to the batch (orientation, pod columns, coverage) is known.
const sink = {
  consume(batch) {
    // The final read at shutdown is not one of the measured intervals.
    if (reads.length > READS) return;
    const buildMs = performance.now() - resolvedAt;
    reads.push({ ...pending, buildMs, rows: batch.length });
    if (reads.length === 1) measureFrom = { cpu: process.cpuUsage(), t: performance.now() };
    if (reads.length === READS + 1) finish();
  },
  ready: () => Promise.resolve(),
};

const receiver = await ebpfReceiverFactory.create(
  settings('receiver', 'ebpf/bench'),
  ebpfReceiverFactory.config.parse({
    cgroup_path: CGROUP,
    read_interval: `${INTERVAL_MS}ms`,
    max_flows: MAX_FLOWS,
  }),
  sink,
);
receiver.start();

// The addon's handle, put behind a wrapper that times each read as the receiver sees it: from the call
// to the resolved promise (the libuv pool's work plus the hand-over of the columns on this thread).
const handle = receiver.handle;
if (!handle || typeof handle.read !== 'function') throw new Error('the receiver has no handle after start()');
receiver.handle = {
  async read() {
    const calledAt = performance.now();
    const r = await handle.read();
    resolvedAt = performance.now();
    pending = {
      wallMs: resolvedAt - calledAt,
      durationMs: r.durationMs,
      swapMs: r.swapMs,
      entries: r.entries,
      paired: r.paired,
      lostPackets: r.lostPackets,
      lostBytes: r.lostBytes,
    };
    return r;
  },
  close: () => handle.close(),
};

await finished;
const cpu = process.cpuUsage(measureFrom.cpu);
const seconds = (performance.now() - measureFrom.t) / 1000;
const maxRssKiB = process.resourceUsage().maxRSS;
await receiver.shutdown();
console.log(
  JSON.stringify({
    interval_ms: INTERVAL_MS,
    max_flows: MAX_FLOWS,
    warmup: reads[0],
    reads: reads.slice(1),
    cpu_ms: (cpu.user + cpu.system) / 1000,
    cpu_user_ms: cpu.user / 1000,
    cpu_system_ms: cpu.system / 1000,
    seconds,
    cpu_percent: ((cpu.user + cpu.system) / 1e6 / seconds) * 100,
    rss_start_mib: rssStart / 2 ** 20,
    rss_peak_mib: (maxRssKiB * 1024) / 2 ** 20,
    counters: receiver.counters,
  }),
);
