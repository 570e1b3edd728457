import { spawnSync } from 'node:child_process';
import { type Host, registerSelfMetrics, StatusBoard } from '@netmon/core';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { afterEach, describe, expect, it } from 'vitest';
import { Exposition } from './exposition.js';
import { FAMILY_NAMES } from './families.js';
import { familyOf, renderSelfMetrics, unitSuffix } from './self-metrics.js';

class Reader extends MetricReader {
  protected async onShutdown(): Promise<void> {}
  protected async onForceFlush(): Promise<void> {}
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

/** A provider with the framework's self-metrics and instruments as components make them. */
async function collect(): Promise<Awaited<ReturnType<Reader['collect']>>['resourceMetrics']> {
  const reader = new Reader();
  const provider = new MeterProvider({ readers: [reader] });
  const board = new StatusBoard();
  const state = board.register('receiver', 'conntrack', { signal: 'flows' });
  state.items.out = 42;
  const host: Host = {
    components: () => board.all(),
    queues: () => [
      { pipeline: 'flows', receiver: 'conntrack', capacity: 8, depth: 1, droppedBatches: 0, droppedItems: 0 },
    ],
    phase: () => 'running',
    startedAt: () => 0,
  };
  const stop = registerSelfMetrics(provider.getMeter('netmon'), host);
  cleanups.push(stop, () => provider.shutdown());
  // As components' settings.meter: one meter per component (processors per pipeline).
  for (const pipeline of ['flows', 'flows/cost']) {
    const m = provider.getMeter(`netmon/processor/delta@${pipeline}`);
    m.createObservableGauge('netmon_delta_state_bytes', { unit: 'By', description: 'State.' }).addCallback(
      (r) => r.observe(1024),
    );
  }
  const conntrack = provider.getMeter('netmon/receiver/conntrack');
  conntrack
    .createObservableCounter('netmon_conntrack_reads', { unit: '{read}', description: 'Reads.' })
    .addCallback((r) => r.observe(7));
  conntrack
    .createObservableGauge('netmon_conntrack_read_duration', { unit: 's', description: 'Last read.' })
    .addCallback((r) => r.observe(0.25));
  const otlp = provider.getMeter('netmon/exporter/otlp');
  // SendQueue names its component itself: the attribute is kept, not repeated.
  otlp
    .createObservableCounter('netmon_exporter_sent_items', { unit: '{item}', description: 'Sent "items".' })
    .addCallback((r) => r.observe(3, { component: 'otlp' }));
  const latency = otlp.createHistogram('netmon_exporter_send_latency', {
    unit: 'ms',
    description: 'Send latency.',
    advice: { explicitBucketBoundaries: [10, 100] },
  });
  latency.record(5);
  latency.record(50);
  latency.record(500);
  otlp.createUpDownCounter('netmon_exporter_in_flight', { unit: '{request}' }).add(2);
  // A plugin that took one of the exporter's names is left out rather than breaking the exposition.
  otlp.createCounter('netmon_flow_bytes', { unit: 'By' }).add(1);
  // The event-loop histogram's first samples: its 10 ms timer needs two ticks, later on a loaded machine.
  const hasLag = (m: Awaited<ReturnType<typeof reader.collect>>['resourceMetrics']) =>
    m.scopeMetrics.some((s) =>
      s.metrics.some(
        (x) => x.descriptor.name === 'netmon_process_event_loop_lag_p99_seconds' && x.dataPoints.length > 0,
      ),
    );
  for (let waited = 0; ; waited += 20) {
    await new Promise((r) => setTimeout(r, 20));
    const { resourceMetrics, errors } = await reader.collect();
    expect(errors).toEqual([]);
    if (hasLag(resourceMetrics) || waited > 5_000) return resourceMetrics;
  }
}

const render = async (format: 'text' | 'openmetrics') => {
  const out = new Exposition(format);
  renderSelfMetrics(await collect(), out, FAMILY_NAMES);
  out.end();
  return out.take();
};

describe('self-metrics names', () => {
  it('append the unit in words once, _total on counters, nothing for {annotations}', () => {
    expect(familyOf('netmon_delta_state_bytes', 'By', 2, undefined)).toEqual({
      name: 'netmon_delta_state_bytes',
      type: 'gauge',
      scale: 1,
    });
    expect(familyOf('netmon_process_cpu_seconds', 's', 3, true)).toEqual({
      name: 'netmon_process_cpu_seconds',
      type: 'counter',
      scale: 1,
    });
    // promtool wants base units: milliseconds become seconds, values scaled.
    expect(familyOf('netmon_send_latency', 'ms', 0, undefined)).toEqual({
      name: 'netmon_send_latency_seconds',
      type: 'histogram',
      scale: 0.001,
    });
    expect(familyOf('netmon_conntrack_read_duration', 's', 2, undefined)?.name).toBe(
      'netmon_conntrack_read_duration_seconds',
    );
    expect(familyOf('netmon_x_total', '{item}', 3, true)?.name).toBe('netmon_x');
    expect(familyOf('netmon.flow.io', 'By', 3, false)).toEqual({
      name: 'netmon_flow_io_bytes',
      type: 'gauge',
      scale: 1,
    });
    expect(unitSuffix('By/s', 'gauge')).toBe('bytes_per_second');
    expect(unitSuffix('1', 'gauge')).toBe('ratio');
    expect(unitSuffix('1', 'counter')).toBe('');
    expect(unitSuffix('{packet}/s', 'gauge')).toBe('per_second');
  });
});

describe('renderSelfMetrics', () => {
  it('renders the framework, process and component instruments, labelled by component', async () => {
    const text = await render('text');
    const lines = text.split('\n');
    const has = (line: string) => expect(lines).toContain(line);
    has('# TYPE netmon_component_items_total counter');
    has(
      'netmon_component_items_total{kind="receiver",component="conntrack",signal="flows",direction="out",outcome="success"} 42',
    );
    has('netmon_queue_depth{pipeline="flows",receiver="conntrack"} 1');
    has('netmon_delta_state_bytes{component="delta",pipeline="flows"} 1024');
    has('netmon_delta_state_bytes{component="delta",pipeline="flows/cost"} 1024');
    has('netmon_conntrack_reads_total{component="conntrack"} 7');
    has('netmon_conntrack_read_duration_seconds{component="conntrack"} 0.25');
    has('# HELP netmon_exporter_sent_items_total Sent "items".');
    has('netmon_exporter_sent_items_total{component="otlp"} 3');
    has('# TYPE netmon_exporter_send_latency_seconds histogram');
    has('netmon_exporter_send_latency_seconds_bucket{component="otlp",le="0.01"} 1');
    has('netmon_exporter_send_latency_seconds_bucket{component="otlp",le="0.1"} 2');
    has('netmon_exporter_send_latency_seconds_bucket{component="otlp",le="+Inf"} 3');
    has('netmon_exporter_send_latency_seconds_sum{component="otlp"} 0.555');
    has('netmon_exporter_send_latency_seconds_count{component="otlp"} 3');
    has('# TYPE netmon_exporter_in_flight gauge');
    has('netmon_exporter_in_flight{component="otlp"} 2');
    has('# TYPE netmon_process_cpu_seconds_total counter');
    expect(text).not.toContain('netmon_flow_bytes');
    const value = (name: string) => Number(lines.find((l) => l.startsWith(`${name} `))?.split(' ')[1]);
    for (const name of ['netmon_process_resident_memory_bytes', 'netmon_process_heap_used_bytes']) {
      expect(value(name), name).toBeGreaterThan(1e6);
    }
    for (const name of ['p99', 'mean', 'max']) {
      const lag = value(`netmon_process_event_loop_lag_${name}_seconds`);
      expect(lag, name).toBeGreaterThanOrEqual(0);
      expect(lag, name).toBeLessThan(5);
    }
    const user = lines.find((l) => l.startsWith('netmon_process_cpu_seconds_total{mode="user"} '));
    expect(Number(user?.split(' ')[1])).toBeGreaterThan(0);
    // Nothing has a doubled unit or _total.
    expect(text).not.toMatch(/_(bytes|seconds)_\1|_total_total/);
  });

  it('measures event-loop lag beyond the sampling interval: a 100 ms block shows as its max, to every collector', async () => {
    const reader = new Reader();
    const provider = new MeterProvider({ readers: [reader] });
    const host: Host = { components: () => [], queues: () => [], phase: () => 'running', startedAt: () => 0 };
    const stop = registerSelfMetrics(provider.getMeter('netmon'), host);
    cleanups.push(stop, () => provider.shutdown());
    const lagMax = async () => {
      const { resourceMetrics } = await reader.collect();
      const m = resourceMetrics.scopeMetrics
        .flatMap((x) => x.metrics)
        .find((x) => x.descriptor.name === 'netmon_process_event_loop_lag_max_seconds');
      return m?.dataPoints[0]?.value as number;
    };
    await new Promise((r) => setTimeout(r, 50));
    await lagMax();
    await new Promise((r) => setTimeout(r, 50));
    const until = Date.now() + 100;
    while (Date.now() < until); // a long synchronous task
    await new Promise((r) => setTimeout(r, 50));
    const max = await lagMax();
    expect(max).toBeGreaterThan(0.08);
    expect(max).toBeLessThan(1);
    // A second collector a moment later (an HA Prometheus pair) sees it too: collecting resets nothing.
    await new Promise((r) => setTimeout(r, 50));
    expect(await lagMax()).toBeGreaterThanOrEqual(max);
  });

  it('renders OpenMetrics with counter families named without _total', async () => {
    const text = await render('openmetrics');
    expect(text).toContain('# TYPE netmon_component_items counter\n');
    expect(text).toContain('# HELP netmon_exporter_sent_items Sent \\"items\\".\n');
    expect(text).toContain('# TYPE netmon_process_cpu_seconds counter\n');
    expect(text.endsWith('# EOF\n')).toBe(true);
  });

  it('passes promtool check metrics', async () => {
    const r = spawnSync('promtool', ['check', 'metrics'], { input: await render('text'), encoding: 'utf8' });
    if (r.error) {
      const reason =
        "promtool is not installed (Debian package 'prometheus'; scripts/bootstrap.sh installs it)";
      if (process.env.NETMON_REQUIRE_PRIVILEGED === '1')
        throw new Error(`NETMON_REQUIRE_PRIVILEGED=1 but ${reason}`);
      console.warn(`skipping promtool check: ${reason}`);
      return;
    }
    expect(`${r.stdout}${r.stderr}`).toBe('');
    expect(r.status).toBe(0);
  });
});
