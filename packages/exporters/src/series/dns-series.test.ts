import { DnsBatch } from '@netmon/core';
import { describe, expect, it } from 'vitest';
import { type DnsClient, DnsSeries, dnsClientLabels, dnsName, LOOKUPS } from './dns-series.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');
const lookup = (clientIp: string, question: string) => ({ time: T0, clientIp, question, answers: [] });

/** Lookups per series, labels joined by `|` (the overflow series as `(overflow)`). */
function counts(series: DnsSeries): Record<string, number> {
  const t = series.table;
  const out: Record<string, number> = {};
  for (let s = 0; s < t.size; s++) {
    const key = t.isOverflow(s)
      ? '(overflow)'
      : Array.from({ length: t.width }, (_, l) => t.label(s, l)).join('|');
    out[key] = t.values[LOOKUPS][s];
  }
  return out;
}

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
  it('counts lookups per name however it is spelt', () => {
    const series = new DnsSeries([], 100);
    series.add(
      DnsBatch.from([
        lookup('10.0.0.1', 'api.stripe.com'),
        lookup('10.0.0.1', 'API.Stripe.com.'),
        lookup('10.0.0.2', 'db.shop.svc.cluster.local.'),
      ]),
      T0,
    );
    expect(counts(series)).toEqual({ 'api.stripe.com': 2, 'db.shop.svc.cluster.local': 1 });
  });

  it('labels the client as the granularity keeps it', () => {
    expect(dnsClientLabels('pod')).toEqual(['namespace', 'workload_kind', 'workload', 'pod']);
    expect(dnsClientLabels('namespace')).toEqual(['namespace']);
    const web: DnsClient = {
      kind: 'pod',
      namespace: 'shop',
      pod: 'web-1',
      workloadKind: 'Deployment',
      workloadName: 'web',
    };
    const series = new DnsSeries(dnsClientLabels('workload'), 100);
    const batch = DnsBatch.from([lookup('10.0.1.5', 'a.example'), lookup('10.9.9.9', 'a.example')]);
    series.add(batch, T0, (addr, off) => (addr[off + 15] === 5 ? web : null));
    expect(counts(series)).toEqual({ 'shop|Deployment|web|a.example': 1, '|||a.example': 1 });
  });

  it('keeps no string of lookups that overflow: 100k random subdomains leave the table as it was', () => {
    const series = new DnsSeries([], 10);
    for (let b = 0; b < 10; b++) {
      series.add(
        DnsBatch.from(Array.from({ length: 10_000 }, (_, i) => lookup('10.0.0.1', `r${b}x${i}.example`))),
        T0,
      );
    }
    const t = series.table;
    expect(t.size).toBe(10);
    expect(t.overflowRows).toBe(100_000 - 9);
    expect(t.strings.size).toBe(10);
  });
});
