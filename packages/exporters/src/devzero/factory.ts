import { checkTlsFiles, defineExporter, SEND_QUEUE_METRICS } from '@netmon/core';
import { HEALTH_CHECK, K8S_METADATA } from '@netmon/extensions';
import { devzeroExporterConfig } from './config.js';
import { DEVZERO_METRICS } from './metrics.js';

export const devzeroExporterFactory = defineExporter({
  kind: 'exporter',
  type: 'devzero',
  stability: 'alpha',
  description:
    'Sends per-interval flows and DNS lookups to the DevZero control plane over gRPC, wire-compatible with zxporter-netmon, and serves its GET /metrics JSON on the health_check port.',
  signals: ['flows', 'dns'],
  // k8s_metadata for the heartbeat (its pod_cache says whether the pod cache is standalone) and the pods of
  // DNS lookups' clients.
  optionalExtensions: [HEALTH_CHECK, K8S_METADATA],
  config: devzeroExporterConfig,
  metrics: { ...DEVZERO_METRICS, ...SEND_QUEUE_METRICS },
  validate: (config, { configDir }) => checkTlsFiles(config.tls, configDir),
  // The implementation loads gRPC and protobuf: only when a config uses the exporter.
  create: async (settings, config) => new (await import('./exporter.js')).DevzeroExporter(settings, config),
});
