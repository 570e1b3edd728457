// The ebpf receiver against the real kernel: its programs on a real cgroup, processes that join cgroups
// before they open sockets, servers in a network namespace, and `conntrack -L` and bpftool as oracles.
// Root only: skipped locally without it, a failure in CI.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type FlowBatch, FlowFlags, formatIp } from '@netmon/core';
import { CollectingSink, testSettings } from '@netmon/core/testkit';
import { ebpfReceiverFactory } from '@netmon/receivers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// The receiver itself and its node access, to point the coverage figure at a test namespace's counters.
import { parseListening } from '../../packages/receivers/src/ebpf/kernel.js';
import { nodeKernel } from '../../packages/receivers/src/ebpf/node-kernel.js';
import { EbpfReceiver } from '../../packages/receivers/src/ebpf/receiver.js';
import { freePort } from '../harness/agent.js';
import { attachedPrograms, TestCgroup } from '../harness/cgroup.js';
import { NetnsPair, privileged, startServers, TRAFFIC, waitForOutput } from '../harness/netns.js';

const BLOB = 1_000_000;

interface Row {
  family: number;
  protocol: number;
  src: string;
  sport: number;
  dst: string;
  dport: number;
  tx: number;
  rx: number;
  txp: number;
  rxp: number;
  flags: number;
  srcCgroup?: number;
  dstCgroup?: number;
}

function rows(batches: FlowBatch[]): Row[] {
  const out: Row[] = [];
  for (const b of batches) {
    for (let i = 0; i < b.length; i++) {
      out.push({
        family: b.family[i],
        protocol: b.protocol[i],
        src: formatIp(b.srcAddr, 16 * i, b.family[i]),
        sport: b.srcPort[i],
        dst: formatIp(b.dstAddr, 16 * i, b.family[i]),
        dport: b.dstPort[i],
        tx: b.txBytes[i],
        rx: b.rxBytes[i],
        txp: b.txPackets[i],
        rxp: b.rxPackets[i],
        flags: b.flags[i],
        srcCgroup: b.getAttribute(i, 'src.cgroup.id') as number | undefined,
        dstCgroup: b.getAttribute(i, 'dst.cgroup.id') as number | undefined,
      });
    }
  }
  return out;
}

/** Sums rows of the same flow over several batches (a flow may span reads). */
function totals(list: Row[]): Map<string, Row> {
  const m = new Map<string, Row>();
  for (const r of list) {
    const k = `${r.protocol} ${r.src}:${r.sport} > ${r.dst}:${r.dport}`;
    const have = m.get(k);
    if (!have) m.set(k, { ...r });
    else {
      have.tx += r.tx;
      have.rx += r.rx;
      have.txp += r.txp;
      have.rxp += r.rxp;
    }
  }
  return m;
}

