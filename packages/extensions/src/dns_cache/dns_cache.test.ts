import { DnsBatch, type DnsLookupInit, DnsRcode, DnsType, parseIp, StatusBoard } from '@netmon/core';
import { describeConformance, recordingMeter, testSettings } from '@netmon/core/testkit';
import { describe, expect, it } from 'vitest';
import { dnsCacheConfig } from './config.js';
import { createDnsCache, dnsCacheFactory } from './factory.js';

const T0 = Date.parse('2026-03-01T00:00:00Z');

function bytes(ip: string): Uint8Array {
  const b = new Uint8Array(16);
  if (parseIp(ip, b, 0) === 0) throw new Error(`not an address: ${ip}`);
  return b;
}

/** A cache on a clock the test moves, with its meter and /status read back. */
function make(config: unknown = {}) {
  let now = T0;
  const meter = recordingMeter();
  const board = new StatusBoard();
  const settings = testSettings('extension', 'dns_cache', { board });
  settings.meter = meter.meter;
  const ext = createDnsCache(settings, dnsCacheConfig.parse(config), { now: () => now });
  return {
    ext,
    cache: ext.cache,
    meter,
    details: () => board.all()[0].details?.(),
    /** Moves the clock by `s` seconds. */
    advance(s: number) {
      now += s * 1000;
    },
    at: () => now,
    learn(...lookups: DnsLookupInit[]) {
      ext.learn(DnsBatch.from(lookups));
    },
    /** The name of `ip` as `client` resolved it (or as anyone did): question, and `→ canonical` when there is one. */
    name(ip: string, client?: string): string | undefined {
      const n = ext.domainOf(bytes(ip), 0, client === undefined ? undefined : bytes(client), 0);
      return n === undefined ? undefined : n.canonical ? `${n.name} → ${n.canonical}` : n.name;
    },
  };
}

/** One lookup of `question` by `client` answered with A/AAAA records owned by the question. */
function answer(client: string, question: string, ips: string[], ttl: number): DnsLookupInit {
  return {
    time: T0,
    clientIp: client,
    question,
    answers: ips.map((ip) => ({
      name: question,
      type: ip.includes(':') ? DnsType.AAAA : DnsType.A,
      ttl,
      ip,
    })),
  };
}

const POD_A = '10.1.1.5';
const POD_B = '10.1.1.6';
const POD_C = '10.1.1.7';

