import { parseIp } from '@netmon/core';
import { MetadataStore } from '@netmon/extensions';
import { describe, expect, it } from 'vitest';
import { AddressSet, HostAddresses, INTERFACE_REFRESH_MS, STATUS_ADDRESSES } from './local.js';
import { staticMetadata } from './testdata/cluster.js';
import { iface } from './testdata/interfaces.js';

const at = (ip: string) => {
  const buf = new Uint8Array(32);
  // at offset 16, as the second row of a batch's address column
  expect(parseIp(ip, buf, 16), ip).not.toBe(0);
  return buf;
};
const has = (h: HostAddresses, ip: string) => h.has(at(ip), 16);

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

describe('HostAddresses: thousands of addresses (kube-proxy IPVS, many pods)', () => {
  // kube-ipvs0 carries every Service's ClusterIP (both families); each pod's veth gives the host a
  // link-local address; the bridges and cilium_host are the host's own.
  const vips: string[] = [];
  for (let i = 0; i < 4000; i++) vips.push(`10.96.${i >> 8}.${i & 255}`);
  for (let i = 0; i < 1000; i++) vips.push(`fd00:96::${i.toString(16)}`);
  const veths = Array.from({ length: 3000 }, (_, i) => `fe80::${(i + 1).toString(16)}:ff:fe00:1`);
  const own = ['192.0.2.2', 'fd00::2', '172.17.0.1', '10.244.1.1', '169.254.20.10'];
  const host = () =>
    new HostAddresses({
      interfaces: () => ({
        lo: iface('127.0.0.1', '::1'),
        eth0: iface('192.0.2.2', 'fd00::2'),
        docker0: iface('172.17.0.1'),
        cilium_host: iface('10.244.1.1'),
        nodelocaldns: iface('169.254.20.10'),
        'kube-ipvs0': iface(...vips),
        ...Object.fromEntries(veths.map((a, i) => [`lxc${i}`, iface(a)])),
      }),
    });

  it('every interface address but kube-ipvs0’s is the host’s; nothing else is', () => {
    const h = host();
    h.refresh();
    h.setNodeAddresses(['10.0.1.10', '2600:1f18::10']);
    const mine = [...own, ...veths, '10.0.1.10', '2600:1f18::10'];
    for (const ip of mine) expect(has(h, ip), ip).toBe(true);
    // Service VIPs are Services (k8s_metadata's), not this host
    for (const ip of vips) expect(has(h, ip), ip).toBe(false);
    // neighbours of every address in the set, in each family and in each 32-bit word of IPv6
    const near = [
      ...Array.from({ length: 2000 }, (_, i) => `192.0.${2 + (i >> 8)}.${i & 255}`).filter(
        (a) => a !== '192.0.2.2',
      ),
      ...Array.from({ length: 2000 }, (_, i) => `fe80::${(i + 3001).toString(16)}:ff:fe00:1`),
      ...Array.from({ length: 500 }, (_, i) => `fe80::${(i + 1).toString(16)}:ff:fe00:2`),
      ...Array.from({ length: 500 }, (_, i) => `fe81::${(i + 1).toString(16)}:ff:fe00:1`),
      ...Array.from({ length: 500 }, (_, i) => `fe80:0:0:1:${(i + 1).toString(16)}:ff:fe00:1`),
      '0.0.0.0',
      '::',
      '::c000:202', // IPv4-compatible 192.0.2.2: another address than ::ffff:192.0.2.2
      '10.0.1.11',
      '2600:1f18::11',
    ];
    for (const ip of near) expect(has(h, ip), ip).toBe(false);
    expect(has(h, '::ffff:192.0.2.2')).toBe(true);
  });

  it('/status lists the first 16 and the count, and which interfaces were left out', () => {
    const h = host();
    h.refresh();
    h.setNodeAddresses(['10.0.1.10']);
    const s = h.status();
    expect(s.host_addresses_count).toBe(1 + 2 + own.length + veths.length);
    // the node record first, then the interfaces in their order
    expect(s.host_addresses).toEqual([
      '10.0.1.10',
      '127.0.0.1',
      '::1',
      ...own,
      ...veths.slice(0, STATUS_ADDRESSES - 3 - own.length),
    ]);
    expect(s.host_interfaces_skipped).toEqual({ 'kube-ipvs0': 5000 });
    expect(s.host_interfaces).toBe('read (auto: the flows are taken to come from this machine)');
  });
});

