import { DnsBatch, type DnsLookupInit, DnsRcode, dnsName } from '@netmon/core';
import { describe, expect, it } from 'vitest';
import {
  DNS_COLUMNS,
  type DnsClient,
  type DnsClients,
  DnsSeries,
  DURATION_BOUNDS,
  DURATION_BUCKETS,
  DURATION_COUNT,
  DURATION_SUM,
  dnsClientLabels,
  LOOKUPS,
} from './dns-series.js';
import { OTHER } from './top-n.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');
const MINUTE = 60_000;
const lookup = (clientIp: string, question: string, more: Partial<DnsLookupInit> = {}): DnsLookupInit => ({
  time: T0,
  clientIp,
  question,
  answers: [],
  ...more,
});
const options = { top: 100, expirationMs: 5 * MINUTE };

/** A column per series, labels joined by `|` (the overflow series as `(overflow)`). */
function values(series: DnsSeries, column = LOOKUPS): Record<string, number> {
  const t = series.table;
  const out: Record<string, number> = {};
  for (let s = 0; s < t.size; s++) {
    const key = t.isOverflow(s)
      ? '(overflow)'
      : Array.from({ length: t.width }, (_, l) => t.label(s, l)).join('|');
    out[key] = t.values[column][s];
  }
  return out;
}

const total = (series: DnsSeries, column = LOOKUPS) =>
  Object.values(values(series, column)).reduce((a, b) => a + b, 0);

// dnsName lives in core; this is the spelling every DNS series here relies on.
describe('dnsName', () => {
  it('lower-cases ASCII letters and drops the trailing dot; the root stays', () => {
    expect(dnsName('API.Stripe.COM.')).toBe('api.stripe.com');
    expect(dnsName('api.stripe.com')).toBe('api.stripe.com');
    expect(dnsName('.')).toBe('.');
    expect(dnsName('')).toBe('');
    // Case folding in DNS is ASCII only (RFC 4343).
    expect(dnsName('BÜCHER.Example.')).toBe('bÜcher.example');
  });
});