describe('dns_cache: what it learns', () => {
  it('names an address after the question and the end of its CNAME chain, one shared object per name', () => {
    const c = make();
    c.learn({
      time: T0,
      clientIp: POD_A,
      question: 'SQS.us-east-1.amazonaws.com.',
      canonical: 'vpce-0a1b-x.sqs.us-east-1.vpce.amazonaws.com.',
      answers: [
        {
          name: 'sqs.us-east-1.amazonaws.com',
          type: DnsType.CNAME,
          ttl: 60,
          target: 'vpce-0a1b-x.sqs.us-east-1.vpce.amazonaws.com',
        },
        { name: 'vpce-0a1b-x.sqs.us-east-1.vpce.amazonaws.com', type: DnsType.A, ttl: 60, ip: '10.30.0.8' },
        { name: 'vpce-0a1b-x.sqs.us-east-1.vpce.amazonaws.com', type: DnsType.A, ttl: 60, ip: '10.30.1.8' },
      ],
    });
    expect(c.name('10.30.0.8', POD_A)).toBe(
      'sqs.us-east-1.amazonaws.com → vpce-0a1b-x.sqs.us-east-1.vpce.amazonaws.com',
    );
    const a = c.ext.domainOf(bytes('10.30.0.8'), 0);
    const b = c.ext.domainOf(bytes('10.30.1.8'), 0);
    expect(a).toBe(b);
    expect(c.cache.names.size).toBe(1);
    expect(c.meter.value('netmon_dns_cache_learned_answers')).toBe(2);
  });

  it('learns only A and AAAA answers of the question’s chain, and only from NOERROR lookups', () => {
    const c = make();
    c.learn(
      {
        time: T0,
        clientIp: POD_A,
        question: 'www.shop.example',
        answers: [
          // CNAMEs out of order; an address of a name nobody asked for; a CNAME of another name.
          { name: 'edge.cdn.example', type: DnsType.CNAME, ttl: 60, target: 'e1.cdn.example' },
          { name: 'www.shop.example', type: DnsType.CNAME, ttl: 60, target: 'EDGE.cdn.example.' },
          { name: 'ads.tracker.example', type: DnsType.A, ttl: 60, ip: '192.0.2.66' },
          { name: 'other.example', type: DnsType.CNAME, ttl: 60, target: 'e1.cdn.example' },
          { name: 'e1.cdn.example', type: DnsType.A, ttl: 60, ip: '192.0.2.10' },
          { name: 'edge.cdn.example', type: DnsType.AAAA, ttl: 60, ip: '2001:db8::10' },
        ],
      },
      { ...answer(POD_A, 'gone.example', ['192.0.2.20'], 60), rcode: DnsRcode.NXDOMAIN },
      { ...answer(POD_A, 'broken.example', ['192.0.2.21'], 60), rcode: DnsRcode.SERVFAIL },
    );
    expect(c.name('192.0.2.10')).toBe('www.shop.example');
    expect(c.name('2001:db8::10')).toBe('www.shop.example');
    expect(c.name('192.0.2.66')).toBeUndefined();
    expect(c.name('192.0.2.20')).toBeUndefined();
    expect(c.name('192.0.2.21')).toBeUndefined();
    expect(c.meter.value('netmon_dns_cache_learned_answers')).toBe(2);
    expect(c.meter.value('netmon_dns_cache_hits')).toBe(2);
    expect(c.meter.value('netmon_dns_cache_misses')).toBe(3);
  });

  it('survives a CNAME loop and spells names as series do (lower case, no trailing dot)', () => {
    const c = make();
    c.learn({
      time: T0,
      clientIp: POD_A,
      question: 'API.Example.COM.',
      answers: [
        { name: 'api.example.com', type: DnsType.CNAME, ttl: 60, target: 'b.example.com' },
        { name: 'b.example.com', type: DnsType.CNAME, ttl: 60, target: 'API.example.com' },
        { name: 'api.example.com', type: DnsType.A, ttl: 60, ip: '192.0.2.1' },
      ],
    });
    expect(c.name('192.0.2.1')).toBe('api.example.com');
  });

  it('IPv4 and IPv6 addresses are apart; an IPv4 address written IPv4-mapped is the same address', () => {
    const c = make();
    c.learn(
      answer(POD_A, 'v4.example', ['104.16.133.229'], 300),
      answer('fd00:1::5', 'v6.example', ['2606:4700::6810:85e5'], 300),
    );
    expect(c.name('104.16.133.229')).toBe('v4.example');
    expect(c.name('::ffff:104.16.133.229')).toBe('v4.example');
    expect(c.name('2606:4700::6810:85e5', 'fd00:1::5')).toBe('v6.example');
    expect(c.name('::104.16.133.229')).toBeUndefined();
    expect(c.name('2606:4700::6810:85e6')).toBeUndefined();
  });
});

