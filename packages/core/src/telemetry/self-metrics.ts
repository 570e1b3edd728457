import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { Meter } from '@opentelemetry/api';
import type { Host } from '../component.js';
import { STATUSES } from '../status.js';
import { NETMON_VERSION } from '../version.js';
import { defineMetrics, observeMetrics } from './declare.js';

const COMPONENT_ATTRIBUTES = {
  kind: 'receiver, processor, exporter or extension',
  component: 'the component id (`type[/name]`)',
  pipeline: 'the pipeline, for processors (made once per pipeline); empty otherwise',
  signal: 'flows or dns; empty for extensions',
};

/** The framework's own metrics: what it counts at every component edge and queue. */
export const SERVICE_METRICS = defineMetrics({
  items: {
    name: 'netmon_component_items',
    kind: 'counter',
    unit: '{item}',
    description:
      'Items (flows, DNS lookups) at each component edge, counted by the framework. direction=in: handed to the component, outcome success or failure (it failed on them, or a processor returned something that is not a batch); direction=out: passed on (processors), delivered (exporters), or for receivers handed over, with outcome success; for processors also filtered (rows it did not pass on by design — left out of the batch it returned, or all when it returned null: a filter, delta’s baselines and unchanged flows, classify’s second copy of a connection) and dropped (the items of a batch it returned undefined for: a plugin that forgot its return), and for receivers also refused (no pipeline took them: every queue was full with drop_newest, or shutdown had closed the pipelines). Queue drops are in netmon_queue_dropped_items.',
    attributes: {
      ...COMPONENT_ATTRIBUTES,
      direction: 'in or out',
      outcome:
        'success, failure (in), filtered or dropped (a processor’s out: left out by design, or a batch it returned nothing for), refused (a receiver’s out)',
    },
  },
  status: {
    name: 'netmon_component_status',
    kind: 'gauge',
    description: '1 for the status each component is in, 0 for the others.',
    attributes: { ...COMPONENT_ATTRIBUTES, status: STATUSES.join(', ') },
  },
  queueDepth: {
    name: 'netmon_queue_depth',
    kind: 'gauge',
    unit: '{batch}',
    description: 'Batches waiting in the queue between a receiver and a pipeline.',
    attributes: { pipeline: 'the pipeline', receiver: 'the receiver id' },
  },
  queueCapacity: {
    name: 'netmon_queue_capacity',
    kind: 'gauge',
    unit: '{batch}',
    description: 'Batches the queue holds before it drops.',
    attributes: { pipeline: 'the pipeline', receiver: 'the receiver id' },
  },
  queueDropped: {
    name: 'netmon_queue_dropped_items',
    kind: 'counter',
    unit: '{item}',
    description: 'Items dropped because a receiver→pipeline queue was full.',
    attributes: { pipeline: 'the pipeline', receiver: 'the receiver id' },
  },
  buildInfo: {
    name: 'netmon_build_info',
    kind: 'gauge',
    description: 'Always 1; the labels name the running netmon version, the Node.js version and the CPU.',
    attributes: {
      version: 'netmon’s version',
      nodejs_version: 'Node.js’ version',
      arch: 'the CPU architecture',
    },
  },
});