describe('DnsSeries', () => {
  it('counts lookups per name however it is spelt, and per response code by its mnemonic', () => {
    const series = new DnsSeries([], 100, options);
    series.add(
      DnsBatch.from([
        lookup('10.0.0.1', 'api.stripe.com'),
        lookup('10.0.0.1', 'API.Stripe.com.'),
        lookup('10.0.0.1', 'api.stripe.com', { rcode: DnsRcode.SERVFAIL }),
        lookup('10.0.0.2', 'db.shop.svc.cluster.local.', { rcode: DnsRcode.NXDOMAIN }),
        lookup('10.0.0.2', 'x.example', { rcode: 23 }),
      ]),
      T0,
    );
    expect(values(series)).toEqual({
      'api.stripe.com|NOERROR': 2,
      'api.stripe.com|SERVFAIL': 1,
      'db.shop.svc.cluster.local|NXDOMAIN': 1,
      'x.example|RCODE23': 1,
    });
    expect(series.table.values).toHaveLength(DNS_COLUMNS);
  });

  it('labels the client as the granularity keeps it: the pod its UID names first, else its address', () => {
    expect(dnsClientLabels('pod')).toEqual(['namespace', 'workload_kind', 'workload', 'pod']);
    expect(dnsClientLabels('namespace')).toEqual(['namespace']);
    const web: DnsClient = {
      kind: 'pod',
      namespace: 'shop',
      pod: 'web-1',
      workloadKind: 'Deployment',
      workloadName: 'web',
    };
    // A hostNetwork pod: its lookups come from the node's address, 10.0.0.7.
    const agent: DnsClient = {
      kind: 'pod',
      namespace: 'monitoring',
      pod: 'agent-x',
      workloadKind: 'DaemonSet',
      workloadName: 'agent',
    };
    const node: DnsClient = { kind: 'node' };
    const asked: string[] = [];
    const clients: DnsClients = {
      byAddress: (addr, off) => (addr[off + 15] === 5 ? web : addr[off + 15] === 7 ? node : null),
      byPodUid: (uid) => {
        asked.push(uid);
        return uid === 'uid-agent' ? agent : undefined;
      },
    };
    const series = new DnsSeries(dnsClientLabels('pod'), 100, options);
    series.add(
      DnsBatch.from([
        lookup('10.0.1.5', 'a.example'),
        lookup('10.0.0.7', 'a.example', { podUid: 'uid-agent', cgroupId: 4242 }),
        lookup('10.0.0.7', 'a.example', { podUid: 'uid-agent', cgroupId: 4242 }),
        lookup('10.0.0.7', 'a.example'),
        // A UID the store does not know (a pod already gone): its address decides.
        lookup('10.0.1.5', 'a.example', { podUid: 'uid-gone' }),
        lookup('10.9.9.9', 'a.example'),
      ]),
      T0,
      clients,
    );
    expect(values(series)).toEqual({
      'shop|Deployment|web|web-1|a.example|NOERROR': 2,
      'monitoring|DaemonSet|agent|agent-x|a.example|NOERROR': 2,
      '||||a.example|NOERROR': 2,
    });
    // Each UID of a batch is looked up once.
    expect(asked).toEqual(['uid-agent', 'uid-gone']);
  });

  it('keeps the top N names by lookups; the rest are "other", and every lookup is counted once', () => {
    const series = new DnsSeries([], 1000, { top: 3, expirationMs: 5 * MINUTE });
    const batch = DnsBatch.from([
      ...Array.from({ length: 5 }, () => lookup('10.0.0.1', 'api.stripe.com')),
      lookup('10.0.0.1', 'db.shop.svc', { rcode: DnsRcode.NXDOMAIN }),
      lookup('10.0.0.1', 'registry.example'),
      // A tunnel: every lookup a new random name.
      ...Array.from({ length: 1000 }, (_, i) =>
        lookup('10.0.0.1', `r${i}x.t.example`, { rcode: DnsRcode.NXDOMAIN }),
      ),
    ]);
    series.add(batch, T0);
    expect(values(series)).toEqual({
      'api.stripe.com|NOERROR': 5,
      'db.shop.svc|NXDOMAIN': 1,
      'registry.example|NOERROR': 1,
      [`${OTHER}|NXDOMAIN`]: 1000,
    });
    expect(total(series)).toBe(batch.length);
    expect(series.top.values()).toEqual(['api.stripe.com', 'db.shop.svc', 'registry.example']);
    // Tracked names stay bounded (N admitted + M candidates), whatever the flood.
    expect(series.top.size).toBeLessThanOrEqual(3 + 64);
    expect(series.facts(['dst_domain', 'dns_response_code'])).toEqual({
      labels: ['dst_domain', 'dns_response_code'],
      top_n: { dst_domain: { named: 3, top: 3, replaced: 0 } },
    });
  });

  it('a name looked up far more often replaces the weakest named one, only after twice expiration', () => {
    const expirationMs = MINUTE;
    const series = new DnsSeries([], 1000, { top: 2, expirationMs });
    const batch = (at: number, hot: number) =>
      DnsBatch.from([
        lookup('10.0.0.1', 'a.example', { time: at }),
        lookup('10.0.0.1', 'b.example', { time: at }),
        ...Array.from({ length: hot }, () => lookup('10.0.0.1', 'hot.example', { time: at })),
      ]);
    series.add(batch(T0, 0), T0);
    // Heavy from the next batch on, but a and b are held for 2 × expiration.
    for (let t = T0 + 10_000; t < T0 + 2 * expirationMs; t += 10_000) series.add(batch(t, 50), t);
    expect(series.top.values()).toEqual(['a.example', 'b.example']);
    expect(values(series)[`${OTHER}|NOERROR`]).toBe(50 * 11);
    series.add(batch(T0 + 2 * expirationMs + 1000, 50), T0 + 2 * expirationMs + 1000);
    // a and b weigh the same: the first is the weakest; b then stays, as a candidate half hot's weight
    // would not replace it.
    expect(series.top.values()).toEqual(['hot.example', 'b.example']);
    expect(series.top.replaced).toBe(1);
    expect(values(series)['hot.example|NOERROR']).toBe(50);
    expect(total(series)).toBe(2 + 12 * 52);
  });

  it('a latency histogram per series: buckets by upper bound (inclusive), sum in seconds, unknown latency left out', () => {
    const series = new DnsSeries([], 100, options);
    const ms = [0.5, 0.6, 3, 3, 40, 999, 6000, Number.NaN];
    series.add(DnsBatch.from(ms.map((latencyMs) => lookup('10.0.0.1', 'a.example', { latencyMs }))), T0);
    const t = series.table;
    expect(t.size).toBe(1);
    expect(t.values[LOOKUPS][0]).toBe(8);
    expect(t.values[DURATION_COUNT][0]).toBe(7);
    expect(t.values[DURATION_SUM][0]).toBeCloseTo((0.5 + 0.6 + 3 + 3 + 40 + 999 + 6000) / 1000, 12);
    const buckets = Array.from(
      { length: DURATION_BOUNDS.length + 1 },
      (_, b) => t.values[DURATION_BUCKETS + b][0],
    );
    // le 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, +Inf
    expect(buckets).toEqual([1, 1, 0, 2, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1]);
  });

  it('keeps no string of lookups that overflow: 100k random subdomains leave the table as it was', () => {
    // Past the top N every random name is "other"; past max_series nothing new is interned either.
    const series = new DnsSeries([], 10, { top: 10_000, expirationMs: 5 * MINUTE });
    for (let b = 0; b < 10; b++) {
      series.add(
        DnsBatch.from(Array.from({ length: 10_000 }, (_, i) => lookup('10.0.0.1', `r${b}x${i}.example`))),
        T0,
      );
    }
    const t = series.table;
    expect(t.size).toBe(10);
    expect(t.overflowRows).toBe(100_000 - 9);
    // Nine names, NOERROR and ''.
    expect(t.strings.size).toBe(11);
    expect(total(series)).toBe(100_000);
  });
});
