import { metrics } from '@opentelemetry/api';
import type { ComponentKind, ComponentSettings, Extension, Host, QueueState, Signal } from '../component.js';
import { StatusBoard } from '../status.js';
import { silentLogger } from '../telemetry/logger.js';
import type { CollectedMetrics } from '../telemetry/self-metrics.js';

/** Settings for creating one component outside a Service (tests, benchmarks, tools). */
export function testSettings(
  kind: ComponentKind,
  id: string,
  opts: {
    configDir?: string;
    extensions?: Map<string, Extension>;
    board?: StatusBoard;
    /** The signals the instance serves (default: flows; none for an extension). */
    signals?: readonly Signal[];
    /** What `host.selfMetrics()` returns (default: undefined, as without a reader). */
    selfMetrics?: () => Promise<CollectedMetrics | undefined>;
  } = {},
): ComponentSettings {
  const board = opts.board ?? new StatusBoard();
  const state = board.register(kind, id);
  const host: Host = {
    components: () => board.all(),
    queues: (): QueueState[] => [],
    phase: () => 'running',
    startedAt: () => Date.now(),
    selfMetrics: opts.selfMetrics ?? (async () => undefined),
  };
  return {
    id,
    kind,
    signals: opts.signals ?? (kind === 'extension' ? [] : ['flows']),
    logger: silentLogger(),
    meter: metrics.getMeterProvider().getMeter('test'),
    status: board.reporter(state),
    configDir: opts.configDir ?? process.cwd(),
    extensions: opts.extensions ?? new Map(),
    host,
  };
}