/** The process' health: event-loop lag, memory, CPU. */
export const PROCESS_METRICS = defineMetrics({
  lagP99: {
    name: 'netmon_process_event_loop_lag_p99_seconds',
    kind: 'gauge',
    unit: 's',
    description:
      '99th percentile of the event loop’s delay over the last 1–2 minutes (the previous minute and the current one so far; the higher of the two): how late timers and I/O callbacks ran.',
  },
  lagMean: {
    name: 'netmon_process_event_loop_lag_mean_seconds',
    kind: 'gauge',
    unit: 's',
    description: 'Mean event-loop delay over the last 1–2 minutes.',
  },
  lagMax: {
    name: 'netmon_process_event_loop_lag_max_seconds',
    kind: 'gauge',
    unit: 's',
    description: 'Longest event-loop delay over the last 1–2 minutes (one long synchronous task).',
  },
  rss: {
    name: 'netmon_process_resident_memory_bytes',
    kind: 'gauge',
    unit: 'By',
    description: 'Resident set size of the agent process.',
  },
  heapUsed: {
    name: 'netmon_process_heap_used_bytes',
    kind: 'gauge',
    unit: 'By',
    description: 'V8 heap in use (JavaScript objects).',
  },
  heapTotal: {
    name: 'netmon_process_heap_total_bytes',
    kind: 'gauge',
    unit: 'By',
    description: 'V8 heap reserved.',
  },
  external: {
    name: 'netmon_process_external_memory_bytes',
    kind: 'gauge',
    unit: 'By',
    description:
      'Memory outside the V8 heap held by JavaScript objects: typed arrays of batches and tables, buffers.',
  },
  cpu: {
    name: 'netmon_process_cpu_seconds',
    kind: 'counter',
    unit: 's',
    description: 'CPU time the agent process used, by mode (user, system).',
    attributes: { mode: 'user or system' },
  },
});

/**
 * The agent's self-metrics as its MetricReader collected them: structurally the part of
 * `@opentelemetry/sdk-metrics`' ResourceMetrics that exporters read (the core does not depend on the SDK,
 * and an SDK ResourceMetrics is assignable to this type).
 */
export interface CollectedMetrics {
  readonly scopeMetrics: readonly CollectedScope[];
}

export interface CollectedScope {
  /** The meter's name: `netmon` for the framework, `netmon/<kind>/<id>[@<pipeline>]` for a component. */
  readonly scope: { readonly name: string };
  readonly metrics: readonly CollectedMetric[];
}

export interface CollectedMetric {
  readonly descriptor: { readonly name: string; readonly description: string; readonly unit: string };
  /** The SDK's DataPointType: 0 histogram, 1 exponential histogram, 2 gauge, 3 sum. */
  readonly dataPointType: number;
  /** Sums only: a counter (true) or an up-down counter (false). */
  readonly isMonotonic?: boolean;
  readonly dataPoints: readonly CollectedPoint[];
}

export interface CollectedPoint {
  readonly attributes: Readonly<Record<string, unknown>>;
  /** A number for sums and gauges; `{ buckets: { boundaries, counts }, sum?, count }` for histograms. */
  readonly value: unknown;
}

/** Parses a component meter's scope name (`netmon/<kind>/<id>[@<pipeline>]`); undefined for others. */
export function componentOfScope(scope: string): { kind: string; id: string; pipeline?: string } | undefined {
  const m = /^netmon\/(receiver|processor|exporter|extension)\/([^@]+)(?:@(.+))?$/.exec(scope);
  if (!m) return undefined;
  return m[3] === undefined ? { kind: m[1], id: m[2] } : { kind: m[1], id: m[2], pipeline: m[3] };
}

/**
 * The framework's own metrics, read from the counters it keeps at every edge (components never count
 * their own items), and the process' health: event-loop lag, memory, CPU. Observable instruments: nothing
 * is recorded per batch, values are read on collection. Returns a function that unregisters them and
 * stops the event-loop monitor.
 */
