import { DnsBatch, FlowBatch } from '@netmon/core';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { describe, expect, it } from 'vitest';
import { DURATION_BOUNDS, DURATION_BUCKETS, DURATION_COUNT, DURATION_SUM } from '../series/dns-series.js';
import { flowLabelSelection } from '../series/selection-config.js';
import {
  AttributeCache,
  attributeSize,
  chunk,
  DnsAggregate,
  expire,
  FlowAggregate,
  hrTime,
  MAX_REQUEST_BYTES,
  requestSize,
  takeSnapshot,
  utf8,
  varintSize,
} from './metrics.js';

const options = (now: number, previousEnd = 0) => ({
  temporality: 'delta' as const,
  resource: resourceFromAttributes({ 'service.name': 'netmon' }),
  scope: { name: 'netmon', version: '0.1.0' },
  now,
  previousEnd,
});

function flows(n: number, from = 0) {
  return FlowBatch.from(
    Array.from({ length: n }, (_, i) => ({
      timeStart: 0,
      timeEnd: 1,
      protocol: 6,
      srcIp: '10.0.0.1',
      srcPort: 1,
      dstIp: '10.0.0.2',
      dstPort: 2,
      txBytes: 1,
      rxBytes: 2,
      txPackets: 1,
      rxPackets: 1,
      attributes: { 'src.k8s.workload.name': `w-${from + i}`, 'traffic.class': 'cross_zone' },
    })),
  );
}

