import type { Meter } from '@opentelemetry/api';
import type { Host } from '../component.js';
import { STATUSES } from '../status.js';

/**
 * The framework's own metrics, read from the counters it keeps at every edge (components never count
 * their own items). Observable instruments: nothing is recorded per batch, values are read on collection.
 */
export function registerSelfMetrics(meter: Meter, host: Host): void {
  const items = meter.createObservableCounter('netmon_component_items', {
    description:
      'Items (flows, DNS lookups) at each component edge, counted by the framework. direction=in: handed to the component, outcome success or failure (it failed on them); direction=out: passed on (processors), produced (receivers) or delivered (exporters). Queue drops are in netmon_queue_dropped_items.',
    unit: '{item}',
  });
  const status = meter.createObservableGauge('netmon_component_status', {
    description: '1 for the status each component is in, 0 for the others.',
  });
  const depth = meter.createObservableGauge('netmon_queue_depth', {
    description: 'Batches waiting in the queue between a receiver and a pipeline.',
    unit: '{batch}',
  });
  const capacity = meter.createObservableGauge('netmon_queue_capacity', {
    description: 'Batches the queue holds before it drops.',
    unit: '{batch}',
  });
  const dropped = meter.createObservableCounter('netmon_queue_dropped_items', {
    description: 'Items dropped because a receiver→pipeline queue was full.',
    unit: '{item}',
  });
  meter.addBatchObservableCallback(
    (r) => {
      for (const c of host.components()) {
        const base = { kind: c.kind, component: c.id, pipeline: c.pipeline ?? '', signal: c.signal ?? '' };
        // Outcomes partition each direction: in = success + failure.
        r.observe(items, c.items.in - c.items.failed, { ...base, direction: 'in', outcome: 'success' });
        r.observe(items, c.items.failed, { ...base, direction: 'in', outcome: 'failure' });
        r.observe(items, c.items.out, { ...base, direction: 'out', outcome: 'success' });
        for (const s of STATUSES) r.observe(status, c.status === s ? 1 : 0, { ...base, status: s });
      }
      for (const q of host.queues()) {
        const attrs = { pipeline: q.pipeline, receiver: q.receiver };
        r.observe(depth, q.depth, attrs);
        r.observe(capacity, q.capacity, attrs);
        r.observe(dropped, q.droppedItems, attrs);
      }
    },
    [items, status, depth, capacity, dropped],
  );
}
