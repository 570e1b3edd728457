import { FlowBatch, parseIp } from '@netmon/core';
import { describe, expect, it } from 'vitest';
import { FlowSeries, flowLabels, TX_BYTES } from './flow-series.js';
import { flowLabelSelection } from './selection-config.js';
import { CODE_OTHER, OTHER, PrefixTopN, StringTopN } from './top-n.js';

const MIN = 60_000;
const T0 = Date.parse('2026-01-01T00:00:00Z');

/** xorshift32: the same "random" traffic every run. */
function rng(seed: number): () => number {
  let x = seed;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

/**
 * A batch of flows to external destinations built straight into the typed arrays (as receivers do): row i
 * goes to `dst(i)` (an address, or a function that writes one and returns its family) with `bytes(i)` tx
 * bytes, from namespace "shop".
 */
function external(
  n: number,
  dst: (i: number) => string | ((buf: Uint8Array, off: number) => 4 | 6),
  bytes: (i: number) => number,
): FlowBatch {
  const b = new FlowBatch(n);
  b.length = n;
  const kind = b.ensureColumn('dst.kind', 'string');
  const pub = kind.code('external_public');
  const ns = b.ensureColumn('src.k8s.namespace.name', 'string');
  const shop = ns.code('shop');
  for (let i = 0; i < n; i++) {
    const d = dst(i);
    const family = typeof d === 'string' ? parseIp(d, b.dstAddr, 16 * i) : d(b.dstAddr, 16 * i);
    if (family === 0) throw new Error(`bad address ${d}`);
    b.family[i] = family;
    b.protocol[i] = 6;
    b.dstPort[i] = 443;
    b.txBytes[i] = bytes(i);
    b.txPackets[i] = 1;
    kind.codes[i] = pub;
    ns.codes[i] = shop;
  }
  return b;
}

/** Only the labels a top-N test looks at: namespace and the prefix (excluding dst_domain: every row gets one). */
const prefixOnly = (opts: Record<string, unknown> = {}, expirationMs = 5 * MIN) =>
  flowLabels(
    'namespace',
    flowLabelSelection.parse({
      exclude: [
        '*_zone',
        'dst_namespace',
        'dst_kind',
        'dst_service',
        'dst_domain',
        'protocol',
        'traffic_class',
      ],
      dst_prefix: opts,
    }),
    { expirationMs },
  );

/** tx bytes per dst_prefix value (label 1), the overflow series under "(overflow)". */
function byPrefix(series: FlowSeries): Map<string, number> {
  const t = series.table;
  const out = new Map<string, number>();
  for (let s = 0; s < t.size; s++) {
    const k = t.isOverflow(s) ? '(overflow)' : t.label(s, 1);
    out.set(k, (out.get(k) ?? 0) + t.values[TX_BYTES][s]);
  }
  return out;
}

const total = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);

describe('PrefixTopN', () => {
  it('cuts addresses to /24 and /64 (IPv4-mapped counts as IPv4), spelt in CIDR notation', () => {
    const top = new PrefixTopN({ n: 4, holdMs: MIN }, 24, 64);
    const buf = new Uint8Array(16);
    const offer = (ip: string, w = 1) => {
      parseIp(ip, buf, 0);
      return top.offer(buf, 0, w, T0);
    };
    expect(offer('203.0.113.7')).toBe(2);
    expect(offer('203.0.113.200')).toBe(2);
    expect(offer('2001:db8:1:2::1')).toBe(3);
    // A temporary address of the same host (RFC 8981): the same /64.
    expect(offer('2001:db8:1:2:a1b2:c3d4:e5f6:1')).toBe(3);
    expect(offer('2001:db8:1:3::1')).toBe(4);
    expect(top.values()).toEqual(['203.0.113.0/24', '2001:db8:1:2::/64', '2001:db8:1:3::/64']);
    const exact = new PrefixTopN({ n: 2, holdMs: MIN }, 32, 128);
    parseIp('203.0.113.7', buf, 0);
    exact.offer(buf, 0, 1, T0);
    parseIp('2001:db8::1', buf, 0);
    exact.offer(buf, 0, 1, T0);
    expect(exact.values()).toEqual(['203.0.113.7/32', '2001:db8::1/128']);
  });

  it('admits values as they come until N are in; the rest are "other"; a row without bytes claims nothing', () => {
    const top = new PrefixTopN({ n: 2, holdMs: MIN }, 32, 128);
    const buf = new Uint8Array(16);
    const offer = (ip: string, w: number) => {
      parseIp(ip, buf, 0);
      return top.offer(buf, 0, w, T0);
    };
    expect(offer('198.51.100.1', 0)).toBe(CODE_OTHER);
    expect(top.admitted).toBe(0);
    expect(offer('198.51.100.1', 10)).toBe(2);
    expect(offer('198.51.100.2', 10)).toBe(3);
    expect(offer('198.51.100.3', 1000)).toBe(CODE_OTHER);
    expect(top.dict).toEqual(['', OTHER, '198.51.100.1/32', '198.51.100.2/32']);
    expect(top.candidates).toBe(1);
  });
});

