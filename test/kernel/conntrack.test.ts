// The conntrack receiver and the native addon against the real kernel, in network namespaces, with
// `conntrack -L` as the oracle. Root only: skipped locally without it, a failure in CI.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type FlowBatch, FlowFlags, formatIp } from '@netmon/core';
import { CollectingSink, testSettings } from '@netmon/core/testkit';
import { type EventBatch, openConntrack, subscribeConntrackEvents } from '@netmon/native';
import { type ConntrackReceiver, conntrackReceiverFactory } from '@netmon/receivers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CtEntry, NetnsPair, privileged, startServers, TRAFFIC } from '../harness/netns.js';

const BLOB = 1_000_000;

describe.runIf(privileged())('conntrack in a network namespace', () => {
  let net: NetnsPair;
  let dir: string;

  const py = (...args: string[]) => net.exec(net.b, 'python3', [TRAFFIC, ...args]);

  beforeAll(async () => {
    net = await NetnsPair.create();
    dir = mkdtempSync(path.join(tmpdir(), 'netmon-ct-'));
    writeFileSync(path.join(dir, 'blob.bin'), Buffer.alloc(BLOB, 7));
    await startServers(net, dir);
  });

  afterAll(async () => {
    await net?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const key = (proto: number, src: string, sport: number, dst: string, dport: number) =>
    `${proto} ${src}:${sport} > ${dst}:${dport}`;

  it('a dump equals `conntrack -L` per direction: TCP 1 MB, IPv6, UDP, ICMP, ICMPv6 and DNAT', async () => {
    await net.exec(net.b, 'nft', [
      'add table ip netmon_nat; add chain ip netmon_nat out { type nat hook output priority -100; }; ' +
        'add rule ip netmon_nat out ip daddr 10.200.0.99 tcp dport 80 dnat to 10.200.0.1:8080',
    ]);
    expect(await py('get', `http://${net.ipA}:8080/blob.bin`)).toBe(`${BLOB}\n`);
    expect(await py('get', `http://[${net.ip6A}]:8080/blob.bin`)).toBe(`${BLOB}\n`);
    expect(await py('get', 'http://10.200.0.99:80/blob.bin')).toBe(`${BLOB}\n`);
    await py('udp-send', net.ipA, '5353', '5', '100');
    await py('udp-send', net.ip6A, '5353', '3', '200');
    await py('icmp-echo', net.ipA, '3');
    await py('icmp-echo', net.ip6A, '2');

    const oracle = [...(await net.conntrack(net.b, 'ipv4')), ...(await net.conntrack(net.b, 'ipv6'))];
    const handle = openConntrack(net.path(net.b));
    const dump = await handle.dump(0, null);
    handle.close();

    expect(dump.malformed).toBe(0);
    expect(dump.length).toBe(oracle.length);
    const ours = new Map<string, number>();
    const fmt = (buf: Uint8Array, i: number, family: number) => formatIp(buf, 16 * i, family);
    for (let i = 0; i < dump.length; i++) {
      ours.set(
        key(
          dump.protocol[i],
          fmt(dump.src, i, dump.family[i]),
          dump.srcPort[i],
          fmt(dump.dst, i, dump.family[i]),
          dump.dstPort[i],
        ),
        i,
      );
    }
    const byProto = new Map<number, CtEntry[]>();
    for (const e of oracle) {
      const i = ours.get(key(e.protocol, e.src, e.sport, e.dst, e.dport));
      expect(i, `our dump lacks ${JSON.stringify(e)}; ours: ${[...ours.keys()].join(', ')}`).toBeDefined();
      expect({
        tx: dump.txBytes[i!],
        rx: dump.rxBytes[i!],
        txp: dump.txPackets[i!],
        rxp: dump.rxPackets[i!],
        id: dump.id[i!],
      }).toEqual({ tx: e.txBytes, rx: e.rxBytes, txp: e.txPackets, rxp: e.rxPackets, id: e.id });
      byProto.set(e.protocol, [...(byProto.get(e.protocol) ?? []), e]);
    }
    // Everything we generated is there: 3 TCP (v4, v6, DNAT), 2 UDP, ICMP and ICMPv6.
    expect(byProto.get(6)?.length).toBe(3);
    expect(byProto.get(17)?.length).toBe(2);
    expect(byProto.get(1)?.length).toBe(1);
    expect(byProto.get(58)?.length).toBe(1);
    // The 1 MB body and its headers went from the server (reply direction) to the client.
    const big = oracle.find((e) => e.protocol === 6 && e.dst === net.ipA)!;
    expect(big.rxBytes).toBeGreaterThan(BLOB);
    // DNAT: dialled 10.200.0.99:80, served by 10.200.0.1:8080.
    const natted = oracle.find((e) => e.dst === '10.200.0.99')!;
    const n = ours.get(key(6, natted.src, natted.sport, natted.dst, natted.dport))!;
    expect(dump.flags[n] & FlowFlags.Dnat).toBe(FlowFlags.Dnat);
    expect(fmt(dump.replySrc, n, 4)).toBe(net.ipA);
    expect(dump.replySrcPort[n]).toBe(8080);
    const plain = ours.get(key(6, big.src, big.sport, big.dst, big.dport))!;
    expect(dump.flags[plain] & FlowFlags.Dnat).toBe(0);
    // conntrack's original direction is the initiator's: every row says so.
    expect([...dump.flags].every((f) => f & FlowFlags.InitiatorKnown)).toBe(true);
  });

  it('DESTROY events carry the final counters, NEW events mark the flow opened', async () => {
    const batches: EventBatch[] = [];
    const events = subscribeConntrackEvents(
      { netns: net.path(net.b), newEvents: true, receiveBuffer: 1 << 20, batchSize: 4096, flushMs: 20 },
      (b) => batches.push(b),
    );
    try {
      await py('get', `http://${net.ipA}:8080/blob.bin`);
      const flows = (await net.conntrack(net.b)).filter((e) => e.protocol === 6 && e.dst === net.ipA);
      await net.exec(net.b, 'conntrack', ['-D', '-p', 'tcp', '--dport', '8080']);
      await until(() => destroyed(batches).length >= flows.length);
      const opened = batches.flatMap((b) =>
        rows(b)
          .filter((i) => b.event[i] === 1)
          .map((i) => b.id[i]),
      );
      const finals = destroyed(batches);
      // The flow of this test was opened while subscribed; its DESTROY matches the table's last word.
      const last = finals.find((f) => opened.includes(f.id))!;
      expect(last).toBeDefined();
      const before = flows.find((e) => e.id === last.id)!;
      expect(last).toMatchObject({ tx: before.txBytes, rx: before.rxBytes, flags: FlowFlags.Closed });
    } finally {
      events.close();
    }
  });

  it('the receiver resyncs with a full read when the event socket overflows, and counts the loss', async () => {
    const settings = testSettings('receiver', 'conntrack/overflow');
    const sink = new CollectingSink<FlowBatch>();
    const receiver = (await conntrackReceiverFactory.create(
      settings,
      conntrackReceiverFactory.config.parse({
        netns: net.path(net.b),
        read_interval: '1h',
        event_buffer_size: 4096,
        protocols: ['udp'],
      }),
      sink,
    )) as ConntrackReceiver;
    receiver.start();
    try {
      await until(() => receiver.counters.reads >= 1);
      // A burst of 20,000 NEW events into a 4 KiB socket buffer.
      const file = path.join(dir, 'burst.txt');
      const lines: string[] = [];
      for (let i = 0; i < 20_000; i++) {
        lines.push(
          `-I -t 600 -s 10.201.${i >> 8}.${i & 255} -d 10.200.0.1 -p udp --sport ${1024 + (i % 60000)} --dport 53`,
        );
      }
      writeFileSync(file, `${lines.join('\n')}\n`);
      await net.exec(net.b, 'conntrack', ['-R', file]);
      // Every loss is answered by a read that starts after it was noticed, so a read after the burst's
      // last loss sees every entry although their events were lost (read_interval is an hour).
      const lastSnapshot = () => sink.batches.filter((b) => b.snapshot).at(-1);
      await until(() => (lastSnapshot()?.length ?? 0) >= 20_000, 10_000);
      expect(receiver.counters.eventOverflows).toBeGreaterThan(0);
      expect(receiver.counters.resyncs).toBeGreaterThan(0);
      expect(lastSnapshot()!.origin).toBe('conntrack/overflow');
    } finally {
      await receiver.shutdown?.();
      await net.exec(net.b, 'conntrack', ['-D', '-s', '10.201.0.0/16']).catch(() => {});
    }
  });
});

function rows(b: EventBatch): number[] {
  return Array.from({ length: b.length }, (_, i) => i);
}

function destroyed(batches: EventBatch[]) {
  return batches.flatMap((b) =>
    rows(b)
      .filter((i) => b.event[i] === 2)
      .map((i) => ({
        id: b.id[i],
        tx: b.txBytes[i],
        rx: b.rxBytes[i],
        flags: b.flags[i] & ~(FlowFlags.Dnat | FlowFlags.InitiatorKnown),
      })),
  );
}

async function until(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