describe('AddressSet: a hashed set of 16-byte addresses', () => {
  it('holds exactly what was added, in both families, with no false hit among 100 000 others', () => {
    const v4 = Array.from({ length: 5000 }, (_, i) => `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`);
    // IPv6 keys that differ in one 32-bit word each, so every word must take part in the hash and compare
    const v6 = Array.from({ length: 5000 }, (_, i) => {
      const h = ((i >> 2) + 1).toString(16);
      return [`2001:db8::${h}`, `2001:db9:0:0:${h}::`, `2001:dba:0:${h}::1`, `2002:${h}::1`][i % 4];
    });
    const set = new AddressSet(v4.length, v6.length);
    for (const ip of [...v4, ...v6]) expect(set.add(at(ip), 16), ip).toBe(true);
    for (const ip of [v4[17], v6[4999], '0.0.0.0', '::']) expect(set.add(at(ip), 16), ip).toBe(false);
    expect(set.size).toBe(10_000);
    for (const ip of [...v4, ...v6]) expect(set.has(at(ip), 16), ip).toBe(true);
    // The oracle: the members' 16 bytes as hex (one address has several spellings).
    const hex = (buf: Uint8Array, off: number) => Buffer.from(buf.subarray(off, off + 16)).toString('hex');
    const members = new Set([...v4, ...v6].map((ip) => hex(at(ip), 16)));
    let hits = 0;
    const wrong: string[] = [];
    const buf = new Uint8Array(16);
    for (let i = 0; i < 100_000; i++) {
      // pseudo-random addresses around the members: the same /16, the same leading IPv6 words
      const w = ((i * 31) & 0x1fff).toString(16);
      const ip =
        i % 2 === 0
          ? `10.0.${(i * 7919) & 255}.${(i * 104729) & 255}`
          : [
              `2001:db8::${w}`,
              `2001:db9:0:0:${w}::`,
              `2001:dba:0:${w}::1`,
              `2002:${w}::1`,
              `2001:db8::${w}:1`,
            ][i % 5];
      parseIp(ip, buf, 0);
      const member = members.has(hex(buf, 0));
      if (member) hits++;
      if (set.has(buf, 0) !== member) wrong.push(ip);
    }
    expect(wrong).toEqual([]);
    // both answers were asked for many times
    expect(hits).toBeGreaterThan(10_000);
    expect(hits).toBeLessThan(90_000);
    expect(set.has(at('0.0.0.0'), 16)).toBe(false);
    expect(set.has(at('::'), 16)).toBe(false);
  });

  it('an empty set answers no without looping', () => {
    const set = new AddressSet(0, 0);
    expect(set.has(at('10.0.0.1'), 16)).toBe(false);
    expect(set.has(at('fd00::1'), 16)).toBe(false);
  });
});

describe('HostAddresses.sync: are the interfaces this node’s?', () => {
  const store = () => {
    const s = new MetadataStore();
    s.upsertNode({ name: 'node-a', ips: ['10.0.1.10'], podCidrs: [] });
    return s;
  };
  const eth0 = () => ({ eth0: iface('192.0.2.2') });

  it('not when k8s_metadata reads a snapshot: loopback and node_name’s record only', () => {
    const h = new HostAddresses({ interfaces: eth0 });
    h.sync({ ...staticMetadata(store(), 'node-a'), offline: true });
    expect(has(h, '192.0.2.2')).toBe(false);
    expect(has(h, '10.0.1.10')).toBe(true);
    expect(has(h, '127.0.0.1')).toBe(true);
    expect(h.list()).toEqual(['10.0.1.10']);
    expect(h.status().host_interfaces).toMatch(/^not read \(auto: k8s_metadata reads a snapshot/);
    // a live cluster: they are
    const live = new HostAddresses({ interfaces: eth0 });
    live.sync(staticMetadata(store(), 'node-a'));
    expect(has(live, '192.0.2.2')).toBe(true);
  });

  it('host_interfaces decides over auto, both ways; the first key set stays', () => {
    const offline = new HostAddresses({ interfaces: eth0 });
    expect(offline.configure(true, 'processors::classify::host_interfaces')).toBeUndefined();
    offline.sync({ ...staticMetadata(store(), 'node-a'), offline: true });
    expect(has(offline, '192.0.2.2')).toBe(true);
    expect(offline.status().host_interfaces).toBe('read (processors::classify::host_interfaces: true)');

    const live = new HostAddresses({ interfaces: eth0 });
    live.sync(staticMetadata(store(), 'node-a'));
    expect(has(live, '192.0.2.2')).toBe(true);
    live.configure(false, 'processors::classify/replay::host_interfaces');
    live.sync(staticMetadata(store(), 'node-a'));
    expect(has(live, '192.0.2.2')).toBe(false);
    expect(has(live, '10.0.1.10')).toBe(true);
    // auto changes nothing; the other value from another key is refused, naming the key in force
    expect(live.configure('auto', 'processors::classify/b::host_interfaces')).toBeUndefined();
    expect(live.configure(true, 'processors::classify/b::host_interfaces')).toBe(
      'processors::classify/replay::host_interfaces',
    );
    live.sync(staticMetadata(store(), 'node-a'));
    expect(has(live, '192.0.2.2')).toBe(false);
  });

  it('follows the node record when the nodes change', () => {
    const s = store();
    const meta = staticMetadata(s, 'node-a');
    const h = new HostAddresses({ interfaces: () => ({}) });
    h.sync(meta);
    expect(has(h, '10.0.1.10')).toBe(true);
    s.upsertNode({ name: 'node-a', ips: ['10.0.1.20'], podCidrs: [] });
    h.sync(meta);
    expect(has(h, '10.0.1.10')).toBe(false);
    expect(has(h, '10.0.1.20')).toBe(true);
  });

  it('one set per k8s_metadata extension', () => {
    const a = staticMetadata(store());
    const b = staticMetadata(store());
    expect(HostAddresses.of(a)).toBe(HostAddresses.of(a));
    expect(HostAddresses.of(a)).not.toBe(HostAddresses.of(b));
  });
});