describe('top N of dst_prefix in flow series', () => {
  it('keeps totals exact: N prefixes by name, the rest summed under "other"', () => {
    const series = new FlowSeries(prefixOnly({ top: 3 }), 1000);
    // Ten /24s, row i to 198.18.i.1 with (i + 1) × 100 bytes.
    const batch = external(
      10,
      (i) => `198.18.${i}.1`,
      (i) => (i + 1) * 100,
    );
    series.add(batch, T0);
    const got = byPrefix(series);
    // First come, first admitted while there is room.
    expect(got).toEqual(
      new Map([
        ['198.18.0.0/24', 100],
        ['198.18.1.0/24', 200],
        ['198.18.2.0/24', 300],
        [OTHER, 400 + 500 + 600 + 700 + 800 + 900 + 1000],
      ]),
    );
    expect(total(got)).toBe(5500);
  });

  it('the heaviest replace the lightest once these were in for the hold (2 × expiration), not before', () => {
    const exp = MIN;
    const labels = prefixOnly({ top: 2 }, exp);
    const series = new FlowSeries(labels, 1000);
    const top = labels[1].topN as PrefixTopN;
    // Two light prefixes come first and are admitted; a heavy one follows.
    const light = (t: number) =>
      series.add(
        external(
          2,
          (i) => (i === 0 ? '192.0.2.1' : '198.18.5.1'),
          () => 10,
        ),
        t,
      );
    light(T0);
    let sent = 20;
    const heavy = (t: number) => {
      series.add(
        external(
          1,
          () => '198.51.100.9',
          () => 10_000,
        ),
        t,
      );
      sent += 10_000;
    };
    for (let t = T0 + 1000; t < T0 + 2 * exp; t += 10_000) {
      heavy(t);
      expect(top.values()).toEqual(['192.0.2.0/24', '198.18.5.0/24']);
    }
    expect(byPrefix(series).get(OTHER)).toBe(sent - 20);
    // The hold has passed: the next batch's review lets the heavy one in, in the lightest's slot.
    heavy(T0 + 2 * exp + 1000);
    expect(top.replaced).toBe(1);
    expect(top.values()).toHaveLength(2);
    expect(top.values()).toContain('198.51.100.0/24');
    const got = byPrefix(series);
    expect(got.get('198.51.100.0/24')).toBe(10_000);
    expect(total(got)).toBe(sent);
  });

  it('does not flap: values of similar weight never swap; one must send twice as much', () => {
    const exp = MIN;
    const labels = prefixOnly({ top: 1 }, exp);
    const series = new FlowSeries(labels, 1000);
    const top = labels[1].topN as PrefixTopN;
    const next = rng(7);
    let sent = 0;
    // A and B take turns being slightly heavier, interval after interval, for an hour.
    for (let k = 0, t = T0; k < 360; k++, t += 10_000) {
      const a = 1000 + (next() % 300);
      const b = 1000 + (next() % 300);
      series.add(
        external(
          2,
          (i) => (i === 0 ? '203.0.113.1' : '198.51.100.1'),
          (i) => (i === 0 ? a : b),
        ),
        t,
      );
      sent += a + b;
    }
    expect(top.replaced).toBe(0);
    expect(top.values()).toEqual(['203.0.113.0/24']);
    const got = byPrefix(series);
    expect([...got.keys()].sort()).toEqual(['203.0.113.0/24', OTHER]);
    expect(total(got)).toBe(sent);
  });

  it('within any expiration at most 2N + 1 values have live series, however the heavy hitters move', () => {
    const exp = MIN;
    const n = 5;
    const labels = prefixOnly({ top: n }, exp);
    const series = new FlowSeries(labels, 100_000);
    const t = series.table;
    const next = rng(99);
    let sent = 0;
    let most = 0;
    // Three hours of traffic whose heavy prefixes change every 10 minutes, among steady noise.
    for (let k = 0, now = T0; k < 1080; k++, now += 10_000) {
      const epoch = Math.floor(k / 60);
      const rows = 40;
      const batch = external(
        rows,
        (i) => (i < 8 ? `100.${64 + ((epoch * 8 + i) % 50)}.0.1` : `198.18.${next() % 200}.${next() % 250}`),
        (i) => (i < 8 ? 50_000 + (next() % 10_000) : 1 + (next() % 500)),
      );
      for (let i = 0; i < rows; i++) sent += batch.txBytes[i];
      series.add(batch, now);
      // What Prometheus would still show: series updated within the expiration.
      t.retain((s) => t.lastSeen[s] >= now - exp);
      const live = new Set<string>();
      for (let s = 0; s < t.size; s++) live.add(t.label(s, 1));
      most = Math.max(most, live.size);
    }
    expect(most).toBeLessThanOrEqual(2 * n + 1);
    expect((labels[1].topN as PrefixTopN).replaced).toBeGreaterThan(10);
    // The prefixes heavy in the last epoch are the ones admitted now.
    const heavyNow = new Set(Array.from({ length: 8 }, (_, i) => `100.${64 + ((17 * 8 + i) % 50)}.0.0/24`));
    const admitted = (labels[1].topN as PrefixTopN).values();
    expect(admitted.filter((v) => heavyNow.has(v))).toHaveLength(n);
    expect(sent).toBeGreaterThan(0);
  });

  it('a flood of a million distinct addresses costs fixed memory, keeps totals, and a real heavy hitter still gets in', () => {
    const exp = MIN;
    const n = 10;
    const labels = prefixOnly({ top: n, ipv4_prefix_length: 32, ipv6_prefix_length: 128 }, exp);
    const series = new FlowSeries(labels, 10_000);
    const top = labels[1].topN as PrefixTopN;
    const t = series.table;
    const next = rng(12345);
    // The first N distinct addresses take the room; the flood follows; one address carries 10% of bytes.
    series.add(
      external(
        n,
        (i) => `192.0.2.${i + 1}`,
        () => 1,
      ),
      T0,
    );
    let sent = n;
    const rows = 10_000;
    let now = T0;
    for (let b = 0; b < 100; b++) {
      now += 2000;
      const batch = external(
        rows,
        (i) => {
          if (i % 10 === 0) return '203.0.113.77';
          // Random IPv4 (mapped) and IPv6 addresses, written as bytes.
          return (buf, off) => {
            const v4 = i % 2 === 0;
            for (let k = 0; k < 16; k += 4) {
              const r = next();
              buf[off + k] = r & 255;
              buf[off + k + 1] = (r >>> 8) & 255;
              buf[off + k + 2] = (r >>> 16) & 255;
              buf[off + k + 3] = r >>> 24;
            }
            if (v4) {
              buf.fill(0, off, off + 10);
              buf[off + 10] = 0xff;
              buf[off + 11] = 0xff;
            } else buf[off] = 0x20;
            return v4 ? 4 : 6;
          };
        },
        () => 100,
      );
      series.add(batch, now);
      sent += rows * 100;
      expect(top.admitted).toBeLessThanOrEqual(n);
      expect(top.candidates).toBeLessThanOrEqual(top.m);
      expect(top.dict.length).toBeLessThanOrEqual(n + 2);
      // Series: N admitted values and "other" (with its namespace), whatever the flood.
      expect(t.size).toBeLessThanOrEqual(2 * n + 1);
      expect(t.strings.size).toBeLessThanOrEqual(2 * n + 3);
    }
    expect(t.overflowRows).toBe(0);
    const got = byPrefix(series);
    expect(total(got)).toBe(sent);
    // 200 s in: past the hold (120 s), the heavy address replaced one of the first comers.
    expect(top.values()).toContain('203.0.113.77/32');
    expect(got.get('203.0.113.77/32')).toBeGreaterThan(0);
    expect(got.get(OTHER)).toBeGreaterThan(0.8 * sent);
  });

  it('the admitted stay findable through heavy eviction churn (open addressing with backward-shift deletion)', () => {
    const top = new PrefixTopN({ n: 50, holdMs: MIN, candidates: 64 }, 32, 128);
    const buf = new Uint8Array(16);
    const offer = (ip: string, w: number) => {
      parseIp(ip, buf, 0);
      return top.offer(buf, 0, w, T0);
    };
    const codes = Array.from({ length: 50 }, (_, i) => offer(`10.1.${i}.1`, 1));
    const next = rng(3);
    for (let k = 0; k < 200_000; k++) offer(`10.2.${next() & 255}.${next() & 255}`, 1);
    for (let i = 0; i < 50; i++) expect(offer(`10.1.${i}.1`, 1)).toBe(codes[i]);
    expect(top.candidates).toBe(64);
  });
});

describe('StringTopN', () => {
  it('bounds what it holds to n + m values under a flood of distinct names', () => {
    const top = new StringTopN({ n: 3, holdMs: MIN, candidates: 32 });
    for (let i = 0; i < 100_000; i++) top.offer(`x${i}.tunnel.example`, 1, T0);
    expect(top.size).toBe(3 + 32);
    expect(top.values()).toEqual(['x0.tunnel.example', 'x1.tunnel.example', 'x2.tunnel.example']);
    expect(top.offer('x99999.tunnel.example', 5, T0)).toBe(CODE_OTHER);
  });
});