describe('dns_cache: how long', () => {
  it('keeps an answer its TTL (min_ttl 0s)', () => {
    const c = make({ min_ttl: '0s' });
    c.learn(answer(POD_A, 'a.example', ['192.0.2.1', '192.0.2.2'], 300));
    c.advance(299);
    expect(c.name('192.0.2.1')).toBe('a.example');
    c.advance(1);
    expect(c.name('192.0.2.2')).toBeUndefined();
    expect(c.meter.value('netmon_dns_cache_evictions', { reason: 'expired' })).toBe(1);
  });

  it('clamps the TTL to [min_ttl, max_ttl]', () => {
    const c = make({ min_ttl: '60s', max_ttl: '1h' });
    c.learn(
      answer(POD_A, 'lb.example', ['192.0.2.1', '192.0.2.2'], 5),
      answer(POD_A, 'static.example', ['192.0.2.3', '192.0.2.4'], 86_400),
    );
    c.advance(59);
    expect(c.name('192.0.2.1')).toBe('lb.example');
    c.advance(1);
    expect(c.name('192.0.2.2')).toBeUndefined();
    c.advance(3599 - 60);
    expect(c.name('192.0.2.3')).toBe('static.example');
    c.advance(1);
    expect(c.name('192.0.2.4')).toBeUndefined();
  });

  it('an address lives as long as the smallest TTL on the chain that leads to it', () => {
    const c = make({ min_ttl: '1s' });
    c.learn({
      time: T0,
      clientIp: POD_A,
      question: 'q.example',
      answers: [
        { name: 'q.example', type: DnsType.CNAME, ttl: 40, target: 'mid.example' },
        { name: 'mid.example', type: DnsType.CNAME, ttl: 120, target: 'edge.example' },
        { name: 'edge.example', type: DnsType.A, ttl: 600, ip: '192.0.2.1' },
        { name: 'mid.example', type: DnsType.A, ttl: 30, ip: '192.0.2.2' },
        { name: 'q.example', type: DnsType.A, ttl: 500, ip: '192.0.2.3' },
      ],
    });
    const expiry = new Map([...c.cache.recency()].map((e) => [e.slot, (e.expiry - T0) / 1000]));
    // Slots in answer order: edge (40: the first CNAME), mid (30: its own), q (500).
    expect([...expiry.entries()].sort((x, y) => x[0] - y[0]).map((e) => e[1])).toEqual([40, 30, 500]);
    c.advance(40);
    expect(c.name('192.0.2.1')).toBeUndefined();
    expect(c.name('192.0.2.3')).toBe('q.example');
  });

  it('a lookup that finds an entry keeps it at least min_ttl longer', () => {
    const c = make({ min_ttl: '60s' });
    c.learn(answer(POD_A, 'a.example', ['192.0.2.1'], 60));
    c.advance(50);
    expect(c.name('192.0.2.1')).toBe('a.example'); // now until T0 + 110 s
    c.advance(50);
    expect(c.name('192.0.2.1')).toBe('a.example'); // until T0 + 160 s
    c.advance(59);
    expect(c.name('192.0.2.1')).toBe('a.example'); // until T0 + 219 s
    c.advance(60);
    expect(c.name('192.0.2.1')).toBeUndefined();
  });

  it('a new answer never shortens a longer-lived entry of the same name', () => {
    const c = make({ min_ttl: '1s' });
    c.learn(answer(POD_A, 'a.example', ['192.0.2.1'], 300));
    c.advance(10);
    c.learn(answer(POD_B, 'a.example', ['192.0.2.1'], 5));
    c.advance(280);
    expect(c.name('192.0.2.1')).toBe('a.example');
  });

  it('expired entries go without lookups (the sweep after each learned batch), and their names with them', () => {
    const c = make({ min_ttl: '60s' });
    const many = Array.from({ length: 3000 }, (_, i) => `10.200.${i >> 8}.${i & 255}`);
    c.learn(answer(POD_A, 'many.example', many, 60), answer(POD_A, 'few.example', ['192.0.2.1'], 600));
    expect(c.meter.value('netmon_dns_cache_entries', { kind: 'address' })).toBe(3001);
    expect(c.meter.value('netmon_dns_cache_names')).toBe(2);
    c.advance(61);
    c.learn(answer(POD_A, 'new.example', ['192.0.2.2'], 60));
    expect(c.meter.value('netmon_dns_cache_evictions', { reason: 'expired' })).toBe(3000);
    expect(c.meter.value('netmon_dns_cache_evictions', { reason: 'capacity' })).toBe(0);
    expect(c.meter.value('netmon_dns_cache_entries', { kind: 'address' })).toBe(2);
    expect(c.meter.value('netmon_dns_cache_names')).toBe(2);
    expect(c.details()).toMatchObject({ entries: 2, names: 2, max_entries: 100_000 });
    expect(c.name('192.0.2.1')).toBe('few.example');
    expect(c.name(many[7])).toBeUndefined();
  });
});

