import { checkTlsFiles, defineExporter } from '@netmon/core';
import { K8S_METADATA } from '@netmon/extensions';
import { otlpExporterConfig } from './config.js';
import { OtlpExporter } from './exporter.js';

export const otlpExporterFactory = defineExporter({
  kind: 'exporter',
  type: 'otlp',
  stability: 'alpha',
  description:
    'Sends flow metrics (bytes, packets, cost by workload and destination) or DNS lookup counts to an OTLP/gRPC endpoint, delta or cumulative, with retries.',
  signals: ['flows', 'dns'],
  config: otlpExporterConfig,
  optionalExtensions: [K8S_METADATA],
  validate: (config, { configDir }) => checkTlsFiles(config.tls, configDir),
  create: (settings, config) => new OtlpExporter(settings, config, settings.signals[0]),
});
