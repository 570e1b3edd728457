import type os from 'node:os';
import { parseIp } from '@netmon/core';
import { describe, expect, it } from 'vitest';
import { HostAddresses, INTERFACE_REFRESH_MS } from './local.js';

const at = (ip: string) => {
  const buf = new Uint8Array(32);
  // at offset 16, as the second row of a batch's address column
  expect(parseIp(ip, buf, 16), ip).not.toBe(0);
  return buf;
};
const has = (h: HostAddresses, ip: string) => h.has(at(ip), 16);

function iface(...addresses: string[]): os.NetworkInterfaceInfo[] {
  return addresses.map(
    (address) =>
      ({
        address,
        family: address.includes(':') ? 'IPv6' : 'IPv4',
        netmask: '255.255.255.0',
        mac: '02:00:00:00:00:01',
        internal: false,
        cidr: null,
        scopeid: 0,
      }) as os.NetworkInterfaceInfo,
  );
}

describe('HostAddresses: this host’s own addresses', () => {
  it('loopback always: 127.0.0.0/8, ::1 and ::ffff:127.x, before any interface is read', () => {
    const h = new HostAddresses({ interfaces: () => ({}) });
    for (const ip of ['127.0.0.1', '127.0.0.53', '127.255.255.254', '::1', '::ffff:127.0.0.1']) {
      expect(has(h, ip), ip).toBe(true);
    }
    for (const ip of ['128.0.0.1', '126.255.255.255', '::2', '::', '::ffff:128.0.0.1', '10.0.0.1']) {
      expect(has(h, ip), ip).toBe(false);
    }
  });

  it('the interfaces’ addresses and the node record’s, exactly (not their subnets)', () => {
    const h = new HostAddresses({
      interfaces: () => ({
        eth0: iface('192.0.2.2', 'fd00::2', 'fe80::fc:ff:fe00:1'),
        docker0: iface('172.17.0.1'),
      }),
    });
    h.refresh();
    h.setNodeAddresses(['10.0.1.10', '2600:1f18::10']);
    for (const ip of [
      '192.0.2.2',
      'fd00::2',
      'fe80::fc:ff:fe00:1',
      '172.17.0.1',
      '10.0.1.10',
      '2600:1f18::10',
    ]) {
      expect(has(h, ip), ip).toBe(true);
    }
    for (const ip of ['192.0.2.3', 'fd00::3', '172.17.0.2', '10.0.1.11', '2600:1f18::11']) {
      expect(has(h, ip), ip).toBe(false);
    }
    // the node record changes (a node replaced, an address added): the old one is no longer ours
    h.setNodeAddresses(['10.0.1.11']);
    expect(has(h, '10.0.1.10')).toBe(false);
    expect(has(h, '10.0.1.11')).toBe(true);
  });

  it('reads the interfaces again now and then, not at every batch', () => {
    let now = 1_000_000;
    let reads = 0;
    let current = ['192.0.2.2'];
    const h = new HostAddresses({
      interfaces: () => {
        reads++;
        return { eth0: iface(...current) };
      },
      now: () => now,
    });
    h.refresh();
    h.refresh();
    expect(reads).toBe(1);
    // a VPN comes up: not seen until the refresh interval has passed
    current = ['192.0.2.2', '10.8.0.2'];
    now += INTERFACE_REFRESH_MS - 1;
    h.refresh();
    expect(reads).toBe(1);
    expect(has(h, '10.8.0.2')).toBe(false);
    now += 1;
    h.refresh();
    expect(reads).toBe(2);
    expect(has(h, '10.8.0.2')).toBe(true);
    // and goes away again
    current = ['192.0.2.2'];
    now += INTERFACE_REFRESH_MS;
    h.refresh();
    expect(has(h, '10.8.0.2')).toBe(false);
    expect(h.list()).toEqual(['192.0.2.2']);
  });

  it('a failed read keeps what was known, and says why', () => {
    let now = 0;
    let fail = false;
    const h = new HostAddresses({
      interfaces: () => {
        if (fail) throw new Error('uv_interface_addresses returned Unknown system error 1');
        return { eth0: iface('192.0.2.2') };
      },
      now: () => now,
    });
    h.refresh();
    fail = true;
    now += INTERFACE_REFRESH_MS;
    h.refresh();
    expect(h.problem).toMatch(/uv_interface_addresses/);
    expect(has(h, '192.0.2.2')).toBe(true);
    expect(has(h, '127.0.0.1')).toBe(true);
  });
});
