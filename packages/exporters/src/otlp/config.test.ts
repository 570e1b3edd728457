import { describe, expect, it } from 'vitest';
import { otlpExporterConfig } from './config.js';

const issues = (input: unknown) => {
  const r = otlpExporterConfig.safeParse(input);
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join('::')}: ${i.message}`);
};

describe('otlp exporter config', () => {
  it('fills every default from {}', () => {
    expect(otlpExporterConfig.parse({})).toEqual({
      endpoint: 'http://localhost:4317',
      headers: {},
      tls: { insecure: false, insecure_skip_verify: false },
      compression: 'gzip',
      temporality: 'delta',
      interval: 30_000,
      granularity: 'workload',
      max_series: 20_000,
      expiration: 300_000,
      resource: {},
      queue_size: 1_000_000,
      timeout: 10_000,
      max_points_per_request: 10_000,
      retry: { initial_interval: 1000, max_interval: 30_000 },
    });
  });

  it('takes an https endpoint, headers, TLS files, cumulative temporality and resource attributes', () => {
    const c = otlpExporterConfig.parse({
      endpoint: 'https://otel-collector.observability:4317',
      headers: { authorization: 'Bearer x', 'x-scope-orgid': 'shop' },
      tls: { ca_file: 'ca.pem', cert_file: 'c.pem', key_file: 'k.pem' },
      compression: 'none',
      temporality: 'cumulative',
      interval: '10s',
      resource: { 'k8s.cluster.name': 'prod' },
    });
    expect(c.tls).toEqual({
      insecure: false,
      insecure_skip_verify: false,
      ca_file: 'ca.pem',
      cert_file: 'c.pem',
      key_file: 'k.pem',
    });
    expect(c.interval).toBe(10_000);
  });

  it('rejects what gRPC cannot use, saying why', () => {
    expect(issues({ endpoint: 'collector:4317' })[0]).toMatch(/scheme must be http:\/\/ .* or https:\/\//);
    expect(issues({ endpoint: 'grpc://collector:4317' })[0]).toMatch(/scheme must be http/);
    expect(issues({ endpoint: 'http://collector:4317/v1/metrics' })[0]).toMatch(/cannot have a path/);
    expect(issues({ endpoint: 'not a url' })[0]).toMatch(/not a URL/);
    expect(issues({ headers: { Authorization: 'x' } })[0]).toMatch(
      /^headers::Authorization: header names are lowercase/,
    );
    expect(issues({ headers: { 'grpc-timeout': '1S' } })[0]).toMatch(/reserved/);
    expect(issues({ tls: { cert_file: 'c.pem' } })).toEqual([
      'tls::key_file: cert_file and key_file go together (mutual TLS needs both)',
    ]);
    expect(issues({ compression: 'zstd' })).toHaveLength(1);
    expect(issues({ temporality: 'lowmemory' })).toHaveLength(1);
    expect(issues({ granularity: 'container' })).toHaveLength(1);
    expect(issues({ max_series: 1 })).toHaveLength(1);
    expect(issues({ interval: '10' })[0]).toMatch(/not a duration/);
    expect(issues({ max_points_per_request: 4 })).toHaveLength(1);
    expect(issues({ retry: { initial_interval: '10s', max_interval: '5s' } })).toEqual([
      'retry::max_interval: max_interval must not be shorter than initial_interval',
    ]);
  });

  it('cumulative: expiration must be at least twice interval, or series restart from 0 between exports', () => {
    expect(issues({ temporality: 'cumulative', interval: '1m', expiration: '90s' })).toEqual([
      'expiration: with temporality cumulative, expiration (1m30s) must be at least twice interval (1m), i.e. 2m or more: a shorter one forgets series that skip a single export (under interval: every series at every export), and each comes back from 0, which the backend reads as a counter reset',
    ]);
    expect(issues({ temporality: 'cumulative', interval: '1m', expiration: '2m' })).toEqual([]);
    expect(issues({ temporality: 'cumulative', interval: '5m' })[0]).toMatch(
      /^expiration: .* i\.e\. 10m or more/,
    );
    // Delta loses nothing by forgetting: a series made again continues where its last point ended.
    expect(issues({ temporality: 'delta', interval: '5m' })).toEqual([]);
  });

  it('queue_size must hold one interval at max_series', () => {
    expect(issues({ max_series: 1000, queue_size: 4999 })).toEqual([
      'queue_size: queue_size must hold one interval at max_series: at least 5000 (max_series × 5 points)',
    ]);
    expect(issues({ max_series: 1000, queue_size: 5000 })).toEqual([]);
  });
});
