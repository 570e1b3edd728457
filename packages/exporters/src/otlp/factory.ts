import { access, constants } from 'node:fs/promises';
import { defineExporter } from '@netmon/core';
import { otlpExporterConfig } from './config.js';
import { OtlpExporter } from './exporter.js';
import { tlsFiles } from './grpc.js';
import { K8S_METADATA } from './resource.js';

export const otlpExporterFactory = defineExporter({
  kind: 'exporter',
  type: 'otlp',
  stability: 'alpha',
  description:
    'Sends flow metrics (bytes, packets, cost by workload and destination) or DNS lookup counts to an OTLP/gRPC endpoint, delta or cumulative, with retries.',
  signals: ['flows', 'dns'],
  config: otlpExporterConfig,
  optionalExtensions: [K8S_METADATA],
  validate: async (config, { configDir }) => {
    const issues = [];
    for (const f of tlsFiles(config, configDir)) {
      try {
        await access(f.path, constants.R_OK);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? String(err);
        issues.push({ key: f.key, message: `cannot read ${f.path}: ${code}` });
      }
    }
    return issues;
  },
  create: (settings, config, signal) => new OtlpExporter(settings, config, signal),
});