describe('otlp metrics', () => {
  it('utf8 counts bytes as TextEncoder writes them', () => {
    for (const s of [
      '',
      'abc',
      'é',
      'bücher',
      '中国',
      '😀',
      'a😀b',
      '\ud800',
      'x\udc00y',
      '\ud800\ud800',
      'Ω'.repeat(300),
    ])
      expect(utf8(s), JSON.stringify(s)).toBe(new TextEncoder().encode(s).length);
  });

  it('varintSize', () => {
    expect([0, 127, 128, 16383, 16384, 2 ** 21 - 1, 2 ** 21, 2 ** 28].map(varintSize)).toEqual([
      1, 1, 2, 2, 3, 3, 4, 5,
    ]);
  });

  it('hrTime', () => {
    expect(hrTime(1_767_225_600_123)).toEqual([1_767_225_600, 123_000_000]);
  });

  it('cuts by points and by bytes, never splitting a series, and covers every series once', () => {
    const a = new FlowAggregate('workload', 100_000);
    a.add(flows(1000), 1);
    const snap = takeSnapshot(a, new AttributeCache(a), options(2));
    if (!snap) throw new Error('no snapshot');
    const byPoints = chunk(snap, 10);
    expect(byPoints.map((c) => c.points)).toEqual(Array(500).fill(8));
    const bySize = chunk(snap, 1_000_000, 20_000);
    expect(bySize.length).toBeGreaterThan(3);
    let next = 0;
    for (const c of bySize) {
      expect(c.from).toBe(next);
      expect(c.bytes).toBe(requestSize(snap, c.from, c.to));
      expect(c.bytes).toBeLessThanOrEqual(20_000);
      next = c.to;
    }
    expect(next).toBe(1000);
    expect(chunk(snap, 1_000_000)).toHaveLength(1);
    expect(chunk(snap, 1_000_000)[0].bytes).toBeLessThan(MAX_REQUEST_BYTES);
  });

  it('delta snapshots zero the sums, keep each series’ start, and skip series with nothing new', () => {
    const a = new FlowAggregate('workload', 100);
    const cache = new AttributeCache(a);
    a.add(flows(2), 1);
    const s1 = takeSnapshot(a, cache, options(10, 5));
    expect([...(s1?.start ?? [])]).toEqual([5, 5]);
    expect(takeSnapshot(a, cache, options(20, 10))).toBeUndefined();
    a.add(flows(1, 1), 25);
    const s2 = takeSnapshot(a, cache, options(30, 20));
    expect(s2?.length).toBe(1);
    expect(s2?.attrs[0].attrs[0]).toEqual({
      'src.k8s.workload.name': 'w-1',
      protocol: 6,
      'traffic.class': 'cross_zone',
    });
    expect([...(s2?.start ?? [])]).toEqual([10]);
    expect(s2?.values[0]?.[0]).toBe(1);
  });

  it('expire drops idle series and their cached attributes', () => {
    const a = new FlowAggregate('workload', 100);
    const cache = new AttributeCache(a);
    a.add(flows(2), 1_000);
    a.add(flows(1, 1), 50_000);
    expect(expire(a, cache, 60_000, 30_000)).toBe(1);
    expect(a.table.size).toBe(1);
    expect(cache.get(0).attrs[0]['src.k8s.workload.name']).toBe('w-1');
    expect(expire(a, cache, 60_000, 30_000)).toBe(0);
  });

  it('a label selection: attribute keys as names, protocol and dst.port as ints, sizes counted as ints', () => {
    const selection = flowLabelSelection.parse({
      include: ['dst_port'],
      exclude: ['*_workload_kind', 'dst_service', 'dst_domain'],
      dst_prefix: { top: 1 },
    });
    const a = new FlowAggregate('workload', 100, selection, 60_000);
    expect(a.keys).toEqual([
      'src.k8s.namespace.name',
      'src.k8s.workload.name',
      'src.cloud.availability_zone',
      'dst.k8s.namespace.name',
      'dst.k8s.workload.name',
      'dst.cloud.availability_zone',
      'dst.kind',
      'dst.prefix',
      'dst.port',
      'protocol',
      'traffic.class',
    ]);
    const row = (dstIp: string, dstPort: number, attributes: Record<string, string>) => ({
      timeStart: 0,
      timeEnd: 1,
      protocol: 17,
      srcIp: '10.0.0.1',
      srcPort: 40000,
      dstIp,
      dstPort,
      txBytes: 10,
      rxBytes: 20,
      txPackets: 1,
      rxPackets: 1,
      attributes: {
        'src.k8s.namespace.name': 'shop',
        'src.cloud.availability_zone': 'eu-west-1a',
        ...attributes,
      },
    });
    a.add(
      FlowBatch.from([
        row('10.0.2.9', 5353, { 'dst.kind': 'pod', 'dst.cloud.availability_zone': 'eu-west-1b' }),
        row('2001:db8:1:2::7', 443, { 'dst.kind': 'external_public' }),
        row('2001:db8:9:9::7', 443, { 'dst.kind': 'external_public' }),
      ]),
      1,
    );
    const cache = new AttributeCache(a);
    const snap = takeSnapshot(a, cache, options(10, 0));
    expect(snap?.attrs.map((x) => x.attrs[0])).toEqual([
      {
        'src.k8s.namespace.name': 'shop',
        'src.cloud.availability_zone': 'eu-west-1a',
        'dst.cloud.availability_zone': 'eu-west-1b',
        'dst.kind': 'pod',
        'dst.port': 5353,
        protocol: 17,
      },
      {
        'src.k8s.namespace.name': 'shop',
        'src.cloud.availability_zone': 'eu-west-1a',
        'dst.kind': 'external_public',
        'dst.prefix': '2001:db8:1:2::/64',
        protocol: 17,
      },
      {
        'src.k8s.namespace.name': 'shop',
        'src.cloud.availability_zone': 'eu-west-1a',
        'dst.kind': 'external_public',
        'dst.prefix': 'other',
        protocol: 17,
      },
    ]);
    const attrs = snap?.attrs[0].attrs[0] ?? {};
    const bytes = Object.entries(attrs).reduce((n, [k, v]) => n + attributeSize(k, v), 0);
    expect(snap?.attrs[0].bytes[0]).toBe(bytes);
  });

  it('DNS: one series per name however it is spelt (as prometheus), no strings kept for overflowed names', () => {
    const a = new DnsAggregate(3, { top: 10_000, expirationMs: 300_000 });
    const cache = new AttributeCache(a);
    const lookup = (question: string) => ({ time: 0, clientIp: '10.0.0.9', question, answers: [] });
    a.add(DnsBatch.from([lookup('API.Stripe.com.'), lookup('api.stripe.com'), lookup('db.shop.svc.')]), 1);
    a.add(DnsBatch.from(Array.from({ length: 1000 }, (_, i) => lookup(`r${i}.tunnel.example`))), 2);
    const snap = takeSnapshot(a, cache, options(10, 0));
    expect(snap?.attrs.map((x) => x.attrs[0])).toEqual([
      { 'dns.question.name': 'api.stripe.com', 'dns.response_code': 'NOERROR' },
      { 'dns.question.name': 'db.shop.svc', 'dns.response_code': 'NOERROR' },
      { 'otel.metric.overflow': true },
    ]);
    expect([...(snap?.values[0] ?? [])]).toEqual([2, 1, 1000]);
    // '', two names, NOERROR.
    expect(a.table.strings.size).toBe(4);
  });

  it('DNS: a top N of names by lookups, the rest "other", totals exact', () => {
    const a = new DnsAggregate(100, { top: 2, expirationMs: 300_000 });
    const lookup = (question: string, rcode = 0) => ({
      time: 0,
      clientIp: '10.0.0.9',
      question,
      rcode,
      answers: [],
    });
    a.add(
      DnsBatch.from([
        lookup('a.example'),
        lookup('b.example', 3),
        ...Array.from({ length: 300 }, (_, i) => lookup(`r${i}.tunnel.example`, 3)),
      ]),
      1,
    );
    const snap = takeSnapshot(a, new AttributeCache(a), options(10, 0));
    expect(snap?.attrs.map((x, i) => [x.attrs[0], snap.values[0]?.[i]])).toEqual([
      [{ 'dns.question.name': 'a.example', 'dns.response_code': 'NOERROR' }, 1],
      [{ 'dns.question.name': 'b.example', 'dns.response_code': 'NXDOMAIN' }, 1],
      [{ 'dns.question.name': 'other', 'dns.response_code': 'NXDOMAIN' }, 300],
    ]);
    expect(a.series.facts(a.keys).top_n).toEqual({ 'dns.question.name': { named: 2, top: 2, replaced: 0 } });
  });

  it('DNS latency histogram: points only for series that measured one, then with each of their points', () => {
    const a = new DnsAggregate(100, { top: 10, expirationMs: 300_000 });
    const cache = new AttributeCache(a);
    const lookup = (question: string, latencyMs?: number) => ({
      time: 0,
      clientIp: '10.0.0.9',
      question,
      answers: [],
      ...(latencyMs === undefined ? {} : { latencyMs }),
    });
    const duration = a.metrics.findIndex((m) => m.name === 'netmon.dns.lookup.duration');
    expect(a.metrics[duration]).toMatchObject({ unit: 's', histogram: { bounds: DURATION_BOUNDS } });
    a.add(DnsBatch.from([lookup('timed.example', 3), lookup('untimed.example')]), 1);
    const s1 = takeSnapshot(a, cache, options(10, 0));
    expect(s1?.attrs.map((x) => x.attrs[0]['dns.question.name'])).toEqual([
      'timed.example',
      'untimed.example',
    ]);
    expect([...(s1?.present[duration] ?? [])]).toEqual([1, 0]);
    expect(s1?.values[DURATION_COUNT]?.[0]).toBe(1);
    expect(s1?.values[DURATION_SUM]?.[0]).toBe(0.003);
    expect(s1?.values[DURATION_BUCKETS + 3]?.[0]).toBe(1);
    // Sums have every series; the histogram the timed one only.
    expect(chunk(s1 as NonNullable<typeof s1>, 100)[0].points).toBe(3);
    // Next interval: timed.example without a latency still sends its histogram (count 0), so its delta
    // stream stays contiguous.
    a.add(DnsBatch.from([lookup('timed.example'), lookup('untimed.example')]), 11);
    const s2 = takeSnapshot(a, cache, options(20, 10));
    expect([...(s2?.present[duration] ?? [])]).toEqual([1, 0]);
    expect(s2?.values[DURATION_COUNT]?.[0]).toBe(0);
    expect([...(s2?.start ?? [])]).toEqual([10, 10]);
    // Cumulative: every series each time, the histogram for those that ever measured one.
    const c = new DnsAggregate(100, { top: 10, expirationMs: 300_000 });
    const cumulative = { ...options(10, 0), temporality: 'cumulative' as const };
    c.add(DnsBatch.from([lookup('timed.example', 3), lookup('untimed.example')]), 1);
    takeSnapshot(c, new AttributeCache(c), cumulative);
    const s3 = takeSnapshot(c, new AttributeCache(c), { ...cumulative, now: 20 });
    expect([...(s3?.present[duration] ?? [])]).toEqual([1, 0]);
    expect(s3?.values[DURATION_COUNT]?.[0]).toBe(1);
  });
});
