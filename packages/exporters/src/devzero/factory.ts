import { defineExporter, type Host } from '@netmon/core';
import { devzeroExporterConfig } from './config.js';
import { DevzeroExporter } from './exporter.js';

/**
 * The framework creates an exporter per signal; a devzero id listed in flows and dns pipelines is one
 * exporter (one interval, one request, one queue), found here by host and id.
 */
const shared = new WeakMap<Host, Map<string, DevzeroExporter>>();

export const devzeroExporterFactory = defineExporter({
  kind: 'exporter',
  type: 'devzero',
  stability: 'alpha',
  description:
    'Sends per-interval flows and DNS lookups to the DevZero control plane over gRPC, wire-compatible with zxporter-netmon, and serves its GET /metrics JSON on the health_check port.',
  signals: ['flows', 'dns'],
  optionalExtensions: ['health_check'],
  config: devzeroExporterConfig,
  create(settings, config, signal) {
    let byId = shared.get(settings.host);
    if (!byId) {
      byId = new Map();
      shared.set(settings.host, byId);
    }
    let core = byId.get(settings.id);
    if (!core) {
      core = new DevzeroExporter(settings, config);
      byId.set(settings.id, core);
      const made = core;
      // Gone from the map once stopped: a later Service on the same host builds a fresh one.
      made.onStopped = () => {
        if (byId.get(settings.id) === made) byId.delete(settings.id);
      };
    }
    return core.attach(signal, settings);
  },
});