describe('dns_cache: per client', () => {
  it('two pods that resolve one address to different names each keep theirs; others get the address’s first', () => {
    const c = make();
    c.learn(answer(POD_A, 'shop.example', ['203.0.113.9'], 300));
    c.learn(answer(POD_B, 'blog.example', ['203.0.113.9'], 300));
    expect(c.name('203.0.113.9', POD_A)).toBe('shop.example');
    expect(c.name('203.0.113.9', POD_B)).toBe('blog.example');
    expect(c.name('203.0.113.9', POD_C)).toBe('shop.example');
    expect(c.name('203.0.113.9')).toBe('shop.example');
    expect(c.meter.value('netmon_dns_cache_entries', { kind: 'address' })).toBe(1);
    expect(c.meter.value('netmon_dns_cache_entries', { kind: 'client' })).toBe(1);
    expect(c.meter.value('netmon_dns_cache_names')).toBe(2);
    // POD_B now gets the address entry's name: its own entry is no longer needed, nor its old name.
    c.learn(answer(POD_B, 'shop.example', ['203.0.113.9'], 300));
    expect(c.name('203.0.113.9', POD_B)).toBe('shop.example');
    expect(c.meter.value('netmon_dns_cache_entries', { kind: 'client' })).toBe(0);
    expect(c.meter.value('netmon_dns_cache_names')).toBe(1);
  });

  it('pods that got a name keep it when a third pod resolves the address to another', () => {
    const c = make();
    c.learn(answer(POD_A, 'api.foo.com', ['104.16.1.1'], 300));
    c.learn(answer(POD_B, 'api.foo.com', ['104.16.1.1'], 300));
    c.learn(answer(POD_C, 'www.bar.com', ['104.16.1.1'], 300));
    expect(c.name('104.16.1.1', POD_A)).toBe('api.foo.com');
    expect(c.name('104.16.1.1', POD_B)).toBe('api.foo.com');
    expect(c.name('104.16.1.1', POD_C)).toBe('www.bar.com');
    expect(c.name('104.16.1.1', '10.1.1.8')).toBe('api.foo.com');
    expect({ addresses: c.cache.addresses, clients: c.cache.clients, names: c.cache.names.size }).toEqual({
      addresses: 1,
      clients: 1,
      names: 2,
    });
  });

  it('a pod that resolves the address to another name takes none from the pods that got the same name as it', () => {
    const c = make();
    c.learn(answer(POD_A, 'api.foo.com', ['104.16.1.1'], 300));
    c.learn(answer(POD_B, 'api.foo.com', ['104.16.1.1'], 300));
    c.learn(answer(POD_B, 'www.bar.com', ['104.16.1.1'], 300));
    expect(c.name('104.16.1.1', POD_A)).toBe('api.foo.com');
    expect(c.name('104.16.1.1', POD_B)).toBe('www.bar.com');
    expect(c.name('104.16.1.1')).toBe('api.foo.com');
    expect(c.cache.clients).toBe(1);
  });

  it('a client entry is found at once in a large table, and after sweeps have gone round it', () => {
    const c = make();
    const many = Array.from({ length: 10_000 }, (_, i) => `10.200.${i >> 8}.${i & 255}`);
    c.learn(answer(POD_A, 'many.example', many, 300));
    c.learn(answer(POD_A, 'other.example', ['192.0.2.1'], 300));
    // The sweep after this batch visits a part of the table only.
    c.learn(answer(POD_B, 'mine.example', [many[5000]], 300));
    expect(c.name(many[5000], POD_A)).toBe('many.example');
    expect(c.name(many[5000], POD_B)).toBe('mine.example');
    for (let i = 0; i < 6; i++) c.learn(answer(POD_C, `x${i}.example`, [`192.0.2.${10 + i}`], 300));
    expect(c.name(many[5000], POD_A)).toBe('many.example');
    expect(c.name(many[5000], POD_B)).toBe('mine.example');
  });

  it('a client that gets a new name for an address keeps it in an entry of its own, replaced by its next', () => {
    const c = make({ min_ttl: '1s' });
    c.learn(answer(POD_A, 'old.example', ['203.0.113.9'], 300));
    c.learn(answer(POD_A, 'new.example', ['203.0.113.9'], 30));
    expect(c.name('203.0.113.9', POD_A)).toBe('new.example');
    // Others may have got old.example from the same resolver: the address keeps it.
    expect(c.name('203.0.113.9', POD_B)).toBe('old.example');
    c.learn(answer(POD_A, 'newer.example', ['203.0.113.9'], 60));
    expect(c.name('203.0.113.9', POD_A)).toBe('newer.example');
    expect({ size: c.cache.size, clients: c.cache.clients, names: c.cache.names.size }).toEqual({
      size: 2,
      clients: 1,
      names: 2,
    });
    // Its own entry lives its own answer's TTL (60 s, not the 30 s of the name it replaced).
    c.advance(59);
    expect(c.name('203.0.113.9', POD_A)).toBe('newer.example');
  });

  it('an expired address entry takes the next name, and the client that got it needs no entry of its own', () => {
    const c = make({ min_ttl: '1s' });
    c.learn(answer(POD_A, 'short.example', ['203.0.113.9'], 30));
    c.advance(40); // expired, not yet swept: no lookup and no batch since
    c.learn(answer(POD_B, 'next.example', ['203.0.113.9'], 300));
    expect(c.name('203.0.113.9', POD_A)).toBe('next.example');
    expect(c.name('203.0.113.9')).toBe('next.example');
    expect({ size: c.cache.size, clients: c.cache.clients, names: c.cache.names.size }).toEqual({
      size: 1,
      clients: 0,
      names: 1,
    });
    expect([...c.cache.recency()].map((e) => (e.expiry - c.at()) / 1000)).toEqual([300]);
  });

  it('a client entry expires on its own TTL, and the address’s name takes over', () => {
    const c = make({ min_ttl: '1s' });
    c.learn(answer(POD_A, 'long.example', ['203.0.113.9'], 300));
    c.learn(answer(POD_B, 'short.example', ['203.0.113.9'], 30));
    expect(c.name('203.0.113.9', POD_B)).toBe('short.example');
    c.advance(40);
    expect(c.name('203.0.113.9', POD_B)).toBe('long.example');
    expect(c.cache.clients).toBe(0);
    expect(c.cache.names.size).toBe(1);
    expect(c.meter.value('netmon_dns_cache_evictions', { reason: 'expired' })).toBe(1);
  });
});

