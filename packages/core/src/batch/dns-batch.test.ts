import { describe, expect, it } from 'vitest';
import { DnsBatch, type DnsLookupInit, dnsName, rcodeName } from './dns-batch.js';
import { parseIp } from './ip.js';

const LOOKUP: DnsLookupInit = {
  time: 1_700_000_000_000,
  clientIp: '10.0.0.2',
  clientPort: 40000,
  serverIp: 'fd00::53',
  protocol: 6,
  question: 'Api.Example.com',
  questionType: 28,
  rcode: 2,
  latencyMs: 1.5,
  cgroupId: 4242,
  podUid: '8f2a',
  canonical: 'edge.cdn.example',
  answers: [
    { name: 'Api.Example.com', type: 5, ttl: 60, target: 'edge.cdn.example' },
    { name: 'edge.cdn.example', type: 28, ttl: 20, ip: '2001:db8::7' },
    { name: 'edge.cdn.example', type: 1, ttl: 20, ip: '192.0.2.7' },
  ],
};

describe('DnsBatch', () => {
  it('keeps every field of a lookup, and gives it back as pushed', () => {
    const b = DnsBatch.from([LOOKUP, { time: 1, clientIp: '::1', question: 'x.test', answers: [] }]);
    expect(b.lookup(0)).toEqual(LOOKUP);
    expect(b.lookup(1)).toEqual({ time: 1, clientIp: '::1', question: 'x.test', answers: [] });
    expect(Number.isNaN(b.latency[1])).toBe(true);
    expect(b.serverIp(1)).toBe('');
  });

  it('pushWire (addresses as bytes, answers as a parser holds them) makes the same row as push', () => {
    const addr = new Uint8Array(64);
    parseIp('10.0.0.2', addr, 8);
    parseIp('fd00::53', addr, 40);
    const answerAddr = new Uint8Array(48);
    parseIp('2001:db8::7', answerAddr, 16);
    parseIp('192.0.2.7', answerAddr, 32);
    const b = new DnsBatch();
    b.pushWire(
      {
        time: LOOKUP.time,
        addr,
        clientAt: 8,
        serverAt: 40,
        clientPort: 40000,
        protocol: 6,
        question: 'Api.Example.com',
        questionType: 28,
        rcode: 2,
        latencyMs: 1.5,
        cgroupId: 4242,
        podUid: '8f2a',
        canonical: 'edge.cdn.example',
      },
      {
        answers: 3,
        answerName: ['Api.Example.com', 'edge.cdn.example', 'edge.cdn.example'],
        answerType: [5, 28, 1],
        answerTtl: [60, 20, 20],
        answerAddr,
        answerTarget: ['edge.cdn.example', '', ''],
      },
    );
    expect(b.lookup(0)).toEqual(LOOKUP);
    // Names are one dictionary entry each, however often they appear.
    expect(b.names.filter((n) => n === 'edge.cdn.example')).toHaveLength(1);
  });

  it('refuses to be written once sealed', () => {
    const b = DnsBatch.from([LOOKUP]);
    b.seal();
    expect(() => b.push(LOOKUP)).toThrow();
  });
});

describe('dnsName and rcodeName', () => {
  it('spells a name as series carry it: lower case, no trailing dot, the root kept', () => {
    expect(dnsName('WWW.Example.COM.')).toBe('www.example.com');
    expect(dnsName('.')).toBe('.');
    expect(dnsName('a.b')).toBe('a.b');
  });

  it('names response codes, and says RCODE<n> for the rest', () => {
    expect([0, 2, 3, 5, 16, 23].map(rcodeName)).toEqual([
      'NOERROR',
      'SERVFAIL',
      'NXDOMAIN',
      'REFUSED',
      'BADVERS',
      'RCODE23',
    ]);
  });
});