export function registerSelfMetrics(meter: Meter, host: Host): () => void {
  const components = observeMetrics(meter, SERVICE_METRICS, (r) => {
    for (const c of host.components()) {
      const base = { kind: c.kind, component: c.id, pipeline: c.pipeline ?? '', signal: c.signal ?? '' };
      // Outcomes partition each direction: in = success + failure; a receiver's out = success + refused; a
      // processor's successful in = out success + filtered + dropped (unless it returns more rows than it got).
      r.items(c.items.in - c.items.failed, { ...base, direction: 'in', outcome: 'success' });
      r.items(c.items.failed, { ...base, direction: 'in', outcome: 'failure' });
      r.items(c.items.out, { ...base, direction: 'out', outcome: 'success' });
      if (c.kind === 'receiver') {
        r.items(c.items.refused ?? 0, { ...base, direction: 'out', outcome: 'refused' });
      } else if (c.kind === 'processor') {
        r.items(c.items.filtered ?? 0, { ...base, direction: 'out', outcome: 'filtered' });
        r.items(c.items.dropped, { ...base, direction: 'out', outcome: 'dropped' });
      }
      for (const s of STATUSES) r.status(c.status === s ? 1 : 0, { ...base, status: s });
    }
    for (const q of host.queues()) {
      const attrs = { pipeline: q.pipeline, receiver: q.receiver };
      r.queueDepth(q.depth, attrs);
      r.queueCapacity(q.capacity, attrs);
      r.queueDropped(q.droppedItems, attrs);
    }
    // The Prometheus *_build_info convention: a constant 1 whose labels say what runs, so a query can
    // group or join any other series by version (which nodes still run the old agent after a rollout).
    r.buildInfo(1, { version: NETMON_VERSION, nodejs_version: process.versions.node, arch: process.arch });
  });
  const stopProcess = registerProcessMetrics(meter);
  return () => {
    components.close();
    stopProcess();
  };
}

const LOOP_RESOLUTION_MS = 10;
/**
 * The event-loop lag is measured over fixed windows of this length, whoever collects and how often: each
 * collection sees the previous window and the current one so far (one to two windows). Resetting at each
 * collection instead would give each of two scrapers (an HA Prometheus pair) only the lag since the
 * other's scrape. A minute: every spike is seen by any collector that collects at least once a minute.
 */
const LOOP_WINDOW_MS = 60_000;

/** Lag figures (ns, as perf_hooks gives them) of one window. */
interface LoopWindow {
  count: number;
  p99: number;
  mean: number;
  max: number;
}

/**
 * Event-loop lag (p99, mean, max over the last one to two minutes, from perf_hooks' event-loop delay
 * histogram), resident and heap memory, CPU time. The histogram samples only while registered.
 */
function registerProcessMetrics(meter: Meter): () => void {
  // A 10 ms timer samples the loop: next to nothing at that rate. The histogram holds the time between
  // two ticks, so the lag is what exceeds the 10 ms.
  const loop = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
  loop.enable();
  const lag = (ns: number) => Math.max(0, ns / 1e9 - LOOP_RESOLUTION_MS / 1e3);
  const current = (): LoopWindow | undefined =>
    loop.count > 0
      ? { count: loop.count, p99: loop.percentile(99), mean: loop.mean, max: loop.max }
      : undefined;
  let previous: LoopWindow | undefined;
  const rotate = setInterval(() => {
    previous = current();
    loop.reset();
  }, LOOP_WINDOW_MS);
  rotate.unref();
  const observed = observeMetrics(meter, PROCESS_METRICS, (r) => {
    const now = current();
    // Both windows: p99 at most the higher of theirs, the mean weighted by their samples, the longest.
    const windows = [previous, now].filter((w): w is LoopWindow => w !== undefined);
    // No sample yet (collected within one resolution tick of the start): report nothing rather than NaN.
    if (windows.length > 0) {
      const count = windows.reduce((n, w) => n + w.count, 0);
      r.lagP99(lag(Math.max(...windows.map((w) => w.p99))));
      r.lagMean(lag(windows.reduce((n, w) => n + w.mean * w.count, 0) / count));
      r.lagMax(lag(Math.max(...windows.map((w) => w.max))));
    }
    const mem = process.memoryUsage();
    r.rss(mem.rss);
    r.heapUsed(mem.heapUsed);
    r.heapTotal(mem.heapTotal);
    r.external(mem.external);
    const usage = process.cpuUsage();
    r.cpu(usage.user / 1e6, { mode: 'user' });
    r.cpu(usage.system / 1e6, { mode: 'system' });
  });
  return () => {
    observed.close();
    clearInterval(rotate);
    loop.disable();
  };
}