describe('dns_cache: what a client is', () => {
  it('a name answered with a loopback address names every loopback flow to it, whoever asked', () => {
    const c = make();
    c.learn(answer(POD_A, 'sinkhole.example', ['127.0.0.1', '::1'], 300));
    // A loopback flow's source is a loopback address too, in every pod's network namespace and the host's:
    // no pod's own entry can be found by it, so the address entry's name is every one's.
    expect(c.name('127.0.0.1', '127.0.0.1')).toBe('sinkhole.example');
    expect(c.name('::1', '::1')).toBe('sinkhole.example');
    c.learn(answer(POD_B, 'other.example', ['127.0.0.1'], 300));
    expect(c.name('127.0.0.1', '127.0.0.1')).toBe('sinkhole.example');
    // Only a flow from a pod's own address (not loopback) to 127.0.0.1 would find that pod's entry.
    expect(c.name('127.0.0.1', POD_B)).toBe('other.example');
  });

  it('clients are addresses: hostNetwork pods and the node share the node’s entry, the latest answer for all', () => {
    const NODE = '10.0.0.4';
    const c = make();
    c.learn(answer(POD_A, 'a.example', ['192.0.2.80'], 300));
    // Two hostNetwork pods (one address: the node's) get other names for the address, one after the other.
    c.learn(answer(NODE, 'b.example', ['192.0.2.80'], 300));
    expect(c.name('192.0.2.80', NODE)).toBe('b.example');
    c.learn(answer(NODE, 'c.example', ['192.0.2.80'], 300));
    expect(c.name('192.0.2.80', NODE)).toBe('c.example');
    expect(c.name('192.0.2.80', POD_A)).toBe('a.example');
  });
});

