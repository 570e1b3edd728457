import type { ConformanceOptions } from '@netmon/core/testkit';

/**
 * Its conformance runs beside its other tests, with their gRPC setup: run alone here, the no-timers check
 * counts the reconnect timers gRPC's process-wide subchannel pool keeps for an endpoint after the
 * exporter closed its channel.
 */
export const conformance: ConformanceOptions | { elsewhere: string } = {
  elsewhere: 'packages/exporters/src/otlp/exporter.test.ts',
};
