import { checkServerTlsFiles, defineExporter } from '@netmon/core';
import { K8S_METADATA } from '@netmon/extensions';
import { prometheusExporterConfig } from './config.js';
import { PROMETHEUS_METRICS } from './metrics.js';

export const prometheusExporterFactory = defineExporter({
  kind: 'exporter',
  type: 'prometheus',
  stability: 'alpha',
  description:
    'Serves cumulative flow, cost and DNS counters (and kubezonnet’s cross-zone metric) for Prometheus to scrape at /metrics, with the agent’s self-metrics.',
  signals: ['flows', 'dns'],
  config: prometheusExporterConfig,
  optionalExtensions: [K8S_METADATA],
  metrics: PROMETHEUS_METRICS,
  validate: (config, { configDir }) => checkServerTlsFiles(config.tls, configDir),
  claims: (config) => [{ kind: 'listen', key: 'endpoint', endpoint: config.endpoint }],
  // The HTTP server, the series tables and the renderers load only when a config uses this exporter.
  create: async (settings, config) =>
    new (await import('./exporter.js')).PrometheusExporter(settings, config),
});
