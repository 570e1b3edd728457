import { defineExporter } from '@netmon/core';
import { K8S_METADATA } from '@netmon/extensions';
import { prometheusExporterConfig } from './config.js';
import { PrometheusExporter } from './exporter.js';

export const prometheusExporterFactory = defineExporter({
  kind: 'exporter',
  type: 'prometheus',
  stability: 'alpha',
  description:
    'Serves cumulative flow, cost and DNS counters (and kubezonnet’s cross-zone metric) for Prometheus to scrape at /metrics, with the agent’s self-metrics.',
  signals: ['flows', 'dns'],
  config: prometheusExporterConfig,
  optionalExtensions: [K8S_METADATA],
  create: (settings, config) => new PrometheusExporter(settings, config, settings.signals[0]),
});
