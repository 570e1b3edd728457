// The otlp exporter's own self-metrics, declared apart from the implementation so the factory can list
// them without loading gRPC and the OpenTelemetry exporter.
import { defineMetrics } from '@netmon/core';

const ATTRIBUTES = {
  component: 'the exporter id',
  signal: 'flows or dns: whose series (one instance serves every signal whose pipelines list it)',
};

export const OTLP_METRICS = defineMetrics({
  series: {
    name: 'netmon_otlp_series',
    kind: 'gauge',
    unit: '{series}',
    description: 'Series the otlp exporter holds (each yields up to 5 data points per interval).',
    attributes: ATTRIBUTES,
  },
  overflow: {
    name: 'netmon_otlp_overflow_items',
    kind: 'counter',
    unit: '{item}',
    description:
      'Flows or lookups summed into the overflow series (otel.metric.overflow=true) because max_series was reached.',
    attributes: ATTRIBUTES,
  },
  expired: {
    name: 'netmon_otlp_expired_series',
    kind: 'counter',
    unit: '{series}',
    description: 'Series forgotten after receiving nothing for `expiration`.',
    attributes: ATTRIBUTES,
  },
});