describe('dns_cache: max_entries', () => {
  it('makes room by evicting the least recently used entry (counted as capacity)', () => {
    const c = make({ max_entries: 3 });
    c.learn(answer(POD_A, 'a.example', ['192.0.2.1'], 300));
    c.learn(answer(POD_A, 'b.example', ['192.0.2.2'], 300));
    c.learn(answer(POD_A, 'c.example', ['192.0.2.3'], 300));
    expect(c.name('192.0.2.1')).toBe('a.example'); // a is now the most recently used
    c.learn(answer(POD_A, 'd.example', ['192.0.2.4'], 300));
    expect([...c.cache.recency()].map((e) => e.name.name)).toEqual(['d.example', 'a.example', 'c.example']);
    expect(c.name('192.0.2.2')).toBeUndefined();
    expect(c.meter.value('netmon_dns_cache_evictions', { reason: 'capacity' })).toBe(1);
    expect(c.meter.value('netmon_dns_cache_names')).toBe(3);
  });

  it('counts client entries against it; an expired entry pushed out counts as expired', () => {
    const c = make({ max_entries: 2, min_ttl: '1s' });
    c.learn(answer(POD_A, 'short.example', ['192.0.2.1'], 10));
    c.learn(answer(POD_B, 'other.example', ['192.0.2.1'], 300)); // POD_B's name, in an entry of its own
    expect(c.cache.size).toBe(2);
    c.advance(20);
    c.learn(answer(POD_A, 'next.example', ['192.0.2.2'], 300));
    expect(c.meter.value('netmon_dns_cache_evictions', { reason: 'expired' })).toBe(1);
    expect(c.meter.value('netmon_dns_cache_evictions', { reason: 'capacity' })).toBe(0);
  });

  it('with one entry, a second client’s name replaces the first client’s', () => {
    const c = make({ max_entries: 1 });
    c.learn(answer(POD_A, 'a.example', ['192.0.2.1'], 300));
    // Its own entry needs room: the address entry goes, and the name left is the address's.
    c.learn(answer(POD_B, 'b.example', ['192.0.2.1'], 300));
    expect(c.name('192.0.2.1', POD_A)).toBe('b.example');
    expect({ size: c.cache.size, clients: c.cache.clients, names: c.cache.names.size }).toEqual({
      size: 1,
      clients: 0,
      names: 1,
    });
    expect(c.meter.value('netmon_dns_cache_evictions', { reason: 'capacity' })).toBe(1);
  });
});

