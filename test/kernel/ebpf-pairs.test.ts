// Connections whose two ends are both local sockets, through the ebpf receiver on real cgroups: a Service
// address rewritten on the node between two pods (kube-proxy's DNAT, in a namespace standing for the
// node), the same addresses and ports in two namespaces (never paired across them), and a connection
// older than the agent whose opener nobody knows (one orientation from read to read).
// Root only: skipped locally without it, a failure in CI.
import path from 'node:path';
import { type FlowBatch, FlowFlags, formatIp } from '@netmon/core';
import { CollectingSink, testSettings } from '@netmon/core/testkit';
import { ebpfReceiverFactory } from '@netmon/receivers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCgroup } from '../harness/cgroup.js';
import { privileged, sh, waitForOutput } from '../harness/netns.js';

/** A server that answers each connection's first bytes with `size` bytes, then closes. */
const SERVER = `import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen()
print("listening", flush=True)
while True:
    c, _ = s.accept(); c.recv(100); c.sendall(b"x" * int(sys.argv[3])); c.close()`;

/** A client from an optional fixed local port: sends GET, reads to the end (optionally slowly), prints the count. */
const CLIENT = `import socket, sys, time
c = socket.socket(); c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
if int(sys.argv[3]): c.bind(("127.0.0.1", int(sys.argv[3])))
if len(sys.argv) > 4: c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
c.connect((sys.argv[1], int(sys.argv[2]))); print("connected", file=sys.stderr, flush=True)
c.sendall(b"GET"); n = 0
while True:
    d = c.recv(1024 if len(sys.argv) > 4 else 65536)
    if not d: break
    n += len(d)
    if len(sys.argv) > 4: time.sleep(float(sys.argv[4]))
print(n, flush=True)`;

interface Row {
  src: string;
  sport: number;
  dst: string;
  dport: number;
  backend?: string;
  backendPort?: number;
  tx: number;
  rx: number;
  flags: number;
  srcCgroup?: number;
  dstCgroup?: number;
}

function rows(batches: FlowBatch[]): Row[] {
  const out: Row[] = [];
  for (const b of batches) {
    for (let i = 0; i < b.length; i++) {
      if (b.protocol[i] !== 6) continue;
      const dnat = (b.flags[i] & FlowFlags.Dnat) !== 0;
      out.push({
        src: formatIp(b.srcAddr, 16 * i, b.family[i]),
        sport: b.srcPort[i],
        dst: formatIp(b.dstAddr, 16 * i, b.family[i]),
        dport: b.dstPort[i],
        ...(dnat ? { backend: b.backendIp(i), backendPort: b.backendPort[i] } : {}),
        tx: b.txBytes[i],
        rx: b.rxBytes[i],
        flags: b.flags[i],
        srcCgroup: b.getAttribute(i, 'src.cgroup.id') as number | undefined,
        dstCgroup: b.getAttribute(i, 'dst.cgroup.id') as number | undefined,
      });
    }
  }
  return out;
}

