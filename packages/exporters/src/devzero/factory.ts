import { checkTlsFiles, defineExporter, PerAgent } from '@netmon/core';
import { HEALTH_CHECK, K8S_METADATA } from '@netmon/extensions';
import { devzeroExporterConfig } from './config.js';
import { DevzeroExporter } from './exporter.js';

/**
 * The framework creates an exporter per signal; a devzero id listed in flows and dns pipelines is one
 * exporter (one interval, one request, one queue), found here by host and id.
 */
const shared = new PerAgent<DevzeroExporter>();

export const devzeroExporterFactory = defineExporter({
  kind: 'exporter',
  type: 'devzero',
  stability: 'alpha',
  description:
    'Sends per-interval flows and DNS lookups to the DevZero control plane over gRPC, wire-compatible with zxporter-netmon, and serves its GET /metrics JSON on the health_check port.',
  signals: ['flows', 'dns'],
  // k8s_metadata only for the heartbeat: its pod_cache says whether the pod cache is standalone.
  optionalExtensions: [HEALTH_CHECK, K8S_METADATA],
  config: devzeroExporterConfig,
  validate: (config, { configDir }) => checkTlsFiles(config.tls, configDir),
  create(settings, config) {
    const signal = settings.signals[0];
    const core = shared.get(settings, () => {
      const made = new DevzeroExporter(settings, config);
      // Forgotten once stopped: a later Service on the same host builds a fresh one.
      made.onStopped = () => shared.forget(settings, made);
      return made;
    });
    return core.attach(signal, settings);
  },
});