describe('dns_cache: against a model', () => {
  /**
   * The same rules over a Map in recency order (oldest first), one answer at a time: an address entry
   * (`A addr`) keeps its name while it lives, a client that got another name has its own (`C addr client`).
   * max_entries stays under the sweep's step, so every learned batch sweeps the whole table, as the model
   * does.
   */
  class Model {
    readonly entries = new Map<string, { name: string; expiry: number }>();
    hits = 0;
    misses = 0;
    expired = 0;
    evicted = 0;
    constructor(
      readonly max: number,
      readonly minTtl: number,
      readonly maxTtl: number,
    ) {}
    private touch(k: string) {
      const e = this.entries.get(k)!;
      this.entries.delete(k);
      this.entries.set(k, e);
    }
    private makeRoom(now: number) {
      if (this.entries.size < this.max) return;
      const [k, e] = this.entries.entries().next().value!;
      if (e.expiry <= now) this.expired++;
      else this.evicted++;
      this.entries.delete(k);
    }
    private renew(k: string, e: { name: string; expiry: number }, name: string, expiry: number) {
      e.expiry = e.name === name ? Math.max(e.expiry, expiry) : expiry;
      e.name = name;
      this.touch(k);
    }
    learn(addr: string, client: string, name: string, ttl: number, now: number) {
      const expiry = now + Math.min(Math.max(ttl * 1000, this.minTtl), this.maxTtl);
      const ak = `A ${addr}`;
      const ck = `C ${addr} ${client}`;
      const b = this.entries.get(ak);
      if (b && b.name !== name && b.expiry > now) {
        // Another name than the live address entry's: the client's own entry, the address's untouched.
        const own = this.entries.get(ck);
        if (own) return this.renew(ck, own, name, expiry);
        this.makeRoom(now);
        this.entries.set(this.entries.has(ak) ? ck : ak, { name, expiry });
        return;
      }
      this.entries.delete(ck);
      if (b) return this.renew(ak, b, name, expiry);
      this.makeRoom(now);
      this.entries.set(ak, { name, expiry });
    }
    sweep(now: number) {
      for (const [k, e] of this.entries) {
        if (e.expiry <= now) {
          this.entries.delete(k);
          this.expired++;
        }
      }
    }
    lookup(addr: string, client: string | undefined, now: number): string | undefined {
      for (const k of client === undefined ? [`A ${addr}`] : [`C ${addr} ${client}`, `A ${addr}`]) {
        const e = this.entries.get(k);
        if (!e) continue;
        if (e.expiry <= now) {
          this.entries.delete(k);
          this.expired++;
          continue;
        }
        this.hits++;
        e.expiry = Math.max(e.expiry, now + this.minTtl);
        this.touch(k);
        return e.name;
      }
      this.misses++;
      return undefined;
    }
  }

  it.each([
    // Past the first 1024 slots: the arrays and the index grow.
    { seed: 1, max: 1100, addresses: 2500, step: 0.005 },
    { seed: 2, max: 1100, addresses: 2500, step: 0.005 },
    // A 16-position index: probe runs wrap around its end, and deletions shift entries across it.
    { seed: 3, max: 8, addresses: 24, step: 0.1 },
  ])(
    'agrees with it over 20,000 random answers and lookups (max_entries $max, seed $seed)',
    ({ seed, max, addresses, step }) => {
      let x = seed * 2654435761;
      const rand = (n: number) => {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        return (x >>> 0) % n;
      };
      const c = make({ max_entries: max, min_ttl: '10s', max_ttl: '2m' });
      const m = new Model(max, 10_000, 120_000);
      const addrs = Array.from({ length: addresses }, (_, i) =>
        i % 3 === 0 ? `2001:db8::${i.toString(16)}` : `10.${i % 7}.${i >> 8}.${i & 255}`,
      );
      const clients = ['10.1.1.1', '10.1.1.2', '10.1.1.3', 'fd00::4'];
      for (let op = 0; op < 20_000; op++) {
        // Slow enough that an answer outlives more operations than the table holds entries.
        c.advance(rand(10) * step);
        const addr = addrs[rand(addrs.length)];
        if (rand(2) === 0) {
          const client = clients[rand(clients.length)];
          const name = `n${rand(40)}.example`;
          const ttl = 1 + rand(200);
          c.learn(answer(client, name, [addr], ttl));
          m.learn(addr, client, name, ttl, c.at());
          m.sweep(c.at());
        } else {
          const client = rand(3) === 0 ? undefined : clients[rand(clients.length)];
          expect(c.name(addr, client), `op ${op}: ${addr} from ${client}`).toBe(
            m.lookup(addr, client, c.at()),
          );
        }
      }
      const entries = [...m.entries.values()];
      expect({
        size: c.cache.size,
        clients: c.cache.clients,
        names: c.cache.names.size,
        hits: c.cache.hits,
        misses: c.cache.misses,
        expired: c.cache.expired,
        evicted: c.cache.evicted,
        recency: [...c.cache.recency()].map((e) => e.name.name).reverse(),
      }).toEqual({
        size: m.entries.size,
        clients: [...m.entries.keys()].filter((k) => k.startsWith('C')).length,
        names: new Set(entries.map((e) => e.name)).size,
        hits: m.hits,
        misses: m.misses,
        expired: m.expired,
        evicted: m.evicted,
        recency: entries.map((e) => e.name),
      });
      // Every path was taken: evictions for room, expiry, client entries.
      expect(c.cache.evicted).toBeGreaterThan(0);
      expect(c.cache.expired).toBeGreaterThan(0);
      expect(c.cache.clients).toBeGreaterThan(0);
    },
  );
});

