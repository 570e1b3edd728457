// The exporter inside the real Service: one instance per exporter id, fed by a flows and a dns pipeline,
// started and shut down once, serving both on its one endpoint.
import {
  DnsBatch,
  defineExporter,
  defineReceiver,
  type Exporter,
  FlowBatch,
  Registry,
  resolveConfig,
  Service,
  type Signal,
  silentLogger,
} from '@netmon/core';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { PrometheusExporter } from './exporter.js';
import { prometheusExporterFactory } from './factory.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');

/** Polls until `check` is true (or fails after `ms`). */
async function until(check: () => Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('prometheus exporter in a Service', () => {
  it('one instance serves a flows and a dns pipeline: created, started and shut down once, both on one endpoint', async () => {
    const made: { signals: readonly Signal[]; exporter: PrometheusExporter }[] = [];
    const calls: string[] = [];
    const registry = new Registry([
      defineReceiver({
        kind: 'receiver',
        type: 'once',
        stability: 'development',
        description: 'one flow batch and one DNS batch at start',
        signals: ['flows', 'dns'],
        config: z.strictObject({}),
        create: (_s, _c, next) => ({
          start: () => {
            next.consume(
              FlowBatch.from([
                {
                  timeStart: T0,
                  timeEnd: T0 + 10_000,
                  protocol: 6,
                  srcIp: '10.0.1.5',
                  srcPort: 40000,
                  dstIp: '10.0.2.9',
                  dstPort: 8080,
                  txBytes: 100,
                  rxBytes: 2000,
                  txPackets: 2,
                  rxPackets: 3,
                  attributes: { 'src.k8s.namespace.name': 'shop' },
                },
              ]),
            );
            next.consume(
              DnsBatch.from([{ time: T0, clientIp: '10.0.0.1', question: 'api.stripe.com', answers: [] }]),
            );
          },
        }),
      }),
      defineExporter({
        ...prometheusExporterFactory,
        create: async (settings, config) => {
          const exporter = (await prometheusExporterFactory.create(settings, config)) as PrometheusExporter;
          made.push({ signals: settings.signals, exporter });
          const counted: Exporter = {
            start: async () => {
              calls.push('start');
              await exporter.start();
            },
            export: (b) => exporter.export(b),
            shutdown: async () => {
              calls.push('shutdown');
              await exporter.shutdown();
            },
          };
          return counted;
        },
      }),
    ]);
    const config = resolveConfig(
      {
        tree: {
          receivers: { once: {} },
          exporters: { prometheus: { endpoint: '127.0.0.1:0', self_metrics: false } },
          service: {
            pipelines: {
              flows: { receivers: ['once'], exporters: ['prometheus'] },
              dns: { receivers: ['once'], exporters: ['prometheus'] },
            },
          },
        },
        positions: new Map(),
        configDirs: new Map(),
      },
      registry,
      {},
    );
    const service = await Service.build(config, { logger: silentLogger() });
    await service.start();
    expect(made.map((m) => m.signals)).toEqual([['flows', 'dns']]);
    const e = made[0].exporter;
    expect(e).toBeInstanceOf(PrometheusExporter);
    const url = e.url() as string;
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);

    let body = '';
    await until(async () => {
      body = await (await fetch(url)).text();
      return body.includes('netmon_dns_lookups_total') && body.includes('netmon_flow_bytes_total');
    });
    expect(body.split('\n').filter((l) => /^netmon_(flow_bytes|dns_lookups)_total\{/.test(l))).toEqual([
      'netmon_flow_bytes_total{src_namespace="shop",protocol="6",direction="tx"} 100',
      'netmon_flow_bytes_total{src_namespace="shop",protocol="6",direction="rx"} 2000',
      'netmon_dns_lookups_total{dst_domain="api.stripe.com",dns_response_code="NOERROR"} 1',
    ]);
    // One status entry per signal, both describing the one instance.
    const entries = service.components().filter((c) => c.kind === 'exporter' && c.id === 'prometheus');
    expect(entries.map((c) => c.signal)).toEqual(['flows', 'dns']);
    expect(entries.map((c) => c.items.in)).toEqual([1, 1]);
    for (const c of entries) {
      expect(c.details?.()).toMatchObject({ signals: ['flows', 'dns'], url, series: { flows: 1, dns: 1 } });
    }

    await service.shutdown();
    expect(calls).toEqual(['start', 'shutdown']);
    await expect(fetch(url)).rejects.toThrow();
  });
});