describe.runIf(privileged())('ebpf receiver on a real cgroup', () => {
  let net: NetnsPair;
  let dir: string;
  let cg: TestCgroup;

  beforeAll(async () => {
    net = await NetnsPair.create('eb');
    dir = mkdtempSync(path.join(tmpdir(), 'netmon-ebpf-'));
    writeFileSync(path.join(dir, 'blob.bin'), Buffer.alloc(BLOB, 7));
    await startServers(net, dir);
    cg = new TestCgroup();
  });

  afterAll(async () => {
    try {
      await cg?.destroy();
    } finally {
      await net?.destroy();
      if (dir) rmSync(dir, { recursive: true, force: true });
    }
  });

  /**
   * A receiver on `cgroup` whose only read is the final one at shutdown (read_interval 1 h). Tests stop it
   * in a finally block, so a failed assertion leaves no program attached (shutdown is idempotent).
   */
  async function receiverOn(cgroup: string, config: Record<string, unknown> = {}) {
    const sink = new CollectingSink<FlowBatch>();
    const settings = testSettings('receiver', 'ebpf/test');
    const receiver = (await ebpfReceiverFactory.create(
      settings,
      ebpfReceiverFactory.config.parse({ cgroup_path: cgroup, read_interval: '1h', ...config }),
      sink,
    )) as EbpfReceiver;
    receiver.start();
    return {
      receiver,
      sink,
      settings,
      /** Stops the receiver (its final read hands over everything counted) and returns the rows. */
      async stop() {
        await receiver.shutdown();
        return rows(sink.batches);
      },
    };
  }

  it('counts TCP (IPv4, IPv6) and UDP of a process in the cgroup exactly as conntrack does, with ports and the initiator, and nothing of a process outside it', async () => {
    const monitored = cg.child('counted');
    const outside = cg.child('not-counted');
    const r = await receiverOn(monitored);
    let got: Row[];
    try {
      const get = (cgroup: string, url: string) => cg.run(cgroup, 'python3', [TRAFFIC, 'get', url], net.b);
      expect(await get(monitored, `http://${net.ipA}:8080/blob.bin`)).toBe(`${BLOB}\n`);
      expect(await get(monitored, `http://[${net.ip6A}]:8080/blob.bin`)).toBe(`${BLOB}\n`);
      expect(
        await cg.run(monitored, 'python3', [TRAFFIC, 'udp-send', net.ipA, '5353', '5', '100'], net.b),
      ).toBe('500\n');
      expect(await get(outside, `http://${net.ipA}:8080/blob.bin`)).toBe(`${BLOB}\n`);
    } finally {
      got = await r.stop();
    }
    expect(r.sink.batches.every((b) => b.temporality === 'delta' && b.origin === 'ebpf/test')).toBe(true);

    const oracle = [...(await net.conntrack(net.b, 'ipv4')), ...(await net.conntrack(net.b, 'ipv6'))];
    const ours = totals(got);
    const id = TestCgroup.id(monitored);
    let matched = 0;
    for (const e of oracle) {
      const row = ours.get(`${e.protocol} ${e.src}:${e.sport} > ${e.dst}:${e.dport}`);
      if (!row) continue;
      matched++;
      expect(
        { tx: row.tx, rx: row.rx, txp: row.txp, rxp: row.rxp },
        `${e.src}:${e.sport} > ${e.dst}:${e.dport}`,
      ).toEqual({ tx: e.txBytes, rx: e.rxBytes, txp: e.txPackets, rxp: e.rxPackets });
      expect(row.flags & FlowFlags.InitiatorKnown).toBe(FlowFlags.InitiatorKnown);
      expect(row.srcCgroup).toBe(id);
      expect(row.dstCgroup).toBeUndefined();
    }
    // Both HTTP connections and the UDP flow of the counted process; the outside process's connection is
    // in conntrack (4 entries) but not in ours.
    expect(matched).toBe(3);
    expect(oracle.filter((e) => e.dport === 8080)).toHaveLength(3);
    expect([...ours.values()].filter((row) => row.dport === 8080)).toHaveLength(2);
    expect([...ours.values()].find((row) => row.protocol === 17)).toMatchObject({
      dport: 5353,
      tx: 5 * 128,
      rx: 5 * 128,
    });
  });

  it('keeps a connection to a DNAT-rewritten address one flow: dst as dialled, backend as reached, bytes as conntrack counts them', async () => {
    const counted = cg.child('dnat');
    await net.exec(net.b, 'nft', [
      'add table ip netmon_nat; add chain ip netmon_nat out { type nat hook output priority -100; }; ' +
        'add rule ip netmon_nat out ip daddr 10.200.0.99 tcp dport 80 dnat to 10.200.0.1:8080',
    ]);
    const r = await receiverOn(counted);
    try {
      expect(
        await cg.run(counted, 'python3', [TRAFFIC, 'get', 'http://10.200.0.99:80/blob.bin'], net.b),
      ).toBe(`${BLOB}\n`);
    } finally {
      await r.receiver.shutdown();
    }
    const batch = r.sink.batches.find((b) => b.length > 0);
    expect(batch?.length).toBe(1);
    const row = batch!.row(0);
    const oracle = (await net.conntrack(net.b, 'ipv4')).find((e) => e.dst === '10.200.0.99');
    expect(oracle).toBeDefined();
    expect({
      dst: row.dstIp,
      dport: row.dstPort,
      backend: row.backendIp,
      backendPort: row.backendPort,
      dnat: (row.flags & FlowFlags.Dnat) !== 0,
      tx: row.txBytes,
      rx: row.rxBytes,
    }).toEqual({
      dst: '10.200.0.99',
      dport: 80,
      backend: '10.200.0.1',
      backendPort: 8080,
      dnat: true,
      tx: oracle!.txBytes,
      rx: oracle!.rxBytes,
    });
  });

  it('reports a connection between two local processes once, initiator → responder, with both cgroups', async () => {
    const server = cg.child('pair/server');
    const client = cg.child('pair/client');
    const r = await receiverOn(path.dirname(server));
    const http = cg.spawn(server, 'python3', [TRAFFIC, 'serve-http', dir, '127.0.0.1', '8090'], net.b);
    let all: Row[];
    try {
      await waitForOutput(http, /listening/);
      expect(await cg.run(client, 'python3', [TRAFFIC, 'get', 'http://127.0.0.1:8090/blob.bin'], net.b)).toBe(
        `${BLOB}\n`,
      );
    } finally {
      all = await r.stop();
      http.kill('SIGKILL');
    }
    const got = [...totals(all).values()].filter((row) => row.protocol === 6);
    const oracle = (await net.conntrack(net.b, 'ipv4')).filter((e) => e.dport === 8090);
    expect(oracle).toHaveLength(1);
    expect(got).toHaveLength(1);
    expect(got[0]).toMatchObject({
      src: '127.0.0.1',
      sport: oracle[0].sport,
      dst: '127.0.0.1',
      dport: 8090,
      tx: oracle[0].txBytes,
      txp: oracle[0].txPackets,
      srcCgroup: TestCgroup.id(client),
      dstCgroup: TestCgroup.id(server),
    });
    expect(got[0].flags & FlowFlags.InitiatorKnown).toBe(FlowFlags.InitiatorKnown);
    // The responder's bytes as it sent them. The server closes first, and a socket in TIME_WAIT passes
    // no cgroup hook: its last ACK (52 bytes with timestamps) is the one packet conntrack counts more.
    expect(oracle[0].rxBytes - got[0].rx).toBeGreaterThanOrEqual(0);
    expect(oracle[0].rxBytes - got[0].rx).toBeLessThanOrEqual(52);
    expect(oracle[0].rxPackets - got[0].rxp).toBeLessThanOrEqual(1);
  });

  it('orients a connection older than the agent by the local listening socket', async () => {
    const server = cg.child('old/server');
    const client = cg.child('old/client');
    const port = await freePort();
    // Both ends on this host's loopback, in the agent's own namespace, where /proc/net/tcp lists the listener.
    const http = cg.spawn(server, 'python3', [TRAFFIC, 'serve-http', dir, '127.0.0.1', String(port)]);
    await waitForOutput(http, /listening/);
    // A slow transfer (20 kB/s) that is under way before the programs are attached: no SYN is seen.
    const get = cg.spawn(client, 'python3', [
      TRAFFIC,
      'get',
      `http://127.0.0.1:${port}/blob.bin`,
      '1',
      '20000',
    ]);
    let got: Row[];
    try {
      await new Promise((res) => setTimeout(res, 1000));
      const r = await receiverOn(path.dirname(server));
      try {
        await new Promise((res) => setTimeout(res, 1000));
      } finally {
        got = (await r.stop()).filter((row) => row.protocol === 6);
      }
    } finally {
      get.kill('SIGKILL');
      http.kill('SIGKILL');
    }
    expect(got).toHaveLength(1);
    expect(got[0]).toMatchObject({
      src: '127.0.0.1',
      dst: '127.0.0.1',
      dport: port,
      srcCgroup: TestCgroup.id(client),
      dstCgroup: TestCgroup.id(server),
    });
    expect(got[0].rx).toBeGreaterThan(0);
    expect(got[0].flags & FlowFlags.InitiatorKnown).toBe(FlowFlags.InitiatorKnown);
  });

  it('keeps an unconnected UDP client (sendto from an ephemeral port) as src, though /proc/net/udp lists its socket like a server', async () => {
    const client = cg.child('udp/client');
    // A sibling of the counted cgroup: its socket is not seen, so the client's row stays unpaired.
    const server = cg.child('udp/server');
    const port = await freePort();
    const echo = cg.spawn(server, 'python3', [TRAFFIC, 'udp-echo', '127.0.0.1', String(port)]);
    await waitForOutput(echo, /listening/);
    const r = await receiverOn(client);
    // Three datagrams of 50 bytes and their echoes; the socket then stays open (bound, unconnected) until
    // the receiver's read has looked at the listening sockets.
    const script = `import socket, time\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.settimeout(5)\nfor i in range(3):\n  s.sendto(b"q" * 50, ("127.0.0.1", ${port}))\n  s.recvfrom(100)\nprint(s.getsockname()[1], flush=True)\ntime.sleep(60)\n`;
    const sender = cg.spawn(client, 'python3', ['-c', script]);
    let printed = '';
    sender.stdout?.on('data', (d: Buffer) => {
      printed += d;
    });
    let got: Row[];
    let clientPort = 0;
    try {
      await waitForOutput(sender, /^\d+\n/m);
      clientPort = Number(printed.trim());
      // What makes the case: the client's socket looks like a server's (07, no remote end) …
      const bound = new Set<number>();
      parseListening(readFileSync('/proc/net/udp', 'utf8'), 'udp', bound);
      expect(bound.has(clientPort)).toBe(true);
      // … but its port is ephemeral.
      const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/);
      expect(clientPort).toBeGreaterThanOrEqual(Number(low));
      expect(clientPort).toBeLessThanOrEqual(Number(high));
    } finally {
      got = await r.stop();
      sender.kill('SIGKILL');
      echo.kill('SIGKILL');
    }
    const udp = got.filter((row) => row.protocol === 17);
    expect(udp).toEqual([
      {
        family: 4,
        protocol: 17,
        src: '127.0.0.1',
        sport: clientPort,
        dst: '127.0.0.1',
        dport: port,
        // IP length: 20 + 8 + 50 bytes a datagram.
        tx: 3 * 78,
        rx: 3 * 78,
        txp: 3,
        rxp: 3,
        flags: FlowFlags.InitiatorKnown,
        srcCgroup: TestCgroup.id(client),
        dstCgroup: undefined,
      },
    ]);
  });

  it('counts a dual-stack socket (AF_INET6 without IPV6_V6ONLY) dialling an IPv4 address as IPv4, with its addresses and bytes as conntrack counts them', async () => {
    const counted = cg.child('dual-stack');
    const r = await receiverOn(counted);
    // HTTP/1.0: the server closes after the body, which the client reads to the end.
    const script = `import socket\ns = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)\ns.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)\ns.connect(("::ffff:${net.ipA}", 8080))\ns.sendall(b"GET /blob.bin HTTP/1.0\\r\\nHost: a\\r\\n\\r\\n")\nn = 0\nwhile True:\n  d = s.recv(65536)\n  if not d:\n    break\n  n += len(d)\nprint(s.getsockname()[1], n, flush=True)\ns.close()\n`;
    let got: Row[];
    let out = '';
    try {
      out = await cg.run(counted, 'python3', ['-c', script], net.b);
    } finally {
      got = await r.stop();
    }
    const [sport, received] = out.trim().split(' ').map(Number);
    expect(received).toBeGreaterThan(BLOB);
    const oracle = (await net.conntrack(net.b, 'ipv4')).find((e) => e.sport === sport && e.dport === 8080);
    expect(oracle).toBeDefined();
    const ours = [...totals(got).values()].filter((row) => row.protocol === 6);
    expect(ours).toHaveLength(1);
    expect(ours[0]).toEqual({
      family: 4,
      protocol: 6,
      src: net.ipB,
      sport,
      dst: net.ipA,
      dport: 8080,
      tx: oracle!.txBytes,
      rx: oracle!.rxBytes,
      txp: oracle!.txPackets,
      rxp: oracle!.rxPackets,
      flags: FlowFlags.InitiatorKnown,
      srcCgroup: TestCgroup.id(counted),
      dstCgroup: undefined,
    });
  });

  it('counts the packets a full buffer cannot take, and keeps reading', async () => {
    const small = cg.child('small');
    // 2 s: the 40 flows below surely land in the first interval, even on a busy machine.
    const r = await receiverOn(small, { max_flows: 16, read_interval: '2s' });
    let got: Row[];
    let lostAtFirstRead = 0;
    try {
      // 40 UDP flows (one socket each) in one interval: 16 fit, the rest is lost and counted.
      const script = `import socket\nfor i in range(40):\n  s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n  s.sendto(b"x" * 72, ("${net.ipA}", 5353))\n  s.settimeout(2)\n  s.recvfrom(100)\n`;
      await cg.run(small, 'python3', ['-c', script], net.b);
      // Wait for the read that ends that interval (at most 2 s after start, plus the read itself).
      for (const end = Date.now() + 10_000; r.receiver.counters.reads < 1 && Date.now() < end; ) {
        await new Promise((res) => setTimeout(res, 50));
      }
      expect(r.receiver.counters.reads).toBeGreaterThanOrEqual(1);
      lostAtFirstRead = r.receiver.counters.lostPackets;
      // Still reading after the overflow: a flow of the next interval is counted.
      await cg.run(small, 'python3', [TRAFFIC, 'udp-send', net.ipA, '5353', '1', '10'], net.b);
    } finally {
      got = await r.stop();
    }
    const c = r.receiver.counters;
    expect(lostAtFirstRead).toBeGreaterThan(0);
    expect(c.lostPackets).toBe(lostAtFirstRead);
    expect(c.lostBytes).toBe(c.lostPackets * 100);
    const counted = got.reduce((s, row) => s + row.txp + row.rxp, 0);
    // Every packet is either in a row or in the loss counter: 40 flows × 2 packets, plus the last one's 2.
    expect(counted + c.lostPackets).toBe(82);
    // The first interval held as many flows as the buffer does; the last flow came after it.
    expect(r.sink.batches[0].length).toBe(16);
    expect(got.filter((row) => row.tx === 38)).toHaveLength(1);
  });

  it('says what share of the interface bytes it accounted for (coverage), from the kernel counters of the namespace', async () => {
    const counted = cg.child('coverage');
    // The receiver reads /proc/net/dev of the namespace the traffic crosses (namespace b, through a
    // process living there) instead of the test runner's own: the rest is the real node access.
    const resident = net.spawn(net.b, 'sleep', ['60']);
    const vethB = `v${net.b}`.slice(0, 15);
    const kernel = {
      ...nodeKernel,
      readProc: (file: string) =>
        nodeKernel.readProc(file === '/proc/net/dev' ? `/proc/${resident.pid}/net/dev` : file),
    };
    const sink = new CollectingSink<FlowBatch>();
    const settings = testSettings('receiver', 'ebpf/coverage');
    const receiver = new EbpfReceiver(
      settings,
      ebpfReceiverFactory.config.parse({
        cgroup_path: counted,
        read_interval: '1h',
        coverage_interfaces: [vethB],
      }),
      sink,
      kernel,
    );
    receiver.start();
    try {
      expect(
        await cg.run(counted, 'python3', [TRAFFIC, 'get', `http://${net.ipA}:8080/blob.bin`, '2'], net.b),
      ).toBe(`${2 * BLOB}\n`);
    } finally {
      await receiver.shutdown();
      resident.kill('SIGKILL');
    }
    const c = receiver.counters;
    // Everything crossed the veth, and the receiver saw all of it: only the interface's link-layer
    // headers (14 bytes a frame) are not in its IP lengths.
    expect(c.seenBytes).toBeGreaterThan(2 * BLOB);
    expect(c.interfaceBytes).toBeGreaterThan(c.seenBytes);
    expect(c.coverage).toBeGreaterThan(0.95);
    expect(c.coverage).toBeLessThan(1);
  });

  it('leaves no program attached once the receiver stops', async () => {
    const gone = cg.child('gone');
    const r = await receiverOn(gone);
    try {
      const attached = await attachedPrograms(gone);
      expect(attached.map((p) => p.attach_type).sort()).toEqual([
        'cgroup_inet_egress',
        'cgroup_inet_ingress',
      ]);
    } finally {
      await r.stop();
    }
    expect(await attachedPrograms(gone)).toEqual([]);
  });
});