describe('dns_cache: the extension', () => {
  it('parses durations and bounds, and says what it expected', () => {
    expect(dnsCacheConfig.parse({})).toEqual({ max_entries: 100_000, min_ttl: 60_000, max_ttl: 3_600_000 });
    expect(dnsCacheConfig.parse({ min_ttl: '5s', max_ttl: '90m' })).toMatchObject({
      min_ttl: 5000,
      max_ttl: 5_400_000,
    });
    const messages = (c: unknown) =>
      dnsCacheConfig.safeParse(c).error?.issues.map((i) => `${i.path.join('::')}: ${i.message}`);
    expect(messages({ min_ttl: '2h' })).toEqual([
      'min_ttl: min_ttl (2h) must not be longer than max_ttl (1h); lower min_ttl or raise max_ttl',
    ]);
    expect(messages({ max_entries: 0 })).toEqual(['max_entries: max_entries must be at least 1']);
    expect(messages({ max_entries: 'many' })).toEqual([
      'max_entries: expected a whole number of entries, e.g. 100000',
    ]);
    expect(messages({ max_ttl: '1 hour' })).toEqual([
      'max_ttl: "1 hour" is not a duration; expected e.g. 500ms, 5s or 1m30s',
    ]);
  });

  it('reports hits, misses and sizes; /status shows entries, names and max_entries', () => {
    const c = make({ max_entries: 500 });
    c.learn(answer(POD_A, 'a.example', ['192.0.2.1', '192.0.2.2'], 60));
    c.learn(answer(POD_B, 'b.example', ['192.0.2.2'], 60));
    c.name('192.0.2.1', POD_A);
    c.name('192.0.2.9', POD_A);
    expect({
      hits: c.meter.value('netmon_dns_cache_hits'),
      misses: c.meter.value('netmon_dns_cache_misses'),
      learned: c.meter.value('netmon_dns_cache_learned_answers'),
      addresses: c.meter.value('netmon_dns_cache_entries', { kind: 'address' }),
      clients: c.meter.value('netmon_dns_cache_entries', { kind: 'client' }),
      names: c.meter.value('netmon_dns_cache_names'),
    }).toEqual({ hits: 1, misses: 1, learned: 3, addresses: 2, clients: 1, names: 2 });
    expect(c.details()).toEqual({
      entries: 3,
      client_entries: 1,
      names: 2,
      max_entries: 500,
      min_ttl: '1m',
      max_ttl: '1h',
    });
  });

  it('forgets everything and stops reporting at shutdown', () => {
    const c = make();
    c.learn(answer(POD_A, 'a.example', ['192.0.2.1'], 60));
    c.ext.shutdown();
    expect(c.meter.value('netmon_dns_cache_entries', { kind: 'address' })).toBeUndefined();
    expect(c.name('192.0.2.1')).toBeUndefined();
    expect(c.cache.names.size).toBe(0);
  });
});

describeConformance(dnsCacheFactory);
