import { describe, expect, it } from 'vitest';
import { formatIp, isV4Mapped, parseIp } from './ip.js';

const roundTrip = (text: string) => {
  const buf = new Uint8Array(32);
  const family = parseIp(text, buf, 16);
  return { family, text: family ? formatIp(buf, 16) : null, bytes: [...buf.subarray(16)] };
};

describe('ip', () => {
  it('stores IPv4 as IPv4-mapped and prints it as a dotted quad', () => {
    const r = roundTrip('10.200.0.1');
    expect(r.family).toBe(4);
    expect(r.bytes).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 10, 200, 0, 1]);
    expect(r.text).toBe('10.200.0.1');
    expect(isV4Mapped(new Uint8Array(r.bytes), 0)).toBe(true);
  });

  it.each([
    ['2001:db8::1', '2001:db8::1'],
    ['2001:0DB8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['::', '::'],
    ['::1', '::1'],
    ['fe80::', 'fe80::'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // RFC 5952: first of equal runs
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // a single zero word is not compressed
    ['fd00:10:244::a0f', 'fd00:10:244::a0f'],
    ['64:ff9b::192.0.2.33', '64:ff9b::c000:221'],
  ])('parses and canonicalises %s', (input, expected) => {
    const r = roundTrip(input);
    expect(r.family).toBe(6);
    expect(r.text).toBe(expected);
  });

  it('reads ::ffff:a.b.c.d as the IPv4 address it maps', () => {
    expect(roundTrip('::ffff:192.168.1.1').text).toBe('192.168.1.1');
  });

  it.each([
    '',
    '1.2.3',
    '1.2.3.256',
    '01.2.3.4',
    '1.2.3.4.5',
    'a.b.c.d',
    '1::2::3',
    '12345::',
    'fe80::1%eth0',
    '1:2:3:4:5:6:7:8:9',
    'example.com',
  ])('rejects %j', (input) => {
    expect(roundTrip(input).family).toBe(0);
  });
});