describe.runIf(privileged())('ebpf receiver: connections with both ends on this host', () => {
  const id = `${process.pid.toString(36)}`;
  const ns = { node: `nmpn${id}`, a: `nmpa${id}`, b: `nmpb${id}`, one: `nmp1${id}`, two: `nmp2${id}` };
  let cg: TestCgroup;

  const exec = (n: string, cmd: string, args: string[]) => sh('ip', ['netns', 'exec', n, cmd, ...args]);

  beforeAll(async () => {
    for (const n of Object.values(ns)) {
      await sh('ip', ['netns', 'add', n]);
      await exec(n, 'ip', ['link', 'set', 'lo', 'up']);
    }
    // Two "pods" (a, b) behind a "node" namespace that routes between them and rewrites a Service address.
    for (const [pod, net] of [
      [ns.a, '0'],
      [ns.b, '1'],
    ]) {
      const host = `v${pod}`.slice(0, 15);
      await sh('ip', [
        'link',
        'add',
        host,
        'netns',
        ns.node,
        'type',
        'veth',
        'peer',
        'name',
        'eth0',
        'netns',
        pod,
      ]);
      await exec(ns.node, 'ip', ['addr', 'add', `10.78.${net}.1/24`, 'dev', host]);
      await exec(ns.node, 'ip', ['link', 'set', host, 'up']);
      await exec(pod, 'ip', ['addr', 'add', `10.78.${net}.2/24`, 'dev', 'eth0']);
      await exec(pod, 'ip', ['link', 'set', 'eth0', 'up']);
      await exec(pod, 'ip', ['route', 'add', 'default', 'via', `10.78.${net}.1`]);
    }
    await exec(ns.node, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1', 'net.netfilter.nf_conntrack_acct=1']);
    await exec(ns.node, 'nft', [
      'add table ip svc; add chain ip svc pre { type nat hook prerouting priority -100; }; ' +
        'add rule ip svc pre ip daddr 10.96.0.10 tcp dport 80 dnat to 10.78.1.2:8080',
    ]);
    cg = new TestCgroup();
  });

  afterAll(async () => {
    try {
      await cg?.destroy();
    } finally {
      for (const n of Object.values(ns)) await sh('ip', ['netns', 'del', n]).catch(() => {});
    }
  });

  async function withReceiver(cgroup: string, readInterval: string, traffic: () => Promise<void>) {
    const sink = new CollectingSink<FlowBatch>();
    const r = await ebpfReceiverFactory.create(
      testSettings('receiver', 'ebpf/pairs'),
      ebpfReceiverFactory.config.parse({ cgroup_path: cgroup, read_interval: readInterval }),
      sink,
    );
    await r.start?.();
    try {
      await traffic();
    } finally {
      await r.shutdown?.();
    }
    return sink.batches;
  }

  it('pod → Service → pod on one node (DNAT in the node namespace): one row, the Service as dst, the server as backend, bytes as conntrack counts them', async () => {
    const client = cg.child('svc/client');
    const server = cg.child('svc/server');
    const http = cg.spawn(server, 'python3', ['-c', SERVER, '10.78.1.2', '8080', '333333'], ns.b);
    await waitForOutput(http, /listening/);
    const batches = await withReceiver(path.dirname(client), '1h', async () => {
      expect(await cg.run(client, 'python3', ['-c', CLIENT, '10.96.0.10', '80', '0'], ns.a)).toBe('333333\n');
    });
    const oracle = (await exec(ns.node, 'conntrack', ['-L', '-p', 'tcp', '--orig-dst', '10.96.0.10'])).trim();
    const bytes = [...oracle.matchAll(/bytes=(\d+)/g)].map((m) => Number(m[1]));
    expect(bytes).toHaveLength(2);
    const got = rows(batches);
    expect(got).toHaveLength(1);
    expect(got[0]).toMatchObject({
      src: '10.78.0.2',
      dst: '10.96.0.10',
      dport: 80,
      backend: '10.78.1.2',
      backendPort: 8080,
      tx: bytes[0],
      srcCgroup: TestCgroup.id(client),
      dstCgroup: TestCgroup.id(server),
    });
    // The responder's bytes as it sent them. The server closes first; when its socket is already in
    // TIME_WAIT as the client's FIN arrives, the last ACK passes no cgroup hook (52 bytes with timestamps),
    // which conntrack counts.
    expect(bytes[1] - got[0].rx).toBeGreaterThanOrEqual(0);
    expect(bytes[1] - got[0].rx).toBeLessThanOrEqual(52);
    expect(got[0].flags & FlowFlags.InitiatorKnown).toBe(FlowFlags.InitiatorKnown);
  });

  it('the same addresses and ports in two namespaces are never paired across them', async () => {
    const sizes = { one: 111_111, two: 222_222 };
    const groups = {
      one: { client: cg.child('twins/one-client'), server: cg.child('twins/one-server') },
      two: { client: cg.child('twins/two-client'), server: cg.child('twins/two-server') },
    };
    for (const k of ['one', 'two'] as const) {
      const s = cg.spawn(
        groups[k].server,
        'python3',
        ['-c', SERVER, '127.0.0.1', '8090', String(sizes[k])],
        ns[k],
      );
      await waitForOutput(s, /listening/);
    }
    const batches = await withReceiver(cg.path, '1h', async () => {
      for (const k of ['one', 'two'] as const) {
        const got = await cg.run(
          groups[k].client,
          'python3',
          ['-c', CLIENT, '127.0.0.1', '8090', '40000'],
          ns[k],
        );
        expect(got).toBe(`${sizes[k]}\n`);
      }
    });
    const got = rows(batches).filter((r) => r.dport === 8090);
    for (const k of ['one', 'two'] as const) {
      const mine = new Set([TestCgroup.id(groups[k].client), TestCgroup.id(groups[k].server)]);
      const other = new Set(Object.values(groups[k === 'one' ? 'two' : 'one']).map((c) => TestCgroup.id(c)));
      const rowsOfK = got.filter((r) => mine.has(r.srcCgroup ?? -1) || mine.has(r.dstCgroup ?? -1));
      expect(rowsOfK.length).toBeGreaterThan(0);
      for (const r of rowsOfK) {
        // Never a row that joins this namespace's socket with the other's.
        expect(other.has(r.srcCgroup ?? -1) || other.has(r.dstCgroup ?? -1)).toBe(false);
        // Each row carries this namespace's own transfer.
        expect(r.rx).toBeGreaterThan(sizes[k]);
        expect(r.rx).toBeLessThan(sizes[k] * 1.1);
        expect(r).toMatchObject({ src: '127.0.0.1', sport: 40000, dport: 8090 });
      }
    }
  });

  it('a connection older than the agent, opener unknown, keeps one orientation from read to read', async () => {
    const client = cg.child('old/client');
    const server = cg.child('old/server');
    const http = cg.spawn(server, 'python3', ['-c', SERVER, '127.0.0.1', '8091', '400000'], ns.one);
    await waitForOutput(http, /listening/);
    // ~40 kB/s through a small receive buffer: the transfer spans every read below.
    const get = cg.spawn(client, 'python3', ['-c', CLIENT, '127.0.0.1', '8091', '0', '0.025'], ns.one);
    // Connected before the receiver attaches, however slow the machine: no program sees its SYN.
    await waitForOutput(get, /connected/);
    const batches = await withReceiver(path.dirname(client), '300ms', async () => {
      await new Promise((r) => setTimeout(r, 2000));
    });
    get.kill('SIGKILL');
    http.kill('SIGKILL');
    const got = rows(batches).filter((r) => r.dport === 8091 || r.sport === 8091);
    expect(got.length).toBeGreaterThanOrEqual(4);
    // The server's port is the lower: the client's row every time, src the client.
    for (const r of got) {
      expect(r).toMatchObject({
        dport: 8091,
        srcCgroup: TestCgroup.id(client),
        dstCgroup: TestCgroup.id(server),
      });
      // Nobody saw the SYN and the listener is in another namespace than the agent: not marked known.
      expect(r.flags & FlowFlags.InitiatorKnown).toBe(0);
      expect(r.flags & FlowFlags.LocalRemote).toBe(FlowFlags.LocalRemote);
    }
    expect(new Set(got.map((r) => r.sport)).size).toBe(1);
  });
});
