import { describe, expect, it } from 'vitest';
import { otlpExporterConfig } from './config.js';
import { plaintext, target } from './grpc.js';

const issues = (input: unknown) => {
  const r = otlpExporterConfig.safeParse(input);
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join('::')}: ${i.message}`);
};

describe('otlp exporter config', () => {
  it('needs an endpoint (as the Collector) and fills every other default', () => {
    expect(issues({})).toEqual(['endpoint: required: host:port, e.g. otel-collector:4317']);
    expect(issues({ endpoint: 4317 })).toEqual([
      'endpoint: expected a string: host:port, e.g. otel-collector:4317',
    ]);
    expect(otlpExporterConfig.parse({ endpoint: 'localhost:4317' })).toEqual({
      endpoint: 'localhost:4317',
      tls: { insecure: false, insecure_skip_verify: false },
      headers: {},
      compression: 'gzip',
      timeout: 5000,
      sending_queue: { enabled: true, queue_size: 1_000_000 },
      retry_on_failure: {
        enabled: true,
        initial_interval: 5000,
        max_interval: 30_000,
        max_elapsed_time: 0,
        multiplier: 1.5,
        randomization_factor: 0.5,
      },
      temporality: 'delta',
      interval: 30_000,
      granularity: 'workload',
      labels: {
        include: [],
        exclude: [],
        dst_domain: { top: 50 },
        dst_prefix: { top: 20, ipv4_prefix_length: 24, ipv6_prefix_length: 64, with_domain: false },
        dns_question: { top: 100 },
      },
      max_series: 20_000,
      expiration: 300_000,
      resource: {},
      max_points_per_request: 10_000,
    });
  });

  it('takes a Collector-style otlp exporter block as written for the Collector', () => {
    const c = otlpExporterConfig.parse({
      endpoint: 'localhost:4317',
      tls: { insecure: true },
      headers: { authorization: 'Bearer x', 'x-scope-orgid': 'shop' },
      compression: 'gzip',
      timeout: '10s',
      sending_queue: { enabled: true, queue_size: 200_000 },
      retry_on_failure: {
        enabled: true,
        initial_interval: '1s',
        max_interval: '10s',
        max_elapsed_time: '2m',
      },
    });
    expect(c).toMatchObject({
      endpoint: 'localhost:4317',
      tls: { insecure: true },
      headers: { authorization: 'Bearer x', 'x-scope-orgid': 'shop' },
      timeout: 10_000,
      sending_queue: { enabled: true, queue_size: 200_000 },
      retry_on_failure: {
        enabled: true,
        initial_interval: 1000,
        max_interval: 10_000,
        max_elapsed_time: 120_000,
      },
    });
    expect(target(c)).toEqual({ address: 'localhost:4317', tls: false });
  });

  it('decides TLS as the Collector: on unless tls.insecure; https:// always; http:// only when off', () => {
    const tlsOf = (endpoint: string, tls: Record<string, unknown> = {}) =>
      !plaintext(otlpExporterConfig.parse({ endpoint, tls }));
    expect(tlsOf('collector:4317')).toBe(true);
    expect(tlsOf('collector:4317', { insecure: true })).toBe(false);
    expect(tlsOf('collector:4317', { insecure: true, ca_file: 'ca.pem' })).toBe(true);
    expect(tlsOf('https://collector:4317', { insecure: true })).toBe(true);
    expect(tlsOf('http://collector:4317', { insecure: true })).toBe(false);
    expect(target(otlpExporterConfig.parse({ endpoint: '[::1]:4317', tls: { insecure: true } }))).toEqual({
      address: '[::1]:4317',
      tls: false,
    });
    expect(issues({ endpoint: 'http://collector:4317' })).toEqual([
      'endpoint: "http://collector:4317": http:// does not turn TLS off (TLS is on unless tls::insecure is true, as in the OpenTelemetry Collector, whatever the scheme); for plaintext write collector:4317 with tls: {insecure: true}; for TLS write collector:4317 or https://collector:4317',
    ]);
  });

  it('takes TLS files, cumulative temporality and resource attributes', () => {
    const c = otlpExporterConfig.parse({
      endpoint: 'https://otel-collector.observability:4317',
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
    expect(target(c)).toEqual({ address: 'otel-collector.observability:4317', tls: true });
  });

  it('rejects what gRPC cannot use, saying why', () => {
    const at = (over: Record<string, unknown>) => issues({ endpoint: 'c:4317', ...over });
    expect(issues({ endpoint: 'collector' })).toEqual([
      'endpoint: "collector": the port is missing; expected host:port, e.g. otel-collector:4317',
    ]);
    expect(issues({ endpoint: 'grpc://collector:4317' })[0]).toMatch(
      /^endpoint: .*the scheme, when given, must be http:\/\/ or https:\/\//,
    );
    expect(issues({ endpoint: 'collector:4317/v1/metrics' })[0]).toMatch(/^endpoint: .*cannot have a path/);
    expect(issues({ endpoint: '::1:4317' })).toEqual([
      'endpoint: "::1:4317": an IPv6 address goes in brackets, e.g. [::1]:4317',
    ]);
    expect(at({ headers: { Authorization: 'x' } })[0]).toMatch(
      /^headers::Authorization: header names are lowercase/,
    );
    expect(at({ headers: { 'grpc-timeout': '1S' } })[0]).toMatch(/reserved/);
    expect(at({ tls: { cert_file: 'c.pem' } })).toEqual([
      'tls::key_file: cert_file and key_file go together (mutual TLS needs both)',
    ]);
    expect(at({ compression: 'zstd' })).toHaveLength(1);
    expect(at({ temporality: 'lowmemory' })).toHaveLength(1);
    expect(at({ granularity: 'container' })).toHaveLength(1);
    expect(at({ max_series: 1 })).toHaveLength(1);
    expect(at({ interval: '10' })[0]).toMatch(/not a duration/);
    expect(at({ max_points_per_request: 4 })).toHaveLength(1);
    expect(at({ retry_on_failure: { initial_interval: '10s', max_interval: '5s' } })).toEqual([
      'retry_on_failure::max_interval: max_interval must not be shorter than initial_interval',
    ]);
    // The old spellings are gone, not aliases.
    expect(at({ queue_size: 100_000 })).toHaveLength(1);
    expect(at({ retry: { initial_interval: '1s' } })).toHaveLength(1);
  });

  it('cumulative: expiration must be at least twice interval, or series restart from 0 between exports', () => {
    const at = (over: Record<string, unknown>) => issues({ endpoint: 'c:4317', ...over });
    expect(at({ temporality: 'cumulative', interval: '1m', expiration: '90s' })).toEqual([
      'expiration: with temporality cumulative, expiration (1m30s) must be at least twice interval (1m), i.e. 2m or more: a shorter one forgets series that skip a single export (under interval: every series at every export), and each comes back from 0, which the backend reads as a counter reset',
    ]);
    expect(at({ temporality: 'cumulative', interval: '1m', expiration: '2m' })).toEqual([]);
    expect(at({ temporality: 'cumulative', interval: '5m' })[0]).toMatch(
      /^expiration: .* i\.e\. 10m or more/,
    );
    // Delta loses nothing by forgetting: a series made again continues where its last point ended.
    expect(at({ temporality: 'delta', interval: '5m' })).toEqual([]);
  });

  it('sending_queue::queue_size must hold one interval at max_series, unless the queue is off', () => {
    const at = (over: Record<string, unknown>) => issues({ endpoint: 'c:4317', ...over });
    expect(at({ max_series: 1000, sending_queue: { queue_size: 4999 } })).toEqual([
      'sending_queue::queue_size: queue_size must hold one interval at max_series: at least 5000 (max_series × 5 points)',
    ]);
    expect(at({ max_series: 1000, sending_queue: { queue_size: 5000 } })).toEqual([]);
    expect(at({ max_series: 1000, sending_queue: { enabled: false, queue_size: 1 } })).toEqual([]);
  });
});
