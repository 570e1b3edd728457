import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type ComponentSettings,
  type ComponentState,
  defineReceiver,
  type FlowBatch,
  FlowFlags,
  StatusBoard,
} from '@netmon/core';
import {
  CollectingSink,
  describeConformance,
  recordingLogger,
  recordingMeter,
  testSettings,
} from '@netmon/core/testkit';
import { CgroupFlowFlags, type CgroupFlowsRead } from '@netmon/native';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CgroupPods } from './cgroup-pods.js';
import { ebpfReceiverConfig } from './config.js';
import { ebpfReceiverFactory } from './factory.js';
import { DST_CGROUP_ID, DST_POD_UID, EbpfReceiver, SRC_CGROUP_ID, SRC_POD_UID } from './receiver.js';
import { FakeKernel, flowsRead, type Row } from './testdata/fake-kernel.js';
import {
  CAP,
  capMask,
  MOUNTINFO_PRIVATE_NS_ONLY,
  MOUNTINFO_PRIVATE_NS_THEN_HOST,
  MOUNTINFO_SUBTREE_ONLY,
  MOUNTINFO_V1_ONLY,
  mountinfoWithCgroup2,
  procNet,
  procNetDev,
  procStatus,
} from './testdata/proc.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');
const KNOWN = FlowFlags.InitiatorKnown;
const LOCAL_REMOTE = FlowFlags.LocalRemote;
const DNAT = FlowFlags.Dnat;
const { OriginLocal, OriginRemote } = CgroupFlowFlags;
const UDP = 17;

/** The cgroup2 "mount" of each test: a temp folder, so the pod lookups walk it and never the host's. */
let cgroupRoot: string;

/**
 * A receiver on a fake kernel whose cgroup2 mount is `cgroupRoot`, with a status board, a recording
 * logger and a meter that can be read.
 */
function setup(config: Record<string, unknown> = {}, kernel = new FakeKernel()) {
  if (!kernel.files.has('/proc/self/mountinfo')) {
    kernel.files.set('/proc/self/mountinfo', mountinfoWithCgroup2(cgroupRoot));
  }
  const { logger, logs } = recordingLogger();
  const meter = recordingMeter();
  const board = new StatusBoard();
  const settings: ComponentSettings = {
    ...testSettings('receiver', 'ebpf/node', { board }),
    logger,
    meter: meter.meter,
  };
  const state: ComponentState = board.all()[0];
  // What the service does before start().
  board.set(state, 'starting');
  const sink = new CollectingSink<FlowBatch>();
  const receiver = new EbpfReceiver(settings, ebpfReceiverConfig.parse(config), sink, kernel);
  /** A self-metric's current value (undefined once unregistered), checked to be of `kind`. */
  const metric = (name: string, kind?: 'counter' | 'gauge'): number | undefined => {
    if (kind) expect(meter.kind(name)).toBe(kind);
    return meter.value(name);
  };
  return {
    receiver,
    kernel,
    sink,
    state,
    logs,
    metric,
    /** Log entries of `level`. */
    logged: (level: string) => logs.filter((l) => l.level === level),
    /** Read times of the handle, relative to T0. */
    readTimes: () => (kernel.handle?.reads ?? []).map((t) => t - T0),
    /** Queues the answers of the next reads (before or after start). */
    answer: (...steps: (CgroupFlowsRead | Error | Promise<CgroupFlowsRead>)[]) =>
      (kernel.handle?.script ?? kernel.script).push(...steps),
    details: () => state.details?.() as Record<string, unknown>,
  };
}

/** Advances the fake clock by `ms`, running due timers and the promise work they start. */
const tick = (ms: number) => vi.advanceTimersByTimeAsync(ms);

function deferred<T>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

