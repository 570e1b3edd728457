// Importing the factory (as the agent does for every component it knows) must not load gRPC or the
// OpenTelemetry exporter: only a config that uses the otlp exporter pays for them, in `create`.
import { testSettings } from '@netmon/core/testkit';
import { describe, expect, it, vi } from 'vitest';

const loaded = vi.hoisted(() => new Set<string>());
vi.mock('@opentelemetry/exporter-metrics-otlp-grpc', async (original) => {
  loaded.add('@opentelemetry/exporter-metrics-otlp-grpc');
  return original();
});
vi.mock('@grpc/grpc-js', async (original) => {
  loaded.add('@grpc/grpc-js');
  return original();
});
vi.mock('@opentelemetry/resources', async (original) => {
  loaded.add('@opentelemetry/resources');
  return original();
});

describe('otlp exporter factory', () => {
  it('loads gRPC, the OpenTelemetry exporter and resources only in create', async () => {
    const { otlpExporterFactory } = await import('./factory.js');
    const config = otlpExporterFactory.config.parse({ endpoint: '127.0.0.1:4317', tls: { insecure: true } });
    expect(await otlpExporterFactory.validate?.(config, { configDir: '.' })).toEqual([]);
    expect([...loaded]).toEqual([]);

    const e = await otlpExporterFactory.create(testSettings('exporter', 'otlp'), config);
    await e.shutdown?.();
    expect([...loaded].sort()).toEqual([
      '@grpc/grpc-js',
      '@opentelemetry/exporter-metrics-otlp-grpc',
      '@opentelemetry/resources',
    ]);
  });

  it('lists every self-metric its instances make', async () => {
    const { otlpExporterFactory } = await import('./factory.js');
    expect(Object.values(otlpExporterFactory.metrics ?? {}).map((m) => m.name)).toEqual([
      'netmon_exporter_queue_items',
      'netmon_exporter_sent_items',
      'netmon_exporter_send_failures',
      'netmon_exporter_dropped_items',
      'netmon_otlp_series',
      'netmon_otlp_overflow_items',
      'netmon_otlp_expired_series',
    ]);
  });
});
