// The cilium receiver against Cilium's conntrack maps as the kernel holds them: LRU hash maps of Cilium's
// key and value sizes, pinned on a bpffs of the test's own and filled by bpftool (test/harness/
// cilium-maps.ts), read by the real receiver through the addon. The flows it emits (who opened the
// connection, ports, protocols, counters in both value layouts, service and related entries left out, a
// connection between two pods of the node once), lifetimes in both clocks, the delta processor behind it,
// the errors a node can present, and the whole agent. Root only: skipped locally without it, a failure in CI.
import { existsSync, mkdtempSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { decodeFlowRecord, type FlowBatch, FlowFlags, formatIp, StatusBoard } from '@netmon/core';
import { recordingLogger, testSettings } from '@netmon/core/testkit';
import { readPinnedMap } from '@netmon/native';
import { deltaProcessorFactory } from '@netmon/processors';
import { ciliumReceiverFactory } from '@netmon/receivers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BPF_FS_MAGIC } from '../../packages/receivers/src/cilium/bpffs.js';
import type { CiliumKernel } from '../../packages/receivers/src/cilium/kernel.js';
import { nodeKernel } from '../../packages/receivers/src/cilium/node-kernel.js';
import { CiliumReceiver } from '../../packages/receivers/src/cilium/receiver.js';
import { AgentProcess, freePort } from '../harness/agent.js';
import {
  CiliumBpffs,
  type CiliumNode,
  CT_MAPS,
  CT_RX_CLOSING,
  CT_SEEN_NON_SYN,
  CT_TX_CLOSING,
  type CtMap,
  connectionKey,
  ctValue,
  jiffiesLifetime,
  kernelJiffies,
  type MapEntry,
  measureKernelHz,
  monotonicSeconds,
  PROTO,
  serviceKey,
  TUPLE_F_IN,
  TUPLE_F_OUT,
  TUPLE_F_RELATED,
} from '../harness/cilium-maps.js';
import { privileged } from '../harness/netns.js';

const CLOSING = CT_RX_CLOSING | CT_TX_CLOSING | CT_SEEN_NON_SYN;

/**
 * One connection as the node's maps hold it. `sent` is what the opener sent ([packets, bytes]), `back`
 * what the other side answered. `dir`: out (a pod of this node opened it: one OUT entry), in (opened
 * towards a pod of this node: one IN entry), pair (between two pods of this node: an OUT and an IN entry
 * with the same key but the flag). `ahead`: seconds from now to the entry's lifetime (negative: passed).
 */
interface Conn {
  map: CtMap;
  proto: number;
  opener: string;
  openerPort: number;
  responder: string;
  responderPort: number;
  dir: 'out' | 'in' | 'pair';
  sent: [number, number];
  back: [number, number];
  ahead: number;
  flags?: number;
  /** Cilium 1.19+ keeps an egress entry's NAT address in the value's first 16 bytes. */
  natAddr?: string;
  /** Expected to carry FlowFlags.Closed: ended both ways and past its last timeout. */
  closed?: boolean;
}

const CONNS: Conn[] = [
  {
    map: 'tcp4',
    proto: PROTO.tcp,
    opener: '10.0.1.5',
    openerPort: 40000,
    responder: '10.0.2.7',
    responderPort: 80,
    dir: 'out',
    sent: [10, 1200],
    back: [8, 9000],
    ahead: 3600,
    flags: CT_SEEN_NON_SYN,
  },
  {
    map: 'tcp4',
    proto: PROTO.tcp,
    opener: '10.0.3.9',
    openerPort: 50000,
    responder: '10.0.1.5',
    responderPort: 8080,
    dir: 'in',
    sent: [5, 700],
    back: [4, 30000],
    ahead: 3600,
    flags: CT_SEEN_NON_SYN,
  },
  {
    map: 'tcp4',
    proto: PROTO.tcp,
    opener: '10.0.1.5',
    openerPort: 41000,
    responder: '10.0.1.6',
    responderPort: 443,
    dir: 'pair',
    sent: [20, 2000],
    back: [15, 45000],
    ahead: 3600,
    flags: CT_SEEN_NON_SYN,
  },
  {
    map: 'tcp4',
    proto: PROTO.tcp,
    opener: '10.0.1.5',
    openerPort: 42000,
    responder: '10.0.2.8',
    responderPort: 5432,
    dir: 'out',
    sent: [6, 800],
    back: [5, 2500],
    ahead: -30,
    flags: CLOSING,
    closed: true,
  },
  // Idle past its timeout, never closed: expired, but its counters are not known to be final.
  {
    map: 'tcp4',
    proto: PROTO.tcp,
    opener: '10.0.1.5',
    openerPort: 43000,
    responder: '10.0.2.9',
    responderPort: 6379,
    dir: 'out',
    sent: [3, 300],
    back: [2, 200],
    ahead: -30,
    flags: CT_SEEN_NON_SYN,
  },
  // Closing both ways, its last timeout not yet passed.
  {
    map: 'tcp4',
    proto: PROTO.tcp,
    opener: '10.0.3.9',
    openerPort: 44000,
    responder: '10.0.1.5',
    responderPort: 9000,
    dir: 'in',
    sent: [7, 900],
    back: [6, 1800],
    ahead: 8,
    flags: CLOSING,
  },
  {
    map: 'any4',
    proto: PROTO.udp,
    opener: '10.0.1.5',
    openerPort: 53000,
    responder: '10.0.4.2',
    responderPort: 53,
    dir: 'out',
    sent: [1, 60],
    back: [1, 120],
    ahead: 60,
  },
  // ICMP echo: the identifier is the opener's port, the other port 0.
  {
    map: 'any4',
    proto: PROTO.icmp,
    opener: '10.0.1.5',
    openerPort: 0x1234,
    responder: '10.0.2.7',
    responderPort: 0,
    dir: 'out',
    sent: [3, 252],
    back: [3, 252],
    ahead: 60,
  },
  {
    map: 'any4',
    proto: PROTO.udp,
    opener: '10.0.3.9',
    openerPort: 5353,
    responder: '10.0.1.5',
    responderPort: 9999,
    dir: 'in',
    sent: [2, 300],
    back: [0, 0],
    ahead: 60,
  },
  {
    map: 'tcp6',
    proto: PROTO.tcp,
    opener: 'fd00:10:1::5',
    openerPort: 40001,
    responder: 'fd00:10:2::7',
    responderPort: 443,
    dir: 'out',
    sent: [7, 900],
    back: [6, 7000],
    ahead: 3600,
    flags: CT_SEEN_NON_SYN,
  },
  {
    map: 'tcp6',
    proto: PROTO.tcp,
    opener: '2001:db8::9',
    openerPort: 51000,
    responder: 'fd00:10:1::5',
    responderPort: 8443,
    dir: 'in',
    sent: [9, 1500],
    back: [12, 64000],
    ahead: 3600,
    flags: CT_SEEN_NON_SYN,
  },
  {
    map: 'any6',
    proto: PROTO.udp,
    opener: 'fd00:10:1::5',
    openerPort: 7000,
    responder: 'fd00:10:1::6',
    responderPort: 7001,
    dir: 'pair',
    sent: [3, 400],
    back: [3, 600],
    ahead: 60,
  },
  {
    map: 'any6',
    proto: PROTO.icmpv6,
    opener: 'fd00:10:1::5',
    openerPort: 0xbeef,
    responder: 'fd00:10:2::7',
    responderPort: 0,
    dir: 'out',
    sent: [4, 416],
    back: [4, 416],
    ahead: 60,
    closed: false,
  },
];

/** Entries that are not connections: they must never be counted. */
interface Other {
  map: CtMap;
  kind: 'service' | 'related';
  key: Uint8Array;
  counters: [number, number];
}

const OTHERS: Other[] = [
  {
    map: 'tcp4',
    kind: 'service',
    key: serviceKey({
      proto: PROTO.tcp,
      vip: '10.96.0.10',
      vipPort: 80,
      client: '10.0.1.5',
      clientPort: 40000,
    }),
    counters: [0, 0],
  },
  {
    map: 'any4',
    kind: 'service',
    key: serviceKey({
      proto: PROTO.udp,
      vip: '10.96.0.10',
      vipPort: 53,
      client: '10.0.1.5',
      clientPort: 53000,
    }),
    counters: [0, 0],
  },
  // The ICMP errors of a connection, in the other map: OUT|RELATED and IN|RELATED, ports 0.
  {
    map: 'any4',
    kind: 'related',
    key: connectionKey({
      proto: PROTO.icmp,
      opener: '10.0.1.5',
      openerPort: 0,
      responder: '10.0.2.7',
      responderPort: 0,
      flags: TUPLE_F_OUT | TUPLE_F_RELATED,
    }),
    counters: [1, 56],
  },
  {
    map: 'any4',
    kind: 'related',
    key: connectionKey({
      proto: PROTO.icmp,
      opener: '10.0.3.9',
      openerPort: 0,
      responder: '10.0.1.5',
      responderPort: 0,
      flags: TUPLE_F_IN | TUPLE_F_RELATED,
    }),
    counters: [2, 112],
  },
  {
    map: 'tcp6',
    kind: 'service',
    key: serviceKey({
      proto: PROTO.tcp,
      vip: 'fd00:96::10',
      vipPort: 443,
      client: 'fd00:10:1::5',
      clientPort: 40001,
    }),
    counters: [0, 0],
  },
  {
    map: 'any6',
    kind: 'related',
    key: connectionKey({
      proto: PROTO.icmpv6,
      opener: 'fd00:10:1::5',
      openerPort: 0,
      responder: 'fd00:10:2::7',
      responderPort: 0,
      flags: TUPLE_F_OUT | TUPLE_F_RELATED,
    }),
    counters: [1, 1280],
  },
];

type Clock = { unit: 'ktime' } | { unit: 'jiffies'; hz: number };

function lifetime(clock: Clock, ahead: number): number {
  return clock.unit === 'ktime' ? monotonicSeconds() + ahead : jiffiesLifetime(ahead, clock.hz);
}

const keyOf = (c: Conn, flags: number) =>
  connectionKey({
    proto: c.proto,
    opener: c.opener,
    openerPort: c.openerPort,
    responder: c.responder,
    responderPort: c.responderPort,
    flags,
  });

/**
 * The map entries of a connection in a value layout. split: counters relative to the local endpoint (an
 * OUT entry's tx is what the opener sent; an IN entry's rx is). total: one pair counting both directions,
 * the same in both entries of a pair (each entry counts every packet of the connection).
 */
function entriesOf(c: Conn, layout: 'split' | 'total', clock: Clock): MapEntry[] {
  const life = lifetime(clock, c.ahead);
  const value = (local: 'opener' | 'responder') => {
    if (layout === 'total') {
      return ctValue({
        layout,
        packets: c.sent[0] + c.back[0],
        bytes: c.sent[1] + c.back[1],
        natAddr: c.natAddr,
        lifetime: life,
        flags: c.flags,
      });
    }
    const [tx, rx] = local === 'opener' ? [c.sent, c.back] : [c.back, c.sent];
    return ctValue({
      layout,
      txPackets: tx[0],
      txBytes: tx[1],
      rxPackets: rx[0],
      rxBytes: rx[1],
      lifetime: life,
      flags: c.flags,
    });
  };
  const out = { key: keyOf(c, TUPLE_F_OUT), value: value('opener') };
  const inn = { key: keyOf(c, TUPLE_F_IN), value: value('responder') };
  return c.dir === 'out' ? [out] : c.dir === 'in' ? [inn] : [out, inn];
}

function otherEntry(o: Other, layout: 'split' | 'total', clock: Clock): MapEntry {
  const life = lifetime(clock, 3600);
  // A SERVICE entry's backend id sits in the second u64 in both layouts (split: a union with rx_bytes).
  if (o.kind === 'service') {
    return {
      key: o.key,
      value:
        layout === 'split'
          ? ctValue({ layout, rxBytes: 7, lifetime: life })
          : ctValue({ layout, backendId: 7, lifetime: life }),
    };
  }
  return {
    key: o.key,
    value:
      layout === 'split'
        ? ctValue({ layout, txPackets: o.counters[0], txBytes: o.counters[1], lifetime: life })
        : ctValue({ layout, packets: o.counters[0], bytes: o.counters[1], lifetime: life }),
  };
}

/** Fills a node's four maps with the scenario. */
function fill(
  node: CiliumNode,
  layout: 'split' | 'total',
  clock: Clock,
  conns = CONNS,
  others = OTHERS,
): void {
  for (const map of Object.keys(CT_MAPS) as CtMap[]) {
    node.put(map, [
      ...conns.filter((c) => c.map === map).flatMap((c) => entriesOf(c, layout, clock)),
      ...others.filter((o) => o.map === map).map((o) => otherEntry(o, layout, clock)),
    ]);
  }
}

/** A flow as one comparable line. */
const line = (
  proto: number,
  src: string,
  sport: number,
  dst: string,
  dport: number,
  tx: [number, number],
  rx: [number, number],
  flags: number,
) => `${proto} ${src}:${sport} > ${dst}:${dport} tx ${tx[0]}/${tx[1]} rx ${rx[0]}/${rx[1]} flags ${flags}`;

function rows(b: FlowBatch): string[] {
  const out: string[] = [];
  for (let i = 0; i < b.length; i++) {
    out.push(
      line(
        b.protocol[i],
        formatIp(b.srcAddr, 16 * i, b.family[i]),
        b.srcPort[i],
        formatIp(b.dstAddr, 16 * i, b.family[i]),
        b.dstPort[i],
        [b.txPackets[i], b.txBytes[i]],
        [b.rxPackets[i], b.rxBytes[i]],
        b.flags[i],
      ),
    );
  }
  return out.sort();
}

/** The rows the scenario must give: one per connection, src the opener. */
/**
 * The rows of a first read: an entry that had ended by then (closed both ways and expired, when the clock
 * is known) is left out — the agent may have reported it before a restart.
 */
function expectedRows(layout: 'split' | 'total', conns = CONNS, closedKnown = true): string[] {
  return conns
    .filter((c) => !(closedKnown && c.closed))
    .map((c) =>
      line(
        c.proto,
        c.opener,
        c.openerPort,
        c.responder,
        c.responderPort,
        layout === 'split' ? c.sent : [c.sent[0] + c.back[0], c.sent[1] + c.back[1]],
        layout === 'split' ? c.back : [0, 0],
        FlowFlags.InitiatorKnown | (closedKnown && c.closed ? FlowFlags.Closed : 0),
      ),
    )
    .sort();
}

/** What the receiver's /status facts must say a map's last read found. */
function expectedCounts(map: CtMap, conns = CONNS, others = OTHERS, expiredKnown = true) {
  const cs = conns.filter((c) => c.map === map);
  const os = others.filter((o) => o.map === map);
  return {
    entries: cs.reduce((n, c) => n + (c.dir === 'pair' ? 2 : 1), 0) + os.length,
    // An ended entry found by a first read is left out (see expectedRows).
    connections: cs.filter((c) => !(expiredKnown && c.closed)).length,
    service: os.filter((o) => o.kind === 'service').length,
    related: os.filter((o) => o.kind === 'related').length,
    pairs: cs.filter((c) => c.dir === 'pair').length,
    expired: expiredKnown ? cs.filter((c) => c.ahead < 0).length : 0,
  };
}

/**
 * The receiver's node access, real but for two things. Reads wait for `release()`, so the test changes
 * the maps only between reads (bpftool's batch is not atomic against a reader). And where the kernel has
 * no /proc/schedstat (built without CONFIG_SCHEDSTATS), its `timestamp` line is made from
 * /proc/timer_list's `jiffies:`, the same counter, so HZ and jiffies lifetimes are exercised here too.
 */
class GatedKernel implements CiliumKernel {
  private gate: Promise<void> = Promise.resolve();
  private open: () => void = () => {};
  private isOpen = true;
  private drained = false;
  reads = 0;

  /** Reads wait from now on (the harness closes the gate when a read's batch arrives). */
  close(): void {
    if (!this.isOpen || this.drained) return;
    this.isOpen = false;
    this.gate = new Promise((r) => {
      this.open = r;
    });
  }

  /** Lets the waiting (or next) read go. */
  release(): void {
    this.isOpen = true;
    this.open();
  }

  /** Every read from now on goes at once (before shutdown, which waits for a read in progress). */
  drain(): void {
    this.drained = true;
    this.release();
  }

  readMap: CiliumKernel['readMap'] = async (options) => {
    // Bounded: a read the test never lets go fails the read instead of hanging the test and its shutdown.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.gate,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('the test never released this read (10 s)')), 10_000);
      }),
    ]).finally(() => clearTimeout(timer));
    this.reads++;
    return readPinnedMap(options);
  };

  readProc(p: string): string | undefined {
    if (p === '/proc/schedstat' && !existsSync(p)) return `timestamp ${kernelJiffies().jiffies}\n`;
    return nodeKernel.readProc(p);
  }

  exists = nodeKernel.exists;
  fsType = nodeKernel.fsType;
  monotonicNs = nodeKernel.monotonicNs;
  sleep = nodeKernel.sleep;
}