const endpoint = (ip: string, port: number) => (ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`);

/** A batch's rows as plain values: ends, the backend of a DNAT'ed row, counters, flags and cgroup columns. */
function view(b: FlowBatch) {
  return [...b].map((r) => ({
    protocol: r.protocol,
    src: endpoint(r.srcIp, r.srcPort),
    dst: endpoint(r.dstIp, r.dstPort),
    backend: r.backendIp === undefined ? undefined : endpoint(r.backendIp, r.backendPort ?? 0),
    tx: r.txBytes,
    rx: r.rxBytes,
    txp: r.txPackets,
    rxp: r.rxPackets,
    flags: r.flags,
    cgroups: [r.get(SRC_CGROUP_ID), r.get(DST_CGROUP_ID)],
  }));
}

/** A TCP flow the local socket 10.0.0.5:port opened to a web server (the SYN was seen). */
const outbound = (port: number, tx = 1000, extra: Partial<Row> = {}): Row => ({
  local: '10.0.0.5',
  localPort: port,
  remote: '93.184.216.34',
  remotePort: 443,
  tx,
  rx: 9 * tx,
  txPackets: 2,
  rxPackets: 7,
  cgroupId: 7001,
  flags: OriginLocal,
  ...extra,
});

/** Switches the test to the fake clock at T0 (timers, Date and performance.now). */
function fakeClock() {
  beforeEach(() => {
    vi.useFakeTimers({
      now: T0,
      toFake: [
        'setTimeout',
        'clearTimeout',
        'setInterval',
        'clearInterval',
        'setImmediate',
        'clearImmediate',
        'performance',
        'Date',
      ],
    });
    cgroupRoot = mkdtempSync(join(tmpdir(), 'netmon-ebpf-receiver-'));
  });
  afterEach(() => {
    vi.useRealTimers();
    vi.restoreAllMocks();
    rmSync(cgroupRoot, { recursive: true, force: true });
  });
}

describe('ebpf receiver: start', () => {
  fakeClock();

  it('refuses to start without CAP_BPF and CAP_NET_ADMIN (or CAP_SYS_ADMIN), saying how to grant them or what to choose instead', () => {
    const t = setup();
    t.kernel.files.set('/proc/self/status', procStatus(capMask(CAP.NET_ADMIN, CAP.PERFMON)));
    expect(() => t.receiver.start()).toThrow(
      'ebpf receiver: loading and attaching eBPF programs needs CAP_BPF and CAP_NET_ADMIN (or CAP_SYS_ADMIN). ' +
        'Run netmon as root, or grant them (Kubernetes: securityContext.capabilities.add: [BPF, NET_ADMIN]); ' +
        'or choose the netfilter collection mode (conntrack needs CAP_NET_ADMIN only)',
    );
    expect(t.kernel.attached).toEqual([]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('starts with CAP_BPF and CAP_NET_ADMIN only, and with CAP_SYS_ADMIN only', () => {
    for (const caps of [capMask(CAP.BPF, CAP.NET_ADMIN), capMask(CAP.SYS_ADMIN)]) {
      const t = setup();
      t.kernel.files.set('/proc/self/status', procStatus(caps));
      t.receiver.start();
      expect(t.kernel.attached).toHaveLength(1);
    }
  });

  it('without a cgroup2 mount and without cgroup_path, says how to mount one or which key to set', () => {
    for (const mountinfo of [MOUNTINFO_V1_ONLY, undefined]) {
      const kernel = new FakeKernel();
      // undefined: /proc/self/mountinfo cannot be read.
      kernel.files.set('/proc/self/mountinfo', mountinfo);
      const t = setup({}, kernel);
      expect(() => t.receiver.start()).toThrow(
        'ebpf receiver: no cgroup2 filesystem is mounted (none in /proc/self/mountinfo): mount one (mount -t cgroup2 none /sys/fs/cgroup) or set cgroup_path to a cgroup2 directory',
      );
      expect(kernel.attached).toEqual([]);
    }
  });

  it("in a container that sees only its own cgroup subtree, says so and how to mount the host's", () => {
    const kernel = new FakeKernel();
    kernel.files.set('/proc/self/mountinfo', MOUNTINFO_SUBTREE_ONLY);
    kernel.present.add('/sys/fs/cgroup/cgroup.type');
    const t = setup({}, kernel);
    expect(() => t.receiver.start()).toThrow(
      /^ebpf receiver: the cgroup2 mount at \/sys\/fs\/cgroup shows only the subtree \/kubepods\.slice\/.*cri-containerd-aaaa\.scope \(a container's own cgroup\), so eBPF programs there would see this container's sockets alone: mount the host's cgroup2 .* and set cgroup_path to it$/,
    );
    expect(kernel.attached).toEqual([]);
  });

  it("in a private cgroup namespace, refuses the container's own cgroup though mountinfo shows it as /, and takes the host's", () => {
    const kernel = new FakeKernel();
    kernel.files.set('/proc/self/mountinfo', MOUNTINFO_PRIVATE_NS_ONLY);
    // Every cgroup but the hierarchy's root has a cgroup.type file.
    kernel.present.add('/sys/fs/cgroup/cgroup.type');
    const t = setup({}, kernel);
    expect(() => t.receiver.start()).toThrow(
      "ebpf receiver: the cgroup2 mount at /sys/fs/cgroup is not the hierarchy's root but a cgroup below it (it has a cgroup.type file; a container with its own cgroup namespace sees its own cgroup as /), " +
        "so eBPF programs there would see this container's sockets alone: mount the host's cgroup2 (e.g. hostPath /sys/fs/cgroup at /host/sys/fs/cgroup) and set cgroup_path to it",
    );
    expect(kernel.attached).toEqual([]);

    const withHost = new FakeKernel();
    withHost.files.set('/proc/self/mountinfo', MOUNTINFO_PRIVATE_NS_THEN_HOST);
    withHost.present.add('/sys/fs/cgroup/cgroup.type');
    const u = setup({}, withHost);
    u.receiver.start();
    expect(withHost.attached).toEqual([{ cgroupPath: '/host/sys/fs/cgroup', maxFlows: 65536 }]);
  });

  it('attaches to cgroup_path when set, whether or not mountinfo shows a cgroup2 mount', () => {
    const sub = join(cgroupRoot, 'kubepods.slice');
    mkdirSync(sub);
    for (const mountinfo of [MOUNTINFO_V1_ONLY, mountinfoWithCgroup2(cgroupRoot)]) {
      const kernel = new FakeKernel();
      kernel.files.set('/proc/self/mountinfo', mountinfo);
      const t = setup({ cgroup_path: sub, max_flows: 4096 }, kernel);
      t.receiver.start();
      expect(kernel.attached).toEqual([{ cgroupPath: sub, maxFlows: 4096 }]);
      expect(t.details().cgroup).toBe(sub);
    }
  });

  it("an empty cgroup_path means the cgroup2 mount, its path unescaped from mountinfo's octal", () => {
    const mount = join(cgroupRoot, 'my cgroup');
    mkdirSync(mount);
    const kernel = new FakeKernel();
    kernel.files.set('/proc/self/mountinfo', mountinfoWithCgroup2(mount));
    const t = setup({ cgroup_path: '' }, kernel);
    t.receiver.start();
    expect(kernel.attached).toEqual([{ cgroupPath: mount, maxFlows: 65536 }]);
  });

  it('wraps an attach error with the cgroup it tried', () => {
    const t = setup();
    t.kernel.attachError = new Error('cannot attach cgroup_skb/egress: Operation not permitted');
    expect(() => t.receiver.start()).toThrow(
      `ebpf receiver: cannot attach to the cgroup ${cgroupRoot}: cannot attach cgroup_skb/egress: Operation not permitted`,
    );
    expect(vi.getTimerCount()).toBe(0);
  });

  it('says in one info line what it counts, how often, with which buffer and against which interfaces', () => {
    const t = setup({ read_interval: '10s', max_flows: 2048 });
    t.kernel.files.set('/proc/net/dev', procNetDev({ lo: [1, 1], eth0: [1, 1], ens5: [1, 1], cni0: [1, 1] }));
    t.kernel.virtual.add('cni0');
    t.receiver.start();
    expect(t.logged('info')).toEqual([
      {
        level: 'info',
        msg: `counting the sockets under ${cgroupRoot} with eBPF (cgroup_skb ingress and egress)`,
        fields: {
          cgroup: cgroupRoot,
          read_interval_ms: 10_000,
          max_flows: 2048,
          coverage_interfaces: ['ens5', 'eth0'],
        },
      },
    ]);
  });
});

describe('ebpf receiver: orientation', () => {
  fakeClock();

  it('a flow the local socket opened: src is the local end, counters as it counted them, InitiatorKnown', async () => {
    const t = setup();
    t.answer(
      flowsRead([
        outbound(40000, 1200, { rx: 64000, txPackets: 10, rxPackets: 50 }),
        {
          local: 'fd00::5',
          localPort: 41000,
          remote: '2001:db8::80',
          remotePort: 80,
          tx: 300,
          rx: 4000,
          txPackets: 3,
          rxPackets: 4,
          cgroupId: 7003,
          flags: OriginLocal,
        },
      ]),
    );
    t.receiver.start();
    await tick(5000);
    expect(view(t.sink.batches[0])).toEqual([
      {
        protocol: 6,
        src: '10.0.0.5:40000',
        dst: '93.184.216.34:443',
        backend: undefined,
        tx: 1200,
        rx: 64000,
        txp: 10,
        rxp: 50,
        flags: KNOWN,
        cgroups: [7001, undefined],
      },
      {
        protocol: 6,
        src: '[fd00::5]:41000',
        dst: '[2001:db8::80]:80',
        backend: undefined,
        tx: 300,
        rx: 4000,
        txp: 3,
        rxp: 4,
        flags: KNOWN,
        cgroups: [7003, undefined],
      },
    ]);
    expect(t.sink.batches[0].family[1]).toBe(6);
  });

  it('a flow the remote end opened: ends, ports, bytes, packets and cgroups swapped, InitiatorKnown', async () => {
    const t = setup();
    t.answer(
      flowsRead([
        outbound(40000),
        // The local server at 10.0.0.5:443 sent 64000 bytes in 50 packets and received 1200 in 10.
        {
          local: '10.0.0.5',
          localPort: 443,
          remote: '203.0.113.9',
          remotePort: 51000,
          tx: 64000,
          rx: 1200,
          txPackets: 50,
          rxPackets: 10,
          cgroupId: 7002,
          flags: OriginRemote,
        },
        {
          local: 'fd00::5',
          localPort: 8443,
          remote: '2001:db8::9',
          remotePort: 50000,
          tx: 700,
          rx: 80,
          txPackets: 7,
          rxPackets: 1,
          cgroupId: 7004,
          flags: OriginRemote,
        },
      ]),
    );
    t.receiver.start();
    await tick(5000);
    const rows = view(t.sink.batches[0]);
    expect(rows[0]).toMatchObject({ src: '10.0.0.5:40000', dst: '93.184.216.34:443', flags: KNOWN });
    expect(rows.slice(1)).toEqual([
      {
        protocol: 6,
        src: '203.0.113.9:51000',
        dst: '10.0.0.5:443',
        backend: undefined,
        tx: 1200,
        rx: 64000,
        txp: 10,
        rxp: 50,
        flags: KNOWN,
        cgroups: [undefined, 7002],
      },
      {
        protocol: 6,
        src: '[2001:db8::9]:50000',
        dst: '[fd00::5]:8443',
        backend: undefined,
        tx: 80,
        rx: 700,
        txp: 1,
        rxp: 7,
        flags: KNOWN,
        cgroups: [undefined, 7004],
      },
    ]);
  });

  it('TCP older than the agent (no SYN seen): a local port in LISTEN means the peer dialled in; otherwise LocalRemote, src the local end', async () => {
    const t = setup();
    t.kernel.files.set('/proc/net/tcp', procNet('tcp', [{ port: 8080, state: '0A' }]));
    t.kernel.files.set(
      '/proc/net/tcp6',
      procNet('tcp6', [
        { port: 9090, state: '0A' },
        // An established socket on 7000 is no server: its port says nothing.
        { port: 7000, state: '01', remotePort: 41000 },
      ]),
    );
    const unknown = (local: string, localPort: number, remote: string, remotePort: number): Row => ({
      local,
      localPort,
      remote,
      remotePort,
      tx: 500,
      rx: 100,
      txPackets: 5,
      rxPackets: 1,
      cgroupId: 7010,
    });
    t.answer(
      flowsRead([
        unknown('10.0.0.5', 8080, '198.51.100.7', 52000),
        unknown('fd00::5', 9090, '2001:db8::7', 52001),
        unknown('10.0.0.5', 40001, '198.51.100.8', 8080),
        unknown('fd00::5', 7000, '2001:db8::8', 41000),
      ]),
    );
    t.receiver.start();
    await tick(5000);
    expect(
      view(t.sink.batches[0]).map((r) => [r.src, r.dst, r.tx, r.rx, r.txp, r.rxp, r.flags, r.cgroups]),
    ).toEqual([
      ['198.51.100.7:52000', '10.0.0.5:8080', 100, 500, 1, 5, KNOWN, [undefined, 7010]],
      ['[2001:db8::7]:52001', '[fd00::5]:9090', 100, 500, 1, 5, KNOWN, [undefined, 7010]],
      // The remote port is 8080 too, but the local socket is the client here: nothing is known.
      ['10.0.0.5:40001', '198.51.100.8:8080', 500, 100, 5, 1, LOCAL_REMOTE, [7010, undefined]],
      ['[fd00::5]:7000', '[2001:db8::8]:41000', 500, 100, 5, 1, LOCAL_REMOTE, [7010, undefined]],
    ]);
  });

  it('UDP: a bound, unconnected port outside the ephemeral range is a server when no packet told who opened the flow; a first packet is never overruled', async () => {
    const t = setup();
    t.kernel.files.set(
      '/proc/net/udp',
      procNet('udp', [
        { port: 53, state: '07' },
        { port: 45000, state: '01', remotePort: 53 },
        // An unconnected client after sendto: bound to an ephemeral port, no remote end, like a server.
        { port: 41000, state: '07' },
      ]),
    );
    t.kernel.files.set('/proc/net/udp6', procNet('udp6', [{ port: 5353, state: '07' }]));
    const udp = (localPort: number, remote: string, remotePort: number, flags = 0): Row => ({
      protocol: UDP,
      local: remote.includes(':') ? 'fd00::5' : '10.0.0.5',
      localPort,
      remote,
      remotePort,
      tx: 200,
      rx: 60,
      txPackets: 2,
      rxPackets: 1,
      cgroupId: 7020,
      flags,
    });
    t.answer(
      flowsRead([
        // The server on 53, its opener unknown (older than the agent): the listening socket says the peer.
        udp(53, '10.0.0.9', 40000),
        // The server on 53 whose first packet seen was its own answer: the programs' origin stands.
        udp(53, '10.0.0.9', 40001, OriginLocal),
        // A connected client socket on 45000: the first packet rule stands.
        udp(45000, '8.8.8.8', 53, OriginLocal),
        // The unconnected client on 41000: it sent first, and its port is ephemeral, so nothing overrules.
        udp(41000, '10.0.0.9', 9000, OriginLocal),
        // The same client, its opener unknown: an ephemeral port says nothing.
        udp(41000, '10.0.0.9', 9001),
        udp(6000, '10.0.0.9', 6001),
        udp(7000, '10.0.0.9', 7001, OriginRemote),
        udp(5353, 'fd00::9', 5353),
      ]),
    );
    t.receiver.start();
    await tick(5000);
    expect(view(t.sink.batches[0]).map((r) => [r.protocol, r.src, r.dst, r.tx, r.rx, r.flags])).toEqual([
      [UDP, '10.0.0.9:40000', '10.0.0.5:53', 60, 200, KNOWN],
      [UDP, '10.0.0.5:53', '10.0.0.9:40001', 200, 60, KNOWN],
      [UDP, '10.0.0.5:45000', '8.8.8.8:53', 200, 60, KNOWN],
      [UDP, '10.0.0.5:41000', '10.0.0.9:9000', 200, 60, KNOWN],
      [UDP, '10.0.0.5:41000', '10.0.0.9:9001', 200, 60, LOCAL_REMOTE],
      [UDP, '10.0.0.5:6000', '10.0.0.9:6001', 200, 60, LOCAL_REMOTE],
      [UDP, '10.0.0.9:7001', '10.0.0.5:7000', 60, 200, KNOWN],
      [UDP, '[fd00::9]:5353', '[fd00::5]:5353', 60, 200, KNOWN],
    ]);
  });

  it("UDP: the ephemeral range is the node's ip_local_port_range, read once at start", async () => {
    const t = setup();
    t.kernel.files.set('/proc/sys/net/ipv4/ip_local_port_range', '1024\t2048\n');
    t.kernel.files.set(
      '/proc/net/udp',
      procNet('udp', [
        { port: 1500, state: '07' },
        { port: 41000, state: '07' },
      ]),
    );
    const udp = (localPort: number): Row => ({
      protocol: UDP,
      local: '10.0.0.5',
      localPort,
      remote: '10.0.0.9',
      remotePort: 9000,
      tx: 1,
      rx: 2,
    });
    t.answer(flowsRead([udp(1500), udp(41000)]), flowsRead([udp(1500), udp(41000)]));
    t.receiver.start();
    await tick(5000);
    // The range changes after start: the receiver keeps the one it read.
    t.kernel.files.set('/proc/sys/net/ipv4/ip_local_port_range', '32768\t60999\n');
    await tick(5000);
    for (const b of t.sink.batches) {
      expect(view(b).map((r) => [r.src, r.dst, r.flags])).toEqual([
        ['10.0.0.5:1500', '10.0.0.9:9000', LOCAL_REMOTE],
        ['10.0.0.9:9000', '10.0.0.5:41000', KNOWN],
      ]);
    }
    expect(t.kernel.readsOf('/proc/sys/net/ipv4/ip_local_port_range')).toBe(1);
  });

  it("paired rows (both ends local sockets): one row initiator → responder, the peer's cgroup in dst.cgroup.id", async () => {
    const t = setup();
    t.kernel.files.set('/proc/net/tcp', procNet('tcp', [{ port: 5432, state: '0A' }]));
    const pair = (localPort: number, remotePort: number, flags = 0, swap = false): Row => ({
      local: swap ? '10.0.0.6' : '10.0.0.5',
      localPort,
      remote: swap ? '10.0.0.5' : '10.0.0.6',
      remotePort,
      tx: swap ? 800 : 300,
      rx: swap ? 300 : 800,
      txPackets: swap ? 8 : 3,
      rxPackets: swap ? 3 : 8,
      cgroupId: swap ? 12 : 11,
      peerCgroupId: swap ? 11 : 12,
      flags,
    });
    t.answer(
      flowsRead([
        // The addon merged the pair from the initiator's side (its SYN was seen).
        pair(40010, 5432, OriginLocal),
        // Older than the agent, written from the server's side: the listening port turns it round.
        pair(5432, 40011, 0, true),
        // Older than the agent, from the client's side: the peer's port is the listening one.
        pair(40012, 5432),
        // Older than the agent, neither port listening: local/remote only.
        pair(40013, 6000),
      ]),
    );
    t.receiver.start();
    await tick(5000);
    expect(
      view(t.sink.batches[0]).map((r) => [r.src, r.dst, r.tx, r.rx, r.txp, r.rxp, r.flags, r.cgroups]),
    ).toEqual([
      ['10.0.0.5:40010', '10.0.0.6:5432', 300, 800, 3, 8, KNOWN, [11, 12]],
      ['10.0.0.5:40011', '10.0.0.6:5432', 300, 800, 3, 8, KNOWN, [11, 12]],
      ['10.0.0.5:40012', '10.0.0.6:5432', 300, 800, 3, 8, KNOWN, [11, 12]],
      ['10.0.0.5:40013', '10.0.0.6:6000', 300, 800, 3, 8, LOCAL_REMOTE, [11, 12]],
    ]);
  });

  it('a translated flow (DNAT) carries Dnat and the backend from wireRemote, only while the local end is src', async () => {
    const t = setup();
    const toService = (localPort: number, flags: number): Row => ({
      local: '10.244.1.5',
      localPort,
      remote: '10.96.0.10',
      remotePort: 443,
      wireRemote: '10.244.2.7',
      wireRemotePort: 8443,
      tx: 100,
      rx: 900,
      cgroupId: 7030,
      flags,
    });
    t.answer(
      flowsRead([
        toService(40000, OriginLocal),
        // Orientation unknown: src stays the local end, so the backend still describes dst.
        toService(40001, 0),
        // Opened by the remote end: swapped, dst is the local socket, so there is no backend to give.
        toService(40002, OriginRemote),
        outbound(40003),
      ]),
    );
    t.receiver.start();
    await tick(5000);
    expect(view(t.sink.batches[0]).map((r) => [r.src, r.dst, r.backend, r.flags])).toEqual([
      ['10.244.1.5:40000', '10.96.0.10:443', '10.244.2.7:8443', KNOWN | DNAT],
      ['10.244.1.5:40001', '10.96.0.10:443', '10.244.2.7:8443', LOCAL_REMOTE | DNAT],
      ['10.96.0.10:443', '10.244.1.5:40002', undefined, KNOWN],
      ['10.0.0.5:40003', '93.184.216.34:443', undefined, KNOWN],
    ]);
  });

  it('hands on delta batches from its component id, each from the previous read to this one', async () => {
    const t = setup({ read_interval: '5s' });
    t.answer(flowsRead([outbound(40000)]), flowsRead([outbound(40000)]), flowsRead([]));
    t.receiver.start();
    await tick(15_000);
    const b = t.sink.batches;
    expect(b).toHaveLength(3);
    expect(b.map((x) => [x.temporality, x.snapshot, x.origin, x.length])).toEqual([
      ['delta', false, 'ebpf/node', 1],
      ['delta', false, 'ebpf/node', 1],
      ['delta', false, 'ebpf/node', 0],
    ]);
    expect([
      b[0].timeStart[0] - T0,
      b[0].timeEnd[0] - T0,
      b[1].timeStart[0] - T0,
      b[1].timeEnd[0] - T0,
    ]).toEqual([0, 5000, 5000, 10_000]);
  });

  it('reads the listening sockets only when a row needs them, and again at most every 30 s', async () => {
    const t = setup();
    t.kernel.files.set('/proc/net/tcp', procNet('tcp', [{ port: 8080, state: '0A' }]));
    const files = ['/proc/net/tcp', '/proc/net/tcp6', '/proc/net/udp', '/proc/net/udp6'];
    const unknown = (port: number): Row => ({
      local: '10.0.0.5',
      localPort: port,
      remote: '10.1.1.1',
      remotePort: 1,
    });
    const needy = flowsRead([
      unknown(8080),
      unknown(8080),
      unknown(40000),
      { ...unknown(53), protocol: UDP },
    ]);
    t.answer(
      // Every opener known (TCP and UDP alike): nothing to read.
      flowsRead([outbound(1), outbound(2), { ...outbound(3), flags: OriginRemote }]),
      flowsRead([{ ...outbound(4), protocol: UDP }]),
      needy,
    );
    t.kernel.fallback = () =>
      flowsRead([unknown(8080), unknown(8080), unknown(40000), { ...unknown(53), protocol: UDP }]);
    t.receiver.start();
    const perRead: number[][] = [];
    for (let i = 0; i < 10; i++) {
      const from = t.kernel.procReads.length;
      await tick(5000);
      perRead.push(files.map((f) => t.kernel.readsOf(f, from)));
      // A server that starts meanwhile is seen at the next reading, not before.
      if (i === 3) t.kernel.files.set('/proc/net/tcp', procNet('tcp', [{ port: 40000, state: '0A' }]));
    }
    const once = [1, 1, 1, 1];
    const none = [0, 0, 0, 0];
    // Reads at 5 s … 50 s: the first need at 15 s, then again at 45 s (30 s later), whatever the reads between.
    expect(perRead).toEqual([none, none, once, none, none, none, none, none, once, none]);
    expect(t.sink.batches[2].flags.slice(0, 3)).toEqual(new Uint32Array([KNOWN, KNOWN, LOCAL_REMOTE]));
    // Before the new reading the stale one stands; after it, 40000 is a server and 8080 is not.
    expect(t.sink.batches[7].flags.slice(0, 3)).toEqual(new Uint32Array([KNOWN, KNOWN, LOCAL_REMOTE]));
    expect(t.sink.batches[8].flags.slice(0, 3)).toEqual(new Uint32Array([LOCAL_REMOTE, LOCAL_REMOTE, KNOWN]));
  });
});

describe('ebpf receiver: pod columns', () => {
  fakeClock();

  const UID_A = '0f6b2c1e-6a1d-4f1e-9a52-3c7f0c1d2e3a';
  const UID_B = '7d2e9f30-1b4c-4e5d-8f6a-9b0c1d2e3f40';
  const CID = 'c'.repeat(64);
  const under = (uid: string) => uid.replaceAll('-', '_');
  const idOf = (path: string) => Number(statSync(join(cgroupRoot, path), { bigint: true }).ino);

  /** A kubelet tree (systemd driver) under the temp mount; returns the cgroup ids the tests use. */
  function tree() {
    const a = `kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${under(UID_A)}.slice/cri-containerd-${CID}.scope`;
    const b = `kubepods.slice/kubepods-pod${under(UID_B)}.slice/cri-containerd-${CID}.scope`;
    const host = 'system.slice/containerd.service';
    for (const p of [a, b, host]) mkdirSync(join(cgroupRoot, p), { recursive: true });
    return { a: idOf(a), b: idOf(b), host: idOf(host), kubepods: idOf('kubepods.slice') };
  }

  it("names the pod of each end's cgroup; no UID for cgroups outside every pod; swapped with the ends", async () => {
    const ids = tree();
    const t = setup();
    t.answer(
      flowsRead([
        outbound(40000, 100, { cgroupId: ids.a }),
        outbound(40001, 100, { cgroupId: ids.host }),
        // Pod B serves a client outside the node: B is dst once the row is turned round.
        { ...outbound(40002, 100, { cgroupId: ids.b }), flags: OriginRemote },
        // Pod A talks to pod B on this node.
        outbound(40003, 100, { cgroupId: ids.a, peerCgroupId: ids.b, remote: '10.0.0.6' }),
        // The kubepods slice itself is no pod's; an id the tree does not hold is no one's.
        outbound(40004, 100, { cgroupId: ids.kubepods }),
        outbound(40005, 100, { cgroupId: 987_654_321 }),
      ]),
    );
    t.receiver.start();
    await tick(5000);
    const b = t.sink.batches[0];
    expect(
      [...b].map((r) => [r.get(SRC_CGROUP_ID), r.get(SRC_POD_UID), r.get(DST_CGROUP_ID), r.get(DST_POD_UID)]),
    ).toEqual([
      [ids.a, UID_A, undefined, undefined],
      [ids.host, undefined, undefined, undefined],
      [undefined, undefined, ids.b, UID_B],
      [ids.a, UID_A, ids.b, UID_B],
      [ids.kubepods, undefined, undefined, undefined],
      [987_654_321, undefined, undefined, undefined],
    ]);
    expect(b.column(SRC_POD_UID)?.kind).toBe('string');
  });

  it('adds no pod column when no row is in a pod', async () => {
    const ids = tree();
    const t = setup();
    t.answer(flowsRead([outbound(40000, 100, { cgroupId: ids.host })]));
    t.receiver.start();
    await tick(5000);
    const b = t.sink.batches[0];
    expect(b.attributeKeys().sort()).toEqual([DST_CGROUP_ID, SRC_CGROUP_ID]);
  });

  it('looks each distinct cgroup up once per batch, not once per row', async () => {
    const ids = tree();
    const lookups = vi.spyOn(CgroupPods.prototype, 'podUid');
    const t = setup();
    const rows = [ids.a, ids.a, ids.host, ids.a, ids.host, ids.a].map((id, i) =>
      outbound(40000 + i, 100, { cgroupId: id }),
    );
    rows.push(outbound(41000, 100, { cgroupId: ids.host, peerCgroupId: ids.b, remote: '10.0.0.6' }));
    rows.push(outbound(41001, 100, { cgroupId: ids.host, peerCgroupId: ids.b, remote: '10.0.0.6' }));
    t.answer(flowsRead(rows));
    t.receiver.start();
    await tick(5000);
    // src: a and host; dst: b (the NaN of unpaired rows is no id).
    expect(lookups.mock.calls.map((c) => c[0]).sort((x, y) => x - y)).toEqual(
      [ids.a, ids.host, ids.b].sort((x, y) => x - y),
    );
    const b = t.sink.batches[0];
    expect([...b].map((r) => r.get(SRC_POD_UID))).toEqual([
      UID_A,
      UID_A,
      undefined,
      UID_A,
      undefined,
      UID_A,
      undefined,
      undefined,
    ]);
    expect([...b].map((r) => r.get(DST_POD_UID)).slice(-2)).toEqual([UID_B, UID_B]);
  });
});

describe('ebpf receiver: losses', () => {
  fakeClock();

  it('warns once per growth of the lost packets with max_flows advice; the metrics are the addon totals', async () => {
    const t = setup({ max_flows: 4096 });
    const row = [outbound(40000)];
    t.answer(
      flowsRead(row, { lostPackets: 0, lostBytes: 0 }),
      flowsRead(row, { lostPackets: 120, lostBytes: 180_000 }),
      flowsRead(row, { lostPackets: 120, lostBytes: 180_000 }),
      flowsRead(row, { lostPackets: 300, lostBytes: 450_000 }),
      flowsRead(row, { lostPackets: 300, lostBytes: 450_000 }),
    );
    t.receiver.start();
    const warned: number[] = [];
    const lost: (number | undefined)[][] = [];
    for (let i = 0; i < 5; i++) {
      await tick(5000);
      warned.push(t.logged('warn').length);
      lost.push([
        t.metric('netmon_ebpf_lost_packets', 'counter'),
        t.metric('netmon_ebpf_lost_bytes', 'counter'),
      ]);
    }
    expect(warned).toEqual([0, 1, 1, 2, 2]);
    expect(lost).toEqual([
      [0, 0],
      [120, 180_000],
      [120, 180_000],
      [300, 450_000],
      [300, 450_000],
    ]);
    expect(t.logged('warn')).toEqual(
      [
        [120, 180_000],
        [300, 450_000],
      ].map(([p, b]) => ({
        level: 'warn',
        msg: 'the eBPF flow buffer was full (max_flows 4096 distinct flows in one read interval) or the kernel had no memory for a new entry: packets of further flows were not counted. Raise max_flows or shorten read_interval',
        fields: { lost_packets: p, lost_bytes: b, max_flows: 4096 },
      })),
    );
    expect(t.details().lost_packets).toBe(300);
    // Rows of the flows that fit still go on.
    expect(t.sink.batches.map((b) => b.length)).toEqual([1, 1, 1, 1, 1]);
  });

  it('reports malformed packets as the addon counts them, with reads, flows and read time', async () => {
    const t = setup();
    t.answer(
      flowsRead([outbound(1), outbound(2), outbound(3)], { malformed: 3, durationMs: 12 }),
      flowsRead([outbound(1)], { malformed: 5, durationMs: 4 }),
    );
    t.receiver.start();
    await tick(5000);
    expect(t.metric('netmon_ebpf_malformed_packets', 'counter')).toBe(3);
    expect(t.metric('netmon_ebpf_flows', 'gauge')).toBe(3);
    expect(t.metric('netmon_ebpf_read_duration', 'gauge')).toBe(0.012);
    await tick(5000);
    expect(t.metric('netmon_ebpf_malformed_packets')).toBe(5);
    expect(t.metric('netmon_ebpf_flows')).toBe(1);
    expect(t.metric('netmon_ebpf_reads', 'counter')).toBe(2);
    expect(t.receiver.counters).toMatchObject({ reads: 2, readFailures: 0, flows: 1, malformed: 5 });
    expect(t.logged('warn')).toEqual([]);
  });
});

describe('ebpf receiver: coverage', () => {
  fakeClock();

  /** Interfaces of a node: two physical ones, loopback, a bridge and a veth (virtual). */
  function node(
    t: ReturnType<typeof setup>,
    c: { eth0: [number, number]; eth1: [number, number]; veth: number },
  ) {
    t.kernel.files.set(
      '/proc/net/dev',
      procNetDev({
        lo: [5e9 + c.veth, 5e9],
        eth0: c.eth0,
        eth1: c.eth1,
        cni0: [c.veth, c.veth],
        veth1a2b: [c.veth, 0],
      }),
    );
  }

  it('compares the bytes seen with what the physical interfaces crossed, without loopback and local pairs', async () => {
    const t = setup();
    t.kernel.virtual.add('cni0').add('veth1a2b');
    node(t, { eth0: [1000, 2000], eth1: [500, 500], veth: 0 });
    t.receiver.start();
    expect(t.details().coverage).toBe('unknown (no traffic yet)');
    t.answer(
      flowsRead([
        outbound(40000, 3000, { rx: 12_000 }),
        // Loopback (v4 and v6) and a pair of local sockets never cross eth0 or eth1.
        {
          local: '127.0.0.1',
          localPort: 40001,
          remote: '127.0.0.1',
          remotePort: 6379,
          tx: 50_000,
          rx: 50_000,
        },
        { local: '::1', localPort: 40002, remote: '::1', remotePort: 6379, tx: 7000, rx: 7000 },
        outbound(40003, 30_000, { remote: '10.0.0.6', peerCgroupId: 7009 }),
        // Unknown orientation still counts.
        { local: '10.0.0.5', localPort: 40004, remote: '198.51.100.4', remotePort: 25, tx: 1000, rx: 2000 },
      ]),
      flowsRead([outbound(40000, 2500, { rx: 2500 })]),
    );
    // Over the interval: eth0 +16000, eth1 +4000; the veth, the bridge and lo move too, ignored.
    node(t, { eth0: [13_000, 6000], eth1: [2500, 2500], veth: 1e6 });
    await tick(5000);
    expect(t.metric('netmon_ebpf_seen_bytes', 'counter')).toBe(18_000);
    expect(t.metric('netmon_ebpf_interface_bytes', 'counter')).toBe(20_000);
    expect(t.metric('netmon_ebpf_coverage', 'gauge')).toBe(0.9);
    expect(t.details().coverage).toBe('90.0% of the bytes of eth0, eth1');
    // The next interval stands on its own: 5000 of 10000.
    node(t, { eth0: [18_000, 11_000], eth1: [2500, 2500], veth: 2e6 });
    await tick(5000);
    expect(t.metric('netmon_ebpf_seen_bytes')).toBe(23_000);
    expect(t.metric('netmon_ebpf_interface_bytes')).toBe(30_000);
    expect(t.metric('netmon_ebpf_coverage')).toBe(0.5);
    expect(t.details()).toEqual({
      cgroup: cgroupRoot,
      max_flows: 65536,
      flows_last_read: 1,
      lost_packets: 0,
      coverage: '50.0% of the bytes of eth0, eth1',
    });
    expect(t.receiver.counters).toMatchObject({ seenBytes: 23_000, interfaceBytes: 30_000, coverage: 0.5 });
  });

  it('counts the bytes of connections a remote host opened as seen too', async () => {
    const t = setup();
    node(t, { eth0: [0, 0], eth1: [0, 0], veth: 0 });
    t.receiver.start();
    t.answer(
      flowsRead([
        outbound(40000, 1000, { rx: 9000 }),
        // A client outside the node downloads from the local server: 6000 out, 2000 in.
        {
          local: '10.0.0.5',
          localPort: 443,
          remote: '203.0.113.9',
          remotePort: 51000,
          tx: 6000,
          rx: 2000,
          cgroupId: 7002,
          flags: OriginRemote,
        },
      ]),
    );
    node(t, { eth0: [12_000, 8000], eth1: [0, 0], veth: 0 });
    await tick(5000);
    expect(t.metric('netmon_ebpf_seen_bytes')).toBe(18_000);
    expect(t.metric('netmon_ebpf_coverage')).toBe(0.9);
  });

  it('compares with coverage_interfaces when given, virtual or not, and with nothing else', async () => {
    const t = setup({ coverage_interfaces: ['veth1a2b'] });
    t.kernel.virtual.add('veth1a2b');
    node(t, { eth0: [0, 0], eth1: [0, 0], veth: 0 });
    t.receiver.start();
    expect(t.logged('info')[0].fields.coverage_interfaces).toEqual(['veth1a2b']);
    t.answer(flowsRead([outbound(40000, 2500, { rx: 2500 })]));
    node(t, { eth0: [1e6, 1e6], eth1: [1e6, 1e6], veth: 10_000 });
    await tick(5000);
    expect(t.metric('netmon_ebpf_interface_bytes')).toBe(10_000);
    expect(t.metric('netmon_ebpf_coverage')).toBe(0.5);
    expect(t.details().coverage).toBe('50.0% of the bytes of veth1a2b');
  });

  it('warns once when coverage_interfaces names an interface the namespace does not have', async () => {
    const t = setup({ coverage_interfaces: ['eth0', 'eth9'] });
    t.kernel.files.set('/proc/net/dev', procNetDev({ lo: [1, 1], eth0: [1, 1] }));
    t.receiver.start();
    await tick(5000);
    await tick(5000);
    expect(t.logged('warn').map((l) => l.msg)).toEqual([
      "coverage_interfaces names eth9, which is not in /proc/net/dev of the agent's network namespace: it counts as 0 bytes",
    ]);
    await t.receiver.shutdown();
  });

  it('says when there is no interface to compare with, and reports no coverage figure then', async () => {
    const t = setup();
    // Only virtual interfaces in the agent's namespace.
    t.kernel.files.set('/proc/net/dev', procNetDev({ lo: [1, 1], eth0: [1, 1] }));
    t.kernel.virtual.add('eth0');
    t.receiver.start();
    t.answer(flowsRead([outbound(40000)]));
    await tick(5000);
    expect(t.details().coverage).toBe('unknown (no interface to compare with)');
    expect(t.metric('netmon_ebpf_coverage', 'gauge')).toBeUndefined();
    expect(t.logged('info')[0].fields.coverage_interfaces).toEqual([]);
  });

  it('says the compared interfaces moved no bytes (not "no traffic yet") when bytes were seen but none crossed them', async () => {
    const t = setup();
    node(t, { eth0: [100, 100], eth1: [0, 0], veth: 0 });
    t.receiver.start();
    t.answer(flowsRead([]), flowsRead([outbound(40000, 1000, { rx: 1000 })]));
    await tick(5000);
    // Nothing seen, nothing crossed: there was no traffic.
    expect(t.details().coverage).toBe('unknown (no traffic yet)');
    await tick(5000);
    // 2000 bytes seen (e.g. a pod's kernel-made packets that never reach eth0), the interfaces unmoved.
    expect(t.metric('netmon_ebpf_seen_bytes')).toBe(2000);
    expect(t.metric('netmon_ebpf_interface_bytes')).toBe(0);
    expect(t.metric('netmon_ebpf_coverage')).toBeUndefined();
    expect(t.details().coverage).toBe('unknown (the compared interfaces moved no bytes)');
  });

  it('keeps the last figure through an interval in which the interfaces crossed nothing', async () => {
    const t = setup();
    node(t, { eth0: [0, 0], eth1: [0, 0], veth: 0 });
    t.receiver.start();
    t.answer(flowsRead([outbound(40000, 1000, { rx: 1000 })]), flowsRead([]));
    node(t, { eth0: [4000, 0], eth1: [0, 0], veth: 0 });
    await tick(5000);
    expect(t.metric('netmon_ebpf_coverage')).toBe(0.5);
    await tick(5000);
    expect(t.metric('netmon_ebpf_coverage')).toBe(0.5);
    expect(t.metric('netmon_ebpf_interface_bytes')).toBe(4000);
  });
});

describe('ebpf receiver: scheduling, failures and shutdown', () => {
  fakeClock();

  it('reads every read_interval, the first one interval after start', async () => {
    const t = setup({ read_interval: '2s' });
    t.receiver.start();
    await tick(1999);
    expect(t.readTimes()).toEqual([]);
    await tick(4001);
    expect(t.readTimes()).toEqual([2000, 4000, 6000]);
    expect(t.sink.batches).toHaveLength(3);
    expect(t.state.status).toBe('ok');
    expect(t.metric('netmon_ebpf_reads')).toBe(3);
  });

  it('the next read is one interval after the previous one started, however long it took', async () => {
    const t = setup({ read_interval: '2s' });
    const slow = deferred<CgroupFlowsRead>();
    t.answer(slow.promise);
    t.receiver.start();
    await tick(2300);
    slow.resolve(flowsRead([]));
    await tick(1700);
    expect(t.readTimes()).toEqual([2000, 4000]);
  });

  it('a failed read reports recoverable_error, is retried after 500 ms and more, and ok returns with a good read', async () => {
    const t = setup({ read_interval: '5s' });
    const efault = () => new Error('cannot read the flow buffer: Bad address');
    t.answer(flowsRead([outbound(1)]), efault(), efault(), efault(), flowsRead([outbound(2)]));
    t.receiver.start();
    await tick(5000);
    expect(t.state.status).toBe('ok');
    await tick(5000);
    expect(t.state.status).toBe('recoverable_error');
    expect(t.state.lastError).toBe('eBPF flow read failed: cannot read the flow buffer: Bad address');
    await tick(3500);
    // Retries after 0.5, 1 and 2 s; the third succeeds.
    expect(t.readTimes()).toEqual([5000, 10_000, 10_500, 11_500, 13_500]);
    expect(t.state.status).toBe('ok');
    expect(t.metric('netmon_ebpf_read_failures', 'counter')).toBe(3);
    expect(t.metric('netmon_ebpf_reads', 'counter')).toBe(2);
    expect(t.logged('error').map((l) => [l.msg, l.fields])).toEqual(
      [1, 2, 3].map((n) => [
        'eBPF flow read failed',
        { err: 'cannot read the flow buffer: Bad address', failed_in_a_row: n },
      ]),
    );
    // The good read's batch covers everything since the last good read: nothing was lost by the failures.
    const b = t.sink.batches;
    expect(b.map((x) => [x.timeStart[0] - T0, x.timeEnd[0] - T0])).toEqual([
      [0, 5000],
      [5000, 13_500],
    ]);
    // Back to the interval, counted from the good read.
    await tick(5000);
    expect(t.readTimes().at(-1)).toBe(18_500);
    expect(t.kernel.handle?.refused).toEqual([]);
  });

  it('a read that keeps failing is retried while the backoff is below read_interval, then at the interval', async () => {
    const t = setup({ read_interval: '5s' });
    t.kernel.fallback = () => new Error('cannot swap the flow buffers: Operation not permitted');
    t.receiver.start();
    await tick(22_500);
    expect(t.readTimes()).toEqual([5000, 5500, 6500, 8500, 12_500, 17_500, 22_500]);
    expect(t.state.status).toBe('recoverable_error');
    expect(t.metric('netmon_ebpf_read_failures')).toBe(7);
    expect(t.metric('netmon_ebpf_reads')).toBe(0);
    expect(t.sink.batches).toHaveLength(0);
    t.kernel.fallback = () => flowsRead([]);
    await t.receiver.shutdown();
  });

  it('with a short read_interval a failed read just waits for the interval', async () => {
    const t = setup({ read_interval: '400ms' });
    t.answer(new Error('boom'));
    t.receiver.start();
    await tick(1200);
    expect(t.readTimes()).toEqual([400, 800, 1200]);
    expect(t.state.status).toBe('ok');
  });

  it('ends an interval when its read starts (the buffer swap), not when the drain returns', async () => {
    const t = setup({ read_interval: '2s' });
    const slow = deferred<CgroupFlowsRead>();
    t.answer(slow.promise, flowsRead([outbound(1)]));
    t.receiver.start();
    await tick(2300);
    slow.resolve(flowsRead([outbound(2)]));
    await tick(1700);
    expect(t.sink.batches.map((b) => [b.timeStart[0] - T0, b.timeEnd[0] - T0])).toEqual([
      [0, 2000],
      [2000, 4000],
    ]);
  });

  it('a failure after the kernel read (the sink, the batch) is a failed read, reported and counted, never an unhandled rejection', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (err: unknown) => unhandled.push(err);
    process.on('unhandledRejection', onUnhandled);
    try {
      const t = setup({ read_interval: '5s' });
      let calls = 0;
      const consume = t.sink.consume.bind(t.sink);
      vi.spyOn(t.sink, 'consume').mockImplementation((batch) => {
        if (++calls === 2) throw new Error('the queue is gone');
        consume(batch);
      });
      t.answer(flowsRead([outbound(1)]), flowsRead([outbound(2), outbound(3)]), flowsRead([outbound(4)]));
      t.receiver.start();
      await tick(5000);
      await tick(5000);
      expect(t.state.status).toBe('recoverable_error');
      expect(t.state.lastError).toBe('eBPF flows read but not handed on (lost): the queue is gone');
      expect(t.metric('netmon_ebpf_read_failures')).toBe(1);
      expect(t.logged('error').map((l) => [l.msg, l.fields])).toEqual([
        ['eBPF flows read but not handed on: they are lost', { err: 'the queue is gone', flows: 2 }],
      ]);
      // No quick retry (the kernel is fine): the next read comes at the interval, and its batch starts
      // where the lost one ended.
      await tick(5000);
      expect(t.readTimes()).toEqual([5000, 10_000, 15_000]);
      expect(t.state.status).toBe('ok');
      expect(t.sink.batches.map((b) => [b.txBytes[0], b.timeStart[0] - T0, b.timeEnd[0] - T0])).toEqual([
        [1000, 0, 5000],
        [1000, 10_000, 15_000],
      ]);
      // A throw while the batch is built (here reading the listening sockets for a flow older than the
      // agent) is caught the same way.
      vi.spyOn(t.kernel, 'readProc').mockImplementation(() => {
        throw new Error('EIO');
      });
      t.answer(flowsRead([{ ...outbound(5), flags: 0 }]));
      await tick(5000);
      expect(t.state.lastError).toBe('eBPF flows read but not handed on (lost): EIO');
      expect(t.metric('netmon_ebpf_read_failures')).toBe(2);
      vi.mocked(t.kernel.readProc).mockRestore();
      await t.receiver.shutdown();
      // Give a stray rejection its turn to surface (setImmediate is faked here).
      await tick(0);
      await new Promise((r) => process.nextTick(r));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it('a drain that stopped part-way hands on what it read, warns, counts a failed read and reports recoverable_error', async () => {
    const t = setup({ read_interval: '5s' });
    t.answer(
      flowsRead([outbound(1), outbound(2)], {
        drainError: 'BPF_MAP_LOOKUP_AND_DELETE_BATCH: Cannot allocate memory',
      }),
      flowsRead([outbound(3)]),
    );
    t.receiver.start();
    await tick(5000);
    expect(t.sink.batches.map((b) => b.length)).toEqual([2]);
    expect(t.state.status).toBe('recoverable_error');
    const message =
      'eBPF flow read drained the buffer part-way (BPF_MAP_LOOKUP_AND_DELETE_BATCH: Cannot allocate memory): 2 flows handed on, the rest comes with a later read';
    expect(t.state.lastError).toBe(message);
    expect(t.logged('warn').map((l) => [l.msg, l.fields])).toEqual([
      [message, { err: 'BPF_MAP_LOOKUP_AND_DELETE_BATCH: Cannot allocate memory', flows: 2 }],
    ]);
    expect(t.metric('netmon_ebpf_read_failures')).toBe(1);
    expect(t.metric('netmon_ebpf_reads')).toBe(1);
    // At the interval, not sooner: the rest waits in the kernel's buffer.
    await tick(5000);
    expect(t.readTimes()).toEqual([5000, 10_000]);
    expect(t.state.status).toBe('ok');
    expect(t.sink.batches.map((b) => [b.length, b.timeStart[0] - T0])).toEqual([
      [2, 0],
      [1, 5000],
    ]);
  });

  it('shutdown reads a last time, hands that interval on, closes the handle and leaves no timers', async () => {
    const t = setup({ read_interval: '5s' });
    t.receiver.start();
    await tick(5000);
    await tick(1234);
    t.answer(flowsRead([outbound(40000, 999)]));
    await t.receiver.shutdown();
    expect(t.readTimes()).toEqual([5000, 6234]);
    const last = t.sink.batches.at(-1);
    expect([last?.txBytes[0], (last?.timeStart[0] ?? 0) - T0, (last?.timeEnd[0] ?? 0) - T0]).toEqual([
      999, 5000, 6234,
    ]);
    expect(t.kernel.handle?.closed).toBe(true);
    expect(t.kernel.handle?.closedWhileBusy).toBe(false);
    expect(vi.getTimerCount()).toBe(0);
    // The self-metric callbacks are gone too; a second shutdown reads nothing more.
    expect(t.metric('netmon_ebpf_reads')).toBeUndefined();
    await t.receiver.shutdown();
    expect(t.readTimes()).toHaveLength(2);
    await tick(20_000);
    expect(t.readTimes()).toHaveLength(2);
  });

  it('shutdown waits for a read in flight before the last one, and never runs two at once', async () => {
    const t = setup({ read_interval: '5s' });
    const slow = deferred<CgroupFlowsRead>();
    t.answer(slow.promise, flowsRead([outbound(2, 222)]));
    t.receiver.start();
    await tick(5000);
    let stopped = false;
    const stopping = t.receiver.shutdown().then(() => {
      stopped = true;
    });
    await tick(100);
    expect(stopped).toBe(false);
    expect(t.readTimes()).toEqual([5000]);
    expect(t.kernel.handle?.closed).toBe(false);
    slow.resolve(flowsRead([outbound(1, 111)]));
    await stopping;
    expect(t.readTimes()).toEqual([5000, 5100]);
    expect(t.sink.batches.map((b) => b.txBytes[0])).toEqual([111, 222]);
    expect(t.kernel.handle?.refused).toEqual([]);
    expect(t.kernel.handle?.closed).toBe(true);
    expect(t.kernel.handle?.closedWhileBusy).toBe(false);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a read that never returns turns the status to recoverable_error after three intervals (at least 30 s)', async () => {
    const t = setup({ read_interval: '5s' });
    const stuck = deferred<CgroupFlowsRead>();
    t.answer(stuck.promise);
    t.receiver.start();
    await tick(5000 + 29_000);
    expect(t.state.status).not.toBe('recoverable_error');
    await tick(6000);
    expect(t.state.status).toBe('recoverable_error');
    expect(t.state.lastError).toMatch(/^an eBPF flow read of .* has not returned for 3\d s$/);
    stuck.resolve(flowsRead([outbound(1)]));
    await tick(0);
    expect(t.state.status).toBe('ok');
    await t.receiver.shutdown();
  });

  it('shutdown while a retry is pending cancels it and still reads a last time', async () => {
    const t = setup({ read_interval: '5s' });
    t.answer(new Error('boom'));
    t.receiver.start();
    await tick(5100);
    await t.receiver.shutdown();
    expect(t.readTimes()).toEqual([5000, 5100]);
    expect(t.sink.batches).toHaveLength(1);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('shutdown without start, or after a start that failed, is safe (twice)', async () => {
    const t = setup();
    await t.receiver.shutdown();
    await t.receiver.shutdown();
    expect(t.kernel.attached).toEqual([]);
    const u = setup();
    u.kernel.attachError = new Error('EPERM');
    expect(() => u.receiver.start()).toThrow(/cannot attach/);
    await u.receiver.shutdown();
    await u.receiver.shutdown();
    expect(vi.getTimerCount()).toBe(0);
  });
});

// The conformance suite every component passes, on the fake kernel (real timers): start → a few reads →
// shutdown leaves no handles, timers or fds, and every self-metric made is declared.
const conformanceRoot = mkdtempSync(join(tmpdir(), 'netmon-ebpf-conformance-'));
const ebpfOnFakeKernel = defineReceiver({
  ...ebpfReceiverFactory,
  create: (settings, config, next) => {
    const kernel = new FakeKernel();
    kernel.files.set('/proc/self/mountinfo', mountinfoWithCgroup2(conformanceRoot));
    kernel.files.set('/proc/net/dev', procNetDev({ lo: [0, 0], eth0: [0, 0] }));
    kernel.fallback = () => flowsRead([outbound(40000, 1500)]);
    return new EbpfReceiver(settings, config, next, kernel);
  },
});
describeConformance(ebpfOnFakeKernel, {
  config: { read_interval: '100ms' },
  runMs: 350,
  expectItems: 3,
  cleanup: () => rmSync(conformanceRoot, { recursive: true, force: true }),
});
