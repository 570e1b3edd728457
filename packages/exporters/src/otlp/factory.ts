import { checkTlsFiles, defineExporter, SEND_QUEUE_METRICS } from '@netmon/core';
import { K8S_METADATA } from '@netmon/extensions';
import { otlpExporterConfig } from './config.js';
import { OTLP_METRICS } from './self-metrics.js';

export const otlpExporterFactory = defineExporter({
  kind: 'exporter',
  type: 'otlp',
  stability: 'alpha',
  description:
    'Sends flow metrics (bytes, packets, cost by workload and destination) or DNS lookup counts to an OTLP/gRPC endpoint, delta or cumulative, with retries.',
  signals: ['flows', 'dns'],
  config: otlpExporterConfig,
  optionalExtensions: [K8S_METADATA],
  metrics: { ...SEND_QUEUE_METRICS, ...OTLP_METRICS },
  validate: (config, { configDir }) => checkTlsFiles(config.tls, configDir),
  // gRPC, protobuf and the OpenTelemetry exporter load only when a config uses this exporter.
  create: async (settings, config) => new (await import('./exporter.js')).OtlpExporter(settings, config),
});