/** A cilium receiver on a node's maps, read one read at a time. */
class Harness {
  readonly board = new StatusBoard();
  readonly batches: FlowBatch[] = [];
  readonly kernel = new GatedKernel();
  readonly receiver: CiliumReceiver;
  private readonly log = recordingLogger();
  /** What the receiver logged. */
  readonly logs = this.log.logs;

  constructor(dir: string, config: Record<string, unknown> = {}) {
    this.receiver = new CiliumReceiver(
      { ...testSettings('receiver', 'cilium', { board: this.board }), logger: this.log.logger },
      ciliumReceiverFactory.config.parse({ maps_dir: dir, read_interval: '100ms', ...config }),
      {
        consume: (b) => {
          // Before the receiver schedules its next read: that one waits for the next release.
          this.kernel.close();
          this.batches.push(b as FlowBatch);
        },
        ready: () => Promise.resolve(),
      },
      this.kernel,
    );
  }

  /**
   * Starts the receiver; its start reads each map once (open, sizes) ungated. The first timed read is
   * scheduled as start returns, and this closes the gate before that timer can fire.
   */
  async start(): Promise<void> {
    await this.receiver.start();
    this.kernel.close();
  }

  /** Lets one read go and returns the batch it emitted. */
  async read(timeoutMs = 5000): Promise<FlowBatch> {
    const n = this.batches.length;
    this.kernel.release();
    const until = Date.now() + timeoutMs;
    while (this.batches.length === n) {
      if (Date.now() > until)
        throw new Error(`no batch within ${timeoutMs} ms; status ${this.status().status}`);
      await new Promise((r) => setTimeout(r, 5));
    }
    return this.batches[n];
  }

