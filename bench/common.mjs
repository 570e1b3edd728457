// What every benchmark shares: the report line, a deterministic generator, a forced GC and the settings a
// component gets outside a Service.
import { StatusBoard, silentLogger } from '@netmon/core';
import { metrics } from '@opentelemetry/api';

/** One measurement per line: name, value, unit, and what it was measured over. */
export function report(name, value, unit, extra = '', digits = 1) {
  console.log(
    `${name.padEnd(58)} ${value.toLocaleString('en-US', { maximumFractionDigits: digits }).padStart(14)} ${unit}${extra ? `  (${extra})` : ''}`,
  );
}

/** xorshift32: fast, deterministic. */
export function rng(seed) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

/** Collects garbage thoroughly when node runs with --expose-gc (heap readings need it). */
export function gc() {
  for (let i = 0; i < 3; i++) globalThis.gc?.();
}

/** ComponentSettings for one component outside a Service (silent logger, a no-op meter unless set). */
export function settings(kind, id, { configDir = process.cwd(), extensions = new Map() } = {}) {
  const board = new StatusBoard();
  const state = board.register(kind, id);
  return {
    id,
    kind,
    signals: kind === 'extension' ? [] : ['flows'],
    logger: silentLogger(),
    meter: metrics.getMeterProvider().getMeter('bench'),
    status: board.reporter(state),
    configDir,
    extensions,
    host: {
      components: () => board.all(),
      queues: () => [],
      phase: () => 'running',
      startedAt: () => Date.now(),
    },
  };
}