  status() {
    const s = this.board.all().find((x) => x.kind === 'receiver');
    if (!s) throw new Error('no receiver state');
    return s;
  }

  details(): Record<string, unknown> {
    return this.status().details?.() ?? {};
  }

  mapFacts(map: CtMap): unknown {
    return (this.details().maps as Record<string, unknown>)[CT_MAPS[map].name];
  }

  async stop(): Promise<void> {
    this.kernel.drain();
    await this.receiver.shutdown();
  }
}

describe.runIf(privileged())("cilium receiver on Cilium's conntrack maps", () => {
  let fs: CiliumBpffs;
  let hz: number;
  let nodes = 0;
  const node = () => fs.node(`node${++nodes}`);

  beforeAll(async () => {
    fs = CiliumBpffs.create();
    hz = (await measureKernelHz()).hz;
  });

  afterAll(() => {
    fs?.destroy();
  });

  /** One receiver, one read of a node's maps; the batch and the facts /status shows after it. */
  async function readOnce(dir: string, config: Record<string, unknown> = {}) {
    const h = new Harness(dir, config);
    try {
      await h.start();
      const batch = await h.read();
      return { batch, h, details: h.details(), status: h.status() };
    } finally {
      await h.stop();
    }
  }

  it('split layout (Cilium ≤ 1.15), ktime lifetimes: each connection once, its opener as src, counters per direction', async () => {
    const n = node();
    n.createAll();
    fill(n, 'split', { unit: 'ktime' });
    // The kernel holds what the test wrote (bpftool reads it back).
    expect(n.dump('tcp4')).toHaveLength(expectedCounts('tcp4').entries);

    const { batch, h, details, status } = await readOnce(n.dir);
    expect(rows(batch)).toEqual(expectedRows('split'));
    expect(batch.temporality).toBe('cumulative');
    expect(batch.snapshot).toBe(true);
    expect(batch.origin).toBe('cilium');
    // Every row carries the read's interval.
    for (let i = 0; i < batch.length; i++) {
      expect(batch.timeEnd[i]).toBeGreaterThanOrEqual(batch.timeStart[i]);
      expect(batch.timeEnd[i]).toBeGreaterThan(Date.now() - 60_000);
    }
    expect(status.status).toBe('ok');
    expect(h.receiver.valueLayout).toBe('split');
    expect(details).toMatchObject({
      maps_dir: n.dir,
      value_layout: 'split',
      directions: 'tx and rx',
      clock_source: 'ktime',
      kernel_hz: hz,
    });
    for (const map of Object.keys(CT_MAPS) as CtMap[]) {
      expect(h.mapFacts(map), map).toMatchObject(expectedCounts(map));
    }
    // The tcp4 entries expired 30 s ago (lifetimes on the monotonic clock), in wall-clock time: how far
    // behind Cilium's garbage collector is.
    const at = Date.parse(String((h.mapFacts('tcp4') as Record<string, unknown>).oldest_expired_at));
    expect(Math.abs(Date.now() - 30_000 - at)).toBeLessThan(5_000);
  });

  it('total layout (Cilium 1.16–1.18) set in the config: both directions together as tx, rx 0; an IN entry not turned around', async () => {
    const n = node();
    n.createAll();
    fill(n, 'total', { unit: 'ktime' });
    const { batch, h, details, status } = await readOnce(n.dir, { value_layout: 'total' });
    expect(rows(batch)).toEqual(expectedRows('total'));
    expect(status.status).toBe('ok');
    expect(details).toMatchObject({ value_layout: 'total', value_layout_reason: 'set in the config' });
    expect(String(details.directions)).toMatch(/^both directions in tx/);
    for (const map of Object.keys(CT_MAPS) as CtMap[]) {
      expect(h.mapFacts(map), map).toMatchObject(expectedCounts(map));
    }
  });

  it('total layout read by auto: the same rows whether or not an entry tells the layout (1.19+ NAT address)', async () => {
    // Cilium 1.16–1.18: the first 16 bytes of a connection's value are zero; nothing there to tell by.
    const plain = node();
    plain.createAll();
    fill(plain, 'total', { unit: 'ktime' });
    const a = await readOnce(plain.dir);
    expect(rows(a.batch)).toEqual(expectedRows('total'));
    expect(a.h.receiver.valueLayout).not.toBe('split');

    // Cilium 1.19+: an egress entry keeps its NAT address there, which no rx counter pair can look like.
    const nat = node();
    nat.createAll();
    const conns = CONNS.map((c, i) => (i === 0 ? { ...c, natAddr: '192.168.1.10' } : c));
    fill(nat, 'total', { unit: 'ktime' }, conns);
    const b = await readOnce(nat.dir);
    expect(rows(b.batch)).toEqual(expectedRows('total', conns));
    expect(b.h.receiver.valueLayout).toBe('total');
    expect(b.details).toMatchObject({ value_layout: 'total' });
  });

  it('split layout with BIG TCP (GRO packets up to 512 KiB): auto keeps split, every rx counted', async () => {
    // Cilium ≤ 1.15 counts skbs; with BIG TCP a bulk download's packets reach the pod GRO'd to up to
    // gro_max_size (Cilium sets 192 KiB; the kernel allows 8 × 65535 bytes). Here the maps read first hold
    // only such downloads, so any one of them taken for the total layout would decide it.
    const n = node();
    n.createAll();
    const download = (map: CtMap, i: number, perPacket: number): Conn => ({
      map,
      proto: PROTO.tcp,
      opener: map === 'tcp4' ? '10.0.1.5' : 'fd00:10::5',
      openerPort: 47000 + i,
      responder: map === 'tcp4' ? '10.0.9.9' : 'fd00:10::9:9',
      responderPort: 443,
      dir: 'out',
      sent: [4000, 4000 * 66],
      back: [3000, 3000 * perPacket],
      ahead: 3600,
      flags: CT_SEEN_NON_SYN,
    });
    const conns = [
      download('tcp4', 0, 196_608),
      download('tcp4', 1, 120_000),
      download('tcp4', 2, 500_000),
      download('tcp6', 3, 196_608),
      download('tcp6', 4, 524_280),
    ];
    fill(n, 'split', { unit: 'ktime' }, conns, []);
    const { batch, h, details } = await readOnce(n.dir);
    expect(h.receiver.valueLayout).toBe('split');
    expect(details.value_layout_reason).toBe(
      'entries hold rx packets and bytes before tx (Cilium 1.15 and earlier): 3 of 3 entries that tell the layouts apart',
    );
    expect(rows(batch)).toEqual(expectedRows('split', conns));
  });

  it('lifetimes in jiffies >> 8 (--enable-bpf-clock-probe): detected with the measured HZ, expired entries found', async () => {
    const n = node();
    n.createAll();
    fill(n, 'split', { unit: 'jiffies', hz });
    for (const config of [{}, { clock_source: 'jiffies' }]) {
      const { batch, h, details } = await readOnce(n.dir, config);
      expect(rows(batch), JSON.stringify(config)).toEqual(expectedRows('split'));
      expect(details).toMatchObject({ clock_source: 'jiffies', kernel_hz: hz });
      expect(h.mapFacts('tcp4')).toMatchObject(expectedCounts('tcp4'));
    }
    // Read as ktime (the config wins), jiffies lifetimes lie far in the future: nothing has expired.
    const { batch, h, details } = await readOnce(n.dir, { clock_source: 'ktime' });
    expect(details).toMatchObject({ clock_source: 'ktime' });
    expect(rows(batch)).toEqual(expectedRows('split', CONNS, false));
    expect(h.mapFacts('tcp4')).toMatchObject(expectedCounts('tcp4', CONNS, OTHERS, false));
  });

  it('ktime lifetimes set in the config: the same expiry as detected', async () => {
    const n = node();
    n.createAll();
    fill(n, 'total', { unit: 'ktime' });
    const { batch, details } = await readOnce(n.dir, { clock_source: 'ktime', value_layout: 'total' });
    expect(details).toMatchObject({ clock_source: 'ktime' });
    expect(rows(batch)).toEqual(expectedRows('total'));
  });

  describe('behind the delta processor', () => {
    const base: Conn = {
      map: 'tcp4',
      proto: PROTO.tcp,
      opener: '10.0.1.5',
      openerPort: 45000,
      responder: '10.0.2.7',
      responderPort: 80,
      dir: 'out',
      sent: [10, 1000],
      back: [10, 20000],
      ahead: 3600,
      flags: CT_SEEN_NON_SYN,
    };
    const grow = (c: Conn, by: number): Conn => ({
      ...c,
      sent: [c.sent[0] + by, c.sent[1] + 100 * by],
      back: [c.back[0] + by, c.back[1] + 1400 * by],
    });

    /** Receiver → delta in-process, one read at a time; every delta row summed per flow. */
    async function pipeline(dir: string, config: Record<string, unknown> = {}) {
      const delta = await deltaProcessorFactory.create(
        testSettings('processor', 'delta'),
        deltaProcessorFactory.config.parse({}),
        'flows',
      );
      await delta.start?.();
      const h = new Harness(dir, config);
      await h.start();
      const sums = new Map<string, number[]>();
      return {
        sums,
        /** One read through delta; the delta rows it gave. */
        async read(): Promise<string[]> {
          const out = (await delta.process((await h.read()).seal())) as FlowBatch | null;
          if (out) {
            expect(out.temporality).toBe('delta');
            for (let i = 0; i < out.length; i++) {
              const k = `${out.protocol[i]} ${formatIp(out.srcAddr, 16 * i, out.family[i])}:${out.srcPort[i]} > ${formatIp(out.dstAddr, 16 * i, out.family[i])}:${out.dstPort[i]}`;
              const s = sums.get(k) ?? [0, 0, 0, 0];
              s[0] += out.txPackets[i];
              s[1] += out.txBytes[i];
              s[2] += out.rxPackets[i];
              s[3] += out.rxBytes[i];
              sums.set(k, s);
            }
          }
          return out ? rows(out) : [];
        },
        async stop() {
          await h.stop();
          await delta.shutdown?.();
        },
      };
    }

    const flowLine = (
      c: Conn,
      tx: [number, number],
      rx: [number, number],
      flags = FlowFlags.InitiatorKnown,
    ) => line(c.proto, c.opener, c.openerPort, c.responder, c.responderPort, tx, rx, flags);

    it('split counters growing between reads become exact deltas; a new connection counts whole; an entry re-created smaller counts from zero', async () => {
      const n = node();
      n.createAll();
      const clock: Clock = { unit: 'ktime' };
      const a = base;
      const b: Conn = { ...base, openerPort: 45001, dir: 'in', opener: '10.0.3.9', responder: '10.0.1.5' };
      const pair: Conn = { ...base, openerPort: 45002, dir: 'pair', responder: '10.0.1.6' };
      const fresh: Conn = { ...base, openerPort: 45003, map: 'any4', proto: PROTO.udp, flags: 0 };
      fill(n, 'split', clock, [a, b, pair], []);
      const p = await pipeline(n.dir);
      try {
        // The first snapshot is the baseline: connections older than the agent report nothing so far.
        expect(await p.read()).toEqual([]);

        fill(n, 'split', clock, [grow(a, 3), grow(b, 5), grow(pair, 2), fresh], []);
        expect(await p.read()).toEqual(
          [
            flowLine(a, [3, 300], [3, 4200]),
            flowLine(b, [5, 500], [5, 7000]),
            flowLine(pair, [2, 200], [2, 2800]),
            flowLine(fresh, fresh.sent, fresh.back),
          ].sort(),
        );

        // Nothing moved: nothing to report.
        expect(await p.read()).toEqual([]);

        // Cilium's GC removed a's entry and a new connection on the same tuple made a smaller one.
        n.delete('tcp4', [keyOf(a, TUPLE_F_OUT)]);
        const again: Conn = { ...a, sent: [2, 150], back: [1, 60] };
        fill(n, 'split', clock, [again, grow(b, 6)], []);
        expect(await p.read()).toEqual(
          [flowLine(again, [2, 150], [1, 60]), flowLine(b, [1, 100], [1, 1400])].sort(),
        );
      } finally {
        await p.stop();
      }
    });

    it('total counters: deltas of both directions in tx', async () => {
      const n = node();
      n.createAll();
      const clock: Clock = { unit: 'ktime' };
      fill(n, 'total', clock, [base], []);
      const p = await pipeline(n.dir, { value_layout: 'total' });
      try {
        expect(await p.read()).toEqual([]);
        fill(n, 'total', clock, [grow(base, 4)], []);
        expect(await p.read()).toEqual([flowLine(base, [8, 400 + 5600], [0, 0])]);
      } finally {
        await p.stop();
      }
    });

    it('a connection that closed and expired, left in the map until Cilium collects it, counts its last bytes once over many reads', async () => {
      const n = node();
      n.createAll();
      const clock: Clock = { unit: 'ktime' };
      fill(n, 'split', clock, [base], []);
      const p = await pipeline(n.dir);
      try {
        expect(await p.read()).toEqual([]);
        // FIN both ways, then its close timeout passed: final counters, flagged Closed.
        const ended: Conn = { ...grow(base, 2), ahead: -20, flags: CLOSING };
        fill(n, 'split', clock, [ended], []);
        expect(await p.read()).toEqual([
          flowLine(base, [2, 200], [2, 2800], FlowFlags.InitiatorKnown | FlowFlags.Closed),
        ]);
        // Cilium's GC runs every few minutes: the entry is in every read until then, and counts nothing more.
        for (let i = 0; i < 5; i++) expect(await p.read(), `read ${i + 3}`).toEqual([]);
        const k = `6 ${base.opener}:${base.openerPort} > ${base.responder}:${base.responderPort}`;
        expect(p.sums.get(k)).toEqual([2, 200, 2, 2800]);
      } finally {
        await p.stop();
      }
    });
  });

  describe('what a node can present', () => {
    it('a map with the wrong key size: a clear error in /status, the other maps still read', async () => {
      const n = node();
      // A 38-byte key where the IPv4 TCP map's 14-byte key belongs.
      n.create('tcp4', { keySize: 38 });
      n.create('any4');
      n.create('tcp6');
      n.create('any6');
      fill(
        n,
        'split',
        { unit: 'ktime' },
        CONNS.filter((c) => c.map !== 'tcp4'),
        OTHERS.filter((o) => o.map !== 'tcp4'),
      );
      const { batch, h, status } = await readOnce(n.dir);
      const want = `${n.pin('tcp4')} has key/value sizes 38/56, not the 14/56 this layout reads`;
      expect(status.status).toBe('recoverable_error');
      expect(status.lastError).toContain(want);
      expect(h.mapFacts('tcp4')).toBe(want);
      expect(h.mapFacts('any4')).toMatchObject(expectedCounts('any4'));
      expect(rows(batch)).toEqual(
        expectedRows(
          'split',
          CONNS.filter((c) => c.map !== 'tcp4'),
        ),
      );
      // Not every live connection is in it: delta must not take the absent ones for ended.
      expect(batch.snapshot).toBe(false);
    });

    it('a map removed between reads (Cilium replacing it) is an error until it is pinned again, then read', async () => {
      const n = node();
      n.createAll();
      fill(n, 'split', { unit: 'ktime' });
      const h = new Harness(n.dir);
      try {
        await h.start();
        expect((await h.read()).snapshot).toBe(true);
        n.unpin('tcp6');
        const b = await h.read();
        expect(b.snapshot).toBe(false);
        expect(h.status().status).toBe('recoverable_error');
        expect(String(h.mapFacts('tcp6'))).toContain(n.pin('tcp6'));
        // The ended connection was reported Closed by the first read: not again while its entry stays.
        expect(rows(b)).toEqual(
          expectedRows(
            'split',
            CONNS.filter((c) => c.map !== 'tcp6' && !c.closed),
          ),
        );
        n.create('tcp6');
        fill(
          n,
          'split',
          { unit: 'ktime' },
          CONNS.filter((c) => c.map === 'tcp6'),
          [],
        );
        const c = await h.read();
        expect(c.snapshot).toBe(true);
        expect(h.status().status).toBe('ok');
        expect(rows(c)).toEqual(
          expectedRows(
            'split',
            CONNS.filter((x) => !x.closed),
          ),
        );
      } finally {
        await h.stop();
      }
    });

    it('an IPv4-only node (Cilium pins no IPv6 maps): the IPv4 maps read whole, snapshot and status ok', async () => {
      const n = node();
      n.create('tcp4');
      n.create('any4');
      const v4 = CONNS.filter((c) => c.map === 'tcp4' || c.map === 'any4');
      fill(
        n,
        'split',
        { unit: 'ktime' },
        v4,
        OTHERS.filter((o) => o.map === 'tcp4' || o.map === 'any4'),
      );
      const { batch, status } = await readOnce(n.dir);
      expect(rows(batch)).toEqual(expectedRows('split', v4));
      expect(status.status, String(status.lastError)).toBe('ok');
      expect(batch.snapshot).toBe(true);
    });

    it('the IPv6 maps left out in the config (map_names ""): a whole snapshot of the rest', async () => {
      const n = node();
      n.create('tcp4');
      n.create('any4');
      const v4 = CONNS.filter((c) => c.map === 'tcp4' || c.map === 'any4');
      fill(
        n,
        'split',
        { unit: 'ktime' },
        v4,
        OTHERS.filter((o) => o.map === 'tcp4' || o.map === 'any4'),
      );
      const { batch, status, details } = await readOnce(n.dir, { map_names: { tcp6: '', any6: '' } });
      expect(rows(batch)).toEqual(expectedRows('split', v4));
      expect(status.status).toBe('ok');
      expect(batch.snapshot).toBe(true);
      expect(Object.keys(details.maps as object).sort()).toEqual([
        'cilium_ct4_global',
        'cilium_ct_any4_global',
      ]);
    });

    it('empty maps: an empty snapshot, status ok, nothing decided', async () => {
      const n = node();
      n.createAll();
      const { batch, h, status, details } = await readOnce(n.dir);
      expect(batch.length).toBe(0);
      expect(batch.snapshot).toBe(true);
      expect(status.status).toBe('ok');
      expect(h.receiver.valueLayout).toBeUndefined();
      expect(details.clock_source).toBe('undetermined');
      const zero = { entries: 0, connections: 0, service: 0, related: 0, pairs: 0, expired: 0 };
      for (const map of Object.keys(CT_MAPS) as CtMap[]) expect(h.mapFacts(map), map).toEqual(zero);
    });

    it('no map that can be read (each of other sizes): start fails naming each, so auto can move on', async () => {
      const n = node();
      n.create('tcp4', { keySize: 38 });
      n.create('any4', { keySize: 38 });
      n.create('tcp6', { keySize: 14 });
      n.create('any6', { keySize: 14 });
      const h = new Harness(n.dir);
      const err = await h.start().then(
        () => undefined,
        (e: Error) => e,
      );
      await h.stop();
      expect(err?.message).toMatch(
        new RegExp(`^cilium receiver: no Cilium conntrack map in ${n.dir} can be read: `),
      );
      for (const [map, found, wanted] of [
        ['tcp4', 38, 14],
        ['any4', 38, 14],
        ['tcp6', 14, 38],
        ['any6', 14, 38],
      ] as const) {
        expect(err?.message).toContain(
          `${n.pin(map)} has key/value sizes ${found}/56, not the ${wanted}/56 this layout reads`,
        );
      }
      expect(h.batches).toHaveLength(0);
    });

    it('a map that stays unreadable: warned once over many reads while /status follows every read; said once more when fixed', async () => {
      const n = node();
      n.create('tcp4');
      n.create('any4', { keySize: 38 });
      fill(
        n,
        'split',
        { unit: 'ktime' },
        CONNS.filter((c) => c.map === 'tcp4'),
        [],
      );
      const h = new Harness(n.dir);
      const said = () =>
        h.logs.filter((l) => l.msg.startsWith('Cilium conntrack maps')).map((l) => [l.level, l.msg]);
      const want = `${n.pin('any4')} has key/value sizes 38/56, not the 14/56 this layout reads`;
      try {
        await h.start();
        const times: number[] = [];
        for (let i = 0; i < 4; i++) {
          await h.read();
          expect(h.status().status).toBe('recoverable_error');
          expect(h.status().lastError).toBe(`Cilium conntrack maps not read: ${want}`);
          times.push(h.status().lastErrorTime ?? 0);
        }
        // Four reads, four updates of /status, one line in the log.
        expect(new Set(times).size).toBe(4);
        expect(said()).toEqual([['warn', `Cilium conntrack maps not read: ${want}`]]);
        // Cilium replaces the map with one of its layout: read, ok, and said once.
        n.unpin('any4');
        n.create('any4');
        await h.read();
        expect(h.status().status).toBe('ok');
        expect(said()).toEqual([
          ['warn', `Cilium conntrack maps not read: ${want}`],
          ['info', 'Cilium conntrack maps recovered: cilium_ct_any4_global'],
        ]);
      } finally {
        await h.stop();
      }
    });

    it('a family half pinned (map_names.tcp4 mistyped, or only one map of the family there): recoverable_error naming the map and what is lost; a family not pinned at all is no error, said without blaming IPv6', async () => {
      const n = node();
      n.create('tcp4');
      n.create('any4');
      const v4 = CONNS.filter((c) => c.map === 'tcp4' || c.map === 'any4');
      fill(
        n,
        'split',
        { unit: 'ktime' },
        v4,
        OTHERS.filter((o) => o.map === 'tcp4' || o.map === 'any4'),
      );
      const typo = 'cilium_ct4_globl';
      const { batch, h, status, details } = await readOnce(n.dir, { map_names: { tcp4: typo } });
      const message = `${path.join(n.dir, typo)} is not pinned, while cilium_ct_any4_global is: the IPv4 TCP connections are not read (map_names.tcp4 names a file Cilium does not pin, or Cilium's agent has pinned its maps only in part)`;
      expect(status.status).toBe('recoverable_error');
      expect(status.lastError).toBe(`Cilium conntrack maps not read: ${message}`);
      expect(h.logs.filter((l) => l.level === 'warn').map((l) => l.msg)).toEqual([
        `Cilium conntrack maps not read: ${message}`,
      ]);
      // The any4 connections, whole: the TCP map was never read, so nothing is taken for ended.
      expect(rows(batch)).toEqual(
        expectedRows(
          'split',
          v4.filter((c) => c.map === 'any4'),
        ),
      );
      expect(batch.snapshot).toBe(true);
      const maps = details.maps as Record<string, unknown>;
      expect(maps[typo]).toBe(message);
      expect(maps.cilium_ct6_global).toBe(
        "not pinned, nor is cilium_ct_any6_global: Cilium pins a family's conntrack maps only with that family on (or map_names names files it does not pin)",
      );

      // The IPv6 maps of a node with only the IPv6 family: the IPv4 ones are said not pinned, no error.
      const v6only = node();
      v6only.create('tcp6');
      v6only.create('any6');
      const v6 = CONNS.filter((c) => c.map === 'tcp6' || c.map === 'any6');
      fill(
        v6only,
        'split',
        { unit: 'ktime' },
        v6,
        OTHERS.filter((o) => o.map === 'tcp6' || o.map === 'any6'),
      );
      const b = await readOnce(v6only.dir);
      expect(b.status.status, String(b.status.lastError)).toBe('ok');
      expect(rows(b.batch)).toEqual(expectedRows('split', v6));
      expect((b.details.maps as Record<string, unknown>).cilium_ct4_global).toBe(
        "not pinned, nor is cilium_ct_any4_global: Cilium pins a family's conntrack maps only with that family on (or map_names names files it does not pin)",
      );

      // Only the other-protocol map of IPv6 missing: UDP, ICMPv6 and SCTP would be lost.
      const half = node();
      half.create('tcp4');
      half.create('any4');
      half.create('tcp6');
      const c = await readOnce(half.dir);
      expect(c.status.status).toBe('recoverable_error');
      expect(c.status.lastError).toBe(
        `Cilium conntrack maps not read: ${half.pin('any6')} is not pinned, while cilium_ct6_global is: the IPv6 connections of every protocol but TCP (UDP, ICMPv6, SCTP) are not read (map_names.any6 names a file Cilium does not pin, or Cilium's agent has pinned its maps only in part)`,
      );
    });

    it('a maps_dir that is no bpffs (the host’s /sys/fs/bpf not mounted into the pod): validate and the start say so, not the kernel’s "Permission denied"', async () => {
      const plain = mkdtempSync(path.join(tmpdir(), 'netmon-cilium-plain-'));
      try {
        for (const map of Object.values(CT_MAPS)) writeFileSync(path.join(plain, map.name), 'x');
        // What the kernel answers when a file off a bpffs is opened as a map: EACCES, which the addon
        // reports as EPERM "Permission denied" — the look of a missing CAP_BPF.
        await expect(
          readPinnedMap({ path: path.join(plain, CT_MAPS.tcp4.name), keySize: 14, valueSize: 56 }),
        ).rejects.toMatchObject({ code: 'EPERM', message: expect.stringContaining('Permission denied') });
        const type = statfsSync(plain).type >>> 0;
        expect(type).not.toBe(BPF_FS_MAGIC);
        const expected = new RegExp(
          `^${plain} is not a bpf file system \\(type 0x${type.toString(16)}(, [a-z0-9]+)?\\): only a bpffs holds pinned maps — mount the host's /sys/fs/bpf into the pod \\(hostPath\\)`,
        );
        const h = new Harness(plain);
        const err = await h.start().then(
          () => undefined,
          (e: Error) => e,
        );
        await h.stop();
        expect(err?.message.replace(/^cilium receiver: /, '')).toMatch(expected);
        expect(err?.message).not.toContain('Permission denied');
        expect(h.kernel.reads).toBe(0);
        const validate = (dir: string, tentative?: boolean) =>
          ciliumReceiverFactory.validate?.(ciliumReceiverFactory.config.parse({ maps_dir: dir }), {
            configDir: plain,
            tentative,
          });
        const issues = (await validate(plain)) ?? [];
        expect(issues.map((i) => i.key)).toEqual(['maps_dir']);
        expect(issues[0].message).toMatch(expected);
        // On a bpffs there is nothing to say; under auto neither (the start says it, and auto moves on).
        const n = node();
        expect(await validate(n.dir)).toEqual([]);
        expect(await validate(plain, true)).toEqual([]);
      } finally {
        rmSync(plain, { recursive: true, force: true });
      }
    });

    it('maps_dir missing, or holding no Cilium map: start fails and says why', async () => {
      const missing = path.join(fs.mount, 'no-such-node', 'tc', 'globals');
      const a = new Harness(missing);
      await expect(a.start()).rejects.toThrow(
        `cilium receiver: ${missing} does not exist: Cilium pins its maps there on a Cilium node`,
      );
      await a.stop();
      const empty = node();
      const b = new Harness(empty.dir);
      await expect(b.start()).rejects.toThrow(
        `cilium receiver: no Cilium conntrack map in ${empty.dir} (cilium_ct4_global, cilium_ct_any4_global, cilium_ct6_global, cilium_ct_any6_global): not a Cilium node`,
      );
      await b.stop();
      // Nothing was read.
      expect(a.kernel.reads + b.kernel.reads).toBe(0);
    });
  });

  describe('the whole agent', () => {
    let dir: string;
    beforeAll(() => {
      dir = mkdtempSync(path.join(tmpdir(), 'netmon-cilium-agent-'));
    });
    afterAll(() => {
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    interface StatusDoc {
      components: Array<{ kind: string; id: string; status: string; items: { out: number } }>;
    }

    /** Sums of every record in the file, per flow. */
    function totals(file: string): Map<string, number[]> {
      const out = new Map<string, number[]>();
      if (!existsSync(file)) return out;
      for (const l of readFileSync(file, 'utf8').split('\n')) {
        if (!l) continue;
        const r = decodeFlowRecord(l);
        if (!r.ok) throw new Error(`${file}: ${r.error}`);
        const f = r.flow;
        const k = `${f.protocol} ${f.srcIp}:${f.srcPort} > ${f.dstIp}:${f.dstPort}`;
        const t = out.get(k) ?? [0, 0, 0, 0, 0];
        t[0] += f.txPackets ?? 0;
        t[1] += f.txBytes ?? 0;
        t[2] += f.rxPackets ?? 0;
        t[3] += f.rxBytes ?? 0;
        t[4]++;
        out.set(k, t);
      }
      return out;
    }

    it('flows mode cilium → delta → file: the records are what the connections sent between reads', async () => {
      const n = node();
      n.createAll();
      const clock: Clock = { unit: 'ktime' };
      // Closed entries are the delta test's subject; here every connection is live or idle.
      const conns = CONNS.filter((c) => !c.closed);
      const live = conns.filter((c) => c.ahead > 0);
      fill(n, 'split', clock, conns);
      const key = (c: Conn) => `${c.proto} ${c.opener}:${c.openerPort} > ${c.responder}:${c.responderPort}`;
      const sums = (t: Map<string, number[]>) => new Map([...t].map(([k, v]) => [k, v.slice(0, 4)]));
      // Every live connection moves on between the agent's first read and a later one; one more opens.
      const fresh: Conn = { ...CONNS[0], openerPort: 46000, sent: [4, 400], back: [3, 3000] };
      const moved = live.map(
        (c): Conn => ({
          ...c,
          sent: [c.sent[0] + 2, c.sent[1] + 200],
          back: [c.back[0] + 1, c.back[1] + 1000],
        }),
      );
      const want = new Map<string, number[]>(live.map((c) => [key(c), [2, 200, 1, 1000]]));
      want.set(key(fresh), [4, 400, 3, 3000]);
      const health = await freePort();
      const out = path.join(dir, 'flows.jsonl');
      const config = path.join(dir, 'agent.yaml');
      writeFileSync(
        config,
        `receivers:
  flows:
    mode: cilium
    cilium: { maps_dir: ${n.dir}, read_interval: 200ms }
processors: { delta: {} }
exporters: { file: { path: ${out} } }
extensions: { health_check: { endpoint: 127.0.0.1:${health} } }
service:
  extensions: [health_check]
  pipelines:
    flows: { receivers: [flows], processors: [delta], exporters: [file] }
`,
      );
      const agent = new AgentProcess(['run', '--config', config]);
      try {
        await agent.waitForLog((l) => String(l.msg).startsWith('netmon is running'), 20_000);
        // The first read (the baseline) has passed the receiver once it has handed on every connection.
        const until = Date.now() + 10_000;
        for (;;) {
          const doc = (await (await fetch(`http://127.0.0.1:${health}/status`)).json()) as StatusDoc;
          const r = doc.components.find((c) => c.kind === 'receiver');
          if (r && r.items.out >= conns.length) {
            expect(r.status).toBe('ok');
            break;
          }
          if (Date.now() > until) throw new Error(`no read seen: ${JSON.stringify(doc)}`);
          await new Promise((res) => setTimeout(res, 50));
        }
        expect(totals(out).size).toBe(0);

        fill(n, 'split', clock, [...moved, fresh], []);
        const deadline = Date.now() + 10_000;
        while (Date.now() < deadline) {
          const got = sums(totals(out));
          if (
            got.size >= want.size &&
            [...want].every(([k, v]) => JSON.stringify(got.get(k)) === JSON.stringify(v))
          )
            break;
          await new Promise((res) => setTimeout(res, 100));
        }
        // A few more reads: nothing more to say.
        await new Promise((res) => setTimeout(res, 600));
      } finally {
        agent.signal('SIGTERM');
        expect(await agent.exit()).toBe(0);
      }
      expect(sums(totals(out))).toEqual(want);
      for (const l of readFileSync(out, 'utf8').split('\n').filter(Boolean)) {
        const r = decodeFlowRecord(l);
        if (!r.ok) throw new Error(r.error);
        expect(r.flow.family).toBe(r.flow.srcIp.includes(':') ? 6 : 4);
      }
    }, 60_000);
  });
});
