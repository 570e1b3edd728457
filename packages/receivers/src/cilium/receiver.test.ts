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
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ciliumReceiverConfig } from './config.js';
import { ciliumReceiverFactory } from './factory.js';
import { CiliumReceiver } from './receiver.js';
import {
  type Connection,
  CT,
  type CtEntry,
  connectionKey,
  ICMP,
  serviceKey,
  splitValue,
  TUPLE,
  totalValue,
  UDP,
} from './testdata/entries.js';
import { FakeCiliumKernel, MAP_NAMES, MAPS_DIR, pinnedMapError } from './testdata/fake-kernel.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');
const KNOWN = FlowFlags.InitiatorKnown;
const CLOSED = FlowFlags.Closed;
const CLOSING = CT.RX_CLOSING | CT.TX_CLOSING | CT.SEEN_NON_SYN;
const { tcp4: TCP4, any4: ANY4, tcp6: TCP6, any6: ANY6 } = MAP_NAMES;

/**
 * A receiver on a fake kernel (all four maps pinned, empty, unless the test pins its own), with a status
 * board, a recording logger and a meter that can be read.
 */
function setup(config: Record<string, unknown> = {}, kernel = new FakeCiliumKernel().pinAll()) {
  const { logger, logs } = recordingLogger();
  const meter = recordingMeter();
  const board = new StatusBoard();
  const settings: ComponentSettings = {
    ...testSettings('receiver', 'cilium/node', { board }),
    logger,
    meter: meter.meter,
  };
  const state: ComponentState = board.all()[0];
  const sink = new CollectingSink<FlowBatch>();
  const receiver = new CiliumReceiver(settings, ciliumReceiverConfig.parse(config), sink, kernel);
  /** Reads made by start (one entry of each map, to see that one can be read). */
  let probes = 0;
  return {
    receiver,
    /** Starts the receiver; the map reads that follow are its periodic ones. */
    start: async () => {
      await receiver.start();
      probes = kernel.reads.length;
    },
    kernel,
    sink,
    state,
    logs,
    /** A self-metric's current value (the point with `attributes`), checked to be of `kind`. */
    metric: (name: string, attributes?: Record<string, string>, kind?: 'counter' | 'gauge') => {
      if (kind) expect(meter.kind(name)).toBe(kind);
      return meter.value(name, attributes);
    },
    logged: (level: string) => logs.filter((l) => l.level === level),
    details: () => state.details?.() as Record<string, unknown>,
    /** Times of a map's periodic reads (not start's), relative to T0. */
    readTimes: (name: string = TCP4) =>
      kernel.reads
        .slice(probes)
        .filter((r) => r.path === `${MAPS_DIR}/${name}`)
        .map((r) => r.at - T0),
    /** Batch i's rows as plain values. */
    rows: (i: number) => view(sink.batches[i]),
  };
}

/** Advances the fake clock by `ms`, running due timers and the promise work they start. */
const tick = (ms: number) => vi.advanceTimersByTimeAsync(ms);

const endpoint = (ip: string, port: number) => (ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`);

function view(b: FlowBatch) {
  return [...b].map((r) => ({
    protocol: r.protocol,
    src: endpoint(r.srcIp, r.srcPort),
    dst: endpoint(r.dstIp, r.dstPort),
    tx: r.txBytes,
    rx: r.rxBytes,
    txp: r.txPackets,
    rxp: r.rxPackets,
    flags: r.flags,
  }));
}

/** A connection the pod 10.0.1.5 opened from `port` to 10.0.2.7:443 (IPv4) or fd00::5 → fd00::7 (IPv6). */
function conn(port: number, extra: Partial<Connection> = {}, family: 4 | 6 = 4): Uint8Array {
  return connectionKey({
    opener: family === 4 ? '10.0.1.5' : 'fd00::5',
    openerPort: port,
    responder: family === 4 ? '10.0.2.7' : 'fd00::7',
    responderPort: 443,
    ...extra,
  });
}

/** An entry with split counters: the opener sent `tx` bytes, got 10 × back; live for an hour of ktime. */
function split(
  kernel: FakeCiliumKernel,
  key: Uint8Array,
  tx: number,
  extra: { lifetime?: number; flags?: number } = {},
) {
  return {
    key,
    value: splitValue({
      txPackets: Math.ceil(tx / 100),
      txBytes: tx,
      rxPackets: Math.ceil(tx / 50),
      rxBytes: 10 * tx,
      lifetime: kernel.ktimeNow() + 3600,
      ...extra,
    }),
  };
}

function fakeClock() {
  beforeEach(() => {
    vi.useFakeTimers({
      now: T0,
      toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance', 'Date'],
    });
  });
  afterEach(() => {
    vi.useRealTimers();
  });
}

describe('cilium receiver: start', () => {
  fakeClock();

  it('refuses to start when maps_dir does not exist, saying how to mount the bpffs or what to choose instead', async () => {
    const kernel = new FakeCiliumKernel();
    kernel.paths.clear();
    const t = setup({}, kernel);
    await expect(t.receiver.start()).rejects.toThrow(
      "cilium receiver: /sys/fs/bpf/tc/globals does not exist: Cilium pins its maps there on a Cilium node (mount the host's /sys/fs/bpf into the pod and set maps_dir), or choose another collection mode",
    );
    expect(kernel.reads).toEqual([]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('refuses to start when maps_dir is not on a bpf file system, naming its type and what to mount — not the "Permission denied" of opening a file there', async () => {
    // The host's /sys/fs/bpf not mounted into the pod: maps_dir is a directory of the container's own
    // file system, and files by the maps' names there are no maps (the kernel refuses them with EACCES).
    const kernel = new FakeCiliumKernel().pinAll();
    kernel.fsTypes.set(MAPS_DIR, 0x794c7630);
    for (const name of [TCP4, ANY4, TCP6, ANY6])
      kernel.answer(name, pinnedMapError('EPERM', 'cannot open the pinned map: Permission denied'));
    const t = setup({}, kernel);
    await expect(t.receiver.start()).rejects.toThrow(
      "cilium receiver: /sys/fs/bpf/tc/globals is not a bpf file system (type 0x794c7630, overlayfs): only a bpffs holds pinned maps — mount the host's /sys/fs/bpf into the pod (hostPath) and point maps_dir at Cilium's directory in it (tc/globals), or choose another collection mode",
    );
    expect(kernel.reads).toEqual([]);
    expect(vi.getTimerCount()).toBe(0);
    // A type not known by name is given in hex alone.
    const other = new FakeCiliumKernel().pinAll();
    other.fsTypes.set(MAPS_DIR, 0x12345678);
    await expect(setup({}, other).receiver.start()).rejects.toThrow(
      '/sys/fs/bpf/tc/globals is not a bpf file system (type 0x12345678): only a bpffs',
    );
    // A file system that cannot be told (statfs refused): the start goes on, and the maps' own errors speak.
    const unknown = new FakeCiliumKernel().pinAll();
    unknown.fsType = () => undefined;
    const u = setup({}, unknown);
    await u.start();
    expect(unknown.reads).toHaveLength(4);
    await u.receiver.shutdown();
  });

  it('refuses to start when no map is pinned there, naming the maps it looked for (those left out with "" not among them)', async () => {
    const t = setup({}, new FakeCiliumKernel());
    await expect(t.receiver.start()).rejects.toThrow(
      'cilium receiver: no Cilium conntrack map in /sys/fs/bpf/tc/globals (cilium_ct4_global, cilium_ct_any4_global, cilium_ct6_global, cilium_ct_any6_global): not a Cilium node, or maps_dir is not where its bpffs is mounted',
    );
    // Only the IPv6 maps pinned, and those left out by the config: none of the configured ones is there.
    const kernel = new FakeCiliumKernel().pin(TCP6).pin(ANY6);
    const u = setup({ map_names: { tcp6: '', any6: '' } }, kernel);
    await expect(u.receiver.start()).rejects.toThrow(
      'cilium receiver: no Cilium conntrack map in /sys/fs/bpf/tc/globals (cilium_ct4_global, cilium_ct_any4_global): not a Cilium node',
    );
    expect(kernel.reads).toEqual([]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('at start reads one entry of each present map: none readable fails the start with each error, before HZ is measured', async () => {
    // Maps by Cilium's names with IPv6-sized keys: not the conntrack maps this layout reads.
    const kernel = new FakeCiliumKernel().pin(TCP4, [], { keySize: 38 }).pin(ANY4, [], { keySize: 38 });
    const t = setup({}, kernel);
    const size = (name: string) =>
      `${MAPS_DIR}/${name} has key/value sizes 38/56, not the 14/56 this layout reads`;
    await expect(t.receiver.start()).rejects.toThrow(
      `cilium receiver: no Cilium conntrack map in ${MAPS_DIR} can be read: ${size(TCP4)}; ${size(ANY4)}`,
    );
    expect(kernel.reads.map((r) => [r.path, r.maxEntries])).toEqual([
      [`${MAPS_DIR}/${TCP4}`, 1],
      [`${MAPS_DIR}/${ANY4}`, 1],
    ]);
    expect(kernel.sleeps).toEqual([]);
    expect(vi.getTimerCount()).toBe(0);

    // Maps it may not open (the bpffs belongs to root).
    const denied = new FakeCiliumKernel().pinAll();
    const message = 'cannot open the pinned map: Permission denied';
    for (const name of [TCP4, ANY4, TCP6, ANY6]) denied.answer(name, pinnedMapError('EPERM', message));
    await expect(setup({}, denied).receiver.start()).rejects.toThrow(
      `can be read: ${Array(4).fill(message).join('; ')}`,
    );
  });

  it('at start one readable map is enough: it starts, and the others’ errors show with the first read', async () => {
    const kernel = new FakeCiliumKernel().pin(TCP4).pin(ANY4, [], { keySize: 38 });
    kernel.set(TCP4, [split(kernel, conn(40000), 1000)]);
    const t = setup({}, kernel);
    await t.start();
    expect(t.state.status).toBe('starting');
    await tick(0);
    expect(t.rows(0).map((r) => r.src)).toEqual(['10.0.1.5:40000']);
    expect(t.state.status).toBe('recoverable_error');
    expect(t.state.lastError).toContain(`${MAPS_DIR}/${ANY4} has key/value sizes 38/56`);
    await t.receiver.shutdown();
  });

  it('reads the maps named in map_names under maps_dir with their layouts’ sizes, bounded by max_entries when set', async () => {
    const dir = '/host/sys/fs/bpf/tc/globals';
    const kernel = new FakeCiliumKernel();
    kernel.paths.add(dir);
    kernel.pin('ct4_test', [], { dir, keySize: 14 }).pin('ct6_test', [], { dir, keySize: 38 });
    const t = setup(
      {
        maps_dir: dir,
        map_names: { tcp4: 'ct4_test', any4: '', tcp6: 'ct6_test', any6: '' },
        max_entries: 1000,
      },
      kernel,
    );
    await t.start();
    await tick(0);
    expect(kernel.reads.map(({ at: _, ...o }) => o)).toEqual([
      // start's: one entry of each.
      { path: `${dir}/ct4_test`, keySize: 14, valueSize: 56, maxEntries: 1 },
      { path: `${dir}/ct6_test`, keySize: 38, valueSize: 56, maxEntries: 1 },
      { path: `${dir}/ct4_test`, keySize: 14, valueSize: 56, maxEntries: 1000 },
      { path: `${dir}/ct6_test`, keySize: 38, valueSize: 56, maxEntries: 1000 },
    ]);
    expect(t.state.status).toBe('ok');
    expect(Object.keys(t.details().maps as object)).toEqual(['ct4_test', 'ct6_test']);
    await t.receiver.shutdown();
  });

  it.each([100, 250, 300, 1000])(
    'measures the kernel’s HZ (%i) at start: /proc/schedstat’s jiffies 100 ms apart',
    async (hz) => {
      const kernel = new FakeCiliumKernel().pinAll();
      kernel.hz = hz;
      const t = setup({}, kernel);
      await t.start();
      expect(kernel.sleeps).toEqual([100]);
      expect(kernel.procReads).toEqual(['/proc/schedstat', '/proc/schedstat']);
      expect(kernel.reads.map((r) => r.maxEntries)).toEqual([1, 1, 1, 1]);
      expect(t.details().kernel_hz).toBe(hz);
      expect(t.logged('info')).toEqual([
        {
          level: 'info',
          msg: "reading Cilium's conntrack maps in /sys/fs/bpf/tc/globals",
          fields: {
            maps_dir: MAPS_DIR,
            maps: [TCP4, ANY4, TCP6, ANY6],
            kernel_hz: hz,
          },
        },
      ]);
      await t.receiver.shutdown();
    },
  );

  it('HZ unknown when /proc/schedstat has no timestamp, cannot be read, or its jiffies stand still; the receiver starts all the same', async () => {
    for (const schedstat of [
      undefined,
      'version 15\ncpu0 0 0 1 2 3 4 5 6 7\n',
      'version 15\ntimestamp 4295000000\n',
    ]) {
      const kernel = new FakeCiliumKernel().pinAll();
      kernel.files.set('/proc/schedstat', schedstat);
      const t = setup({}, kernel);
      await t.start();
      expect(t.details().kernel_hz).toMatch(/^unknown/);
      await tick(0);
      expect(t.sink.batches).toHaveLength(1);
      await t.receiver.shutdown();
    }
  });

  it('/status before the first read: the maps not read yet, layout and clock undetermined', async () => {
    const t = setup();
    await t.start();
    expect(t.details()).toEqual({
      maps_dir: MAPS_DIR,
      value_layout: 'undetermined (no entry with counters yet)',
      value_layout_reason: '',
      directions: 'tx and rx',
      clock_source: 'undetermined',
      kernel_hz: 250,
      maps: {
        [TCP4]: 'not read yet',
        [ANY4]: 'not read yet',
        [TCP6]: 'not read yet',
        [ANY6]: 'not read yet',
      },
    });
    await t.receiver.shutdown();
  });
});

describe('cilium receiver: reads', () => {
  fakeClock();

  it('every read_interval: one cumulative snapshot of all four maps (in map order), origin the receiver id, times the read’s', async () => {
    const kernel = new FakeCiliumKernel().pinAll();
    kernel
      .set(TCP4, [split(kernel, conn(40000), 1200)])
      .set(ANY4, [split(kernel, conn(5353, { protocol: UDP, responderPort: 53 }), 80)])
      .set(TCP6, [split(kernel, conn(41000, {}, 6), 300)])
      .set(ANY6, [split(kernel, conn(7, { protocol: 58, responderPort: 0 }, 6), 64)]);
    const t = setup({}, kernel);
    await t.start();
    await tick(0);
    expect(t.sink.batches).toHaveLength(1);
    const b = t.sink.batches[0];
    expect(b.temporality).toBe('cumulative');
    expect(b.snapshot).toBe(true);
    expect(b.origin).toBe('cilium/node');
    expect([...b.timeStart.subarray(0, 4), ...b.timeEnd.subarray(0, 4)]).toEqual(Array(8).fill(T0));
    expect(t.rows(0)).toEqual([
      {
        protocol: 6,
        src: '10.0.1.5:40000',
        dst: '10.0.2.7:443',
        tx: 1200,
        rx: 12000,
        txp: 12,
        rxp: 24,
        flags: KNOWN,
      },
      {
        protocol: 17,
        src: '10.0.1.5:5353',
        dst: '10.0.2.7:53',
        tx: 80,
        rx: 800,
        txp: 1,
        rxp: 2,
        flags: KNOWN,
      },
      {
        protocol: 6,
        src: '[fd00::5]:41000',
        dst: '[fd00::7]:443',
        tx: 300,
        rx: 3000,
        txp: 3,
        rxp: 6,
        flags: KNOWN,
      },
      { protocol: 58, src: '[fd00::5]:7', dst: '[fd00::7]:0', tx: 64, rx: 640, txp: 1, rxp: 2, flags: KNOWN },
    ]);
    expect([...b.family.subarray(0, 4)]).toEqual([4, 4, 6, 6]);
    expect(t.state.status).toBe('ok');

    kernel.set(TCP4, [split(kernel, conn(40000), 1500)]);
    await tick(5000);
    expect(t.sink.batches).toHaveLength(2);
    expect(t.sink.batches[1].timeEnd[0]).toBe(T0 + 5000);
    expect(t.rows(1)[0]).toMatchObject({ src: '10.0.1.5:40000', tx: 1500, rx: 15000 });
    await tick(10_000);
    expect(t.readTimes()).toEqual([0, 5000, 10_000, 15_000]);
    expect(t.readTimes(ANY6)).toEqual([0, 5000, 10_000, 15_000]);
    await t.receiver.shutdown();
  });

  it('service and related entries are never flows; a local connection’s OUT and IN entries are one', async () => {
    const kernel = new FakeCiliumKernel().pinAll();
    const lifetime = kernel.ktimeNow() + 3600;
    kernel
      .set(TCP4, [
        {
          key: serviceKey({ vip: '10.96.0.10', servicePort: 443, client: '10.0.1.5', clientPort: 40000 }),
          value: totalValue({ backendId: 3, lifetime }),
        },
        split(kernel, conn(40000), 1000),
        split(kernel, conn(40000, { tuple: TUPLE.IN }), 1000),
      ])
      .set(ANY4, [
        split(kernel, conn(0, { protocol: ICMP, responderPort: 0, tuple: TUPLE.RELATED }), 0),
        split(kernel, conn(0, { protocol: ICMP, responderPort: 0, tuple: TUPLE.IN | TUPLE.RELATED }), 0),
      ]);
    const t = setup({}, kernel);
    await t.start();
    await tick(0);
    expect(t.rows(0).map((r) => [r.src, r.dst, r.tx])).toEqual([['10.0.1.5:40000', '10.0.2.7:443', 1000]]);
    expect((t.details().maps as Record<string, unknown>)[TCP4]).toEqual({
      entries: 3,
      connections: 1,
      service: 1,
      related: 0,
      pairs: 1,
      expired: 0,
    });
    await t.receiver.shutdown();
  });

  it('one map failing: the others are emitted, the batch is no snapshot, recoverable_error names the error; the next good read is ok again', async () => {
    const kernel = new FakeCiliumKernel().pinAll();
    kernel.set(TCP4, [split(kernel, conn(40000), 1000)]).set(TCP6, [split(kernel, conn(41000, {}, 6), 300)]);
    const t = setup({}, kernel);
    await t.start();
    kernel.answer(ANY4, pinnedMapError('EIO', 'batch lookup failed: Input/output error'));
    await tick(0);
    expect(t.sink.batches).toHaveLength(1);
    expect(t.sink.batches[0].snapshot).toBe(false);
    expect(t.rows(0).map((r) => r.src)).toEqual(['10.0.1.5:40000', '[fd00::5]:41000']);
    expect(t.state.status).toBe('recoverable_error');
    expect(t.state.lastError).toBe('Cilium conntrack maps not read: batch lookup failed: Input/output error');
    expect(t.logged('warn')).toEqual([
      {
        level: 'warn',
        msg: 'Cilium conntrack maps not read: batch lookup failed: Input/output error',
        fields: { maps: ['any4'] },
      },
    ]);
    expect(t.metric('netmon_cilium_read_failures', { map: 'any4' }, 'counter')).toBe(1);
    expect(t.metric('netmon_cilium_read_failures', { map: 'tcp4' })).toBeUndefined();
    expect((t.details().maps as Record<string, unknown>)[ANY4]).toBe(
      'batch lookup failed: Input/output error',
    );
    // Not retried early: one map failing is no reason to read the others again sooner.
    await tick(4999);
    expect(t.readTimes(ANY4)).toEqual([0]);
    await tick(1);
    expect(t.sink.batches[1].snapshot).toBe(true);
    expect(t.state.status).toBe('ok');
    expect((t.details().maps as Record<string, unknown>)[ANY4]).toMatchObject({ entries: 0 });
    await t.receiver.shutdown();
  });

  it('one map failing read after read: warned once per change of its error and once when it recovers, /status current every read', async () => {
    const kernel = new FakeCiliumKernel().pinAll();
    kernel.set(TCP4, [split(kernel, conn(40000), 1000)]);
    const t = setup({ read_interval: '1s' }, kernel);
    await t.start();
    const eio = pinnedMapError('EIO', 'batch lookup failed: Input/output error');
    const gone = pinnedMapError(
      'ENOENT',
      `cannot open the pinned map ${MAPS_DIR}/${ANY4}: No such file or directory`,
    );
    kernel.answer(ANY4, eio, eio, eio, gone, gone);
    await tick(0);
    const errorTimes: number[] = [];
    for (let i = 0; i < 5; i++) {
      expect(t.state.status, `read ${i}`).toBe('recoverable_error');
      expect(t.state.lastError).toBe(`Cilium conntrack maps not read: ${(i < 3 ? eio : gone).message}`);
      expect((t.details().maps as Record<string, unknown>)[ANY4]).toBe((i < 3 ? eio : gone).message);
      errorTimes.push((t.state.lastErrorTime ?? 0) - T0);
      await tick(1000);
    }
    // Five reads failed, each counted and each in /status when it happened ...
    expect(t.metric('netmon_cilium_read_failures', { map: 'any4' })).toBe(5);
    expect(errorTimes).toEqual([0, 1000, 2000, 3000, 4000]);
    // ... but the log says only what changed: the first error, the second, the recovery.
    const said = () =>
      t.logs.filter((l) => l.msg.startsWith('Cilium conntrack maps')).map((l) => [l.level, l.msg, l.fields]);
    expect(said()).toEqual([
      ['warn', `Cilium conntrack maps not read: ${eio.message}`, { maps: ['any4'] }],
      ['warn', `Cilium conntrack maps not read: ${gone.message}`, { maps: ['any4'] }],
      ['info', `Cilium conntrack maps recovered: ${ANY4}`, { maps: ['any4'] }],
    ]);
    expect(t.state.status).toBe('ok');
    expect(t.logged('error')).toEqual([]);
    // A later failure is news again.
    kernel.answer(ANY4, eio);
    await tick(1000);
    expect(said()).toHaveLength(4);
    await t.receiver.shutdown();
  });

  it('a map of other sizes than its layout (a 14-byte key where IPv6 keys are 38): the addon’s refusal in /status, the others read', async () => {
    const kernel = new FakeCiliumKernel().pin(TCP4).pin(ANY4).pin(ANY6).pin(TCP6, [], { keySize: 14 });
    kernel.set(TCP4, [split(kernel, conn(40000), 1000)]);
    const t = setup({}, kernel);
    await t.start();
    await tick(0);
    const message = `${MAPS_DIR}/${TCP6} has key/value sizes 14/56, not the 38/56 this layout reads`;
    expect(t.rows(0).map((r) => r.src)).toEqual(['10.0.1.5:40000']);
    expect(t.state.lastError).toBe(`Cilium conntrack maps not read: ${message}`);
    expect((t.details().maps as Record<string, unknown>)[TCP6]).toBe(message);
    expect(t.metric('netmon_cilium_read_failures', { map: 'tcp6' })).toBe(1);
    await t.receiver.shutdown();
  });

  it('every map failing: no batch, recoverable_error, retried after 500 ms, 1 s, 2 s, 4 s, then every read_interval, until a read works', async () => {
    const kernel = new FakeCiliumKernel().pinAll();
    kernel.set(TCP4, [split(kernel, conn(40000), 1000)]);
    const denied = pinnedMapError(
      'EPERM',
      `cannot open the pinned map ${MAPS_DIR}/x: Operation not permitted`,
    );
    const t = setup({}, kernel);
    await t.start();
    for (const name of [TCP4, ANY4, TCP6, ANY6]) kernel.answer(name, ...Array(5).fill(denied));
    await tick(0);
    expect(t.sink.batches).toEqual([]);
    expect(t.state.status).toBe('recoverable_error');
    expect(t.state.lastError).toBe(
      `no Cilium conntrack map could be read: ${Array(4).fill(denied.message).join('; ')}`,
    );
    expect(t.logged('error')[0]).toMatchObject({ fields: { failed_in_a_row: 1 } });
    await tick(12_500);
    expect(t.readTimes()).toEqual([0, 500, 1500, 3500, 7500, 12_500]);
    // Logged once: the same errors again say nothing new (/status and the counter carry them).
    expect(t.logged('error').map((l) => l.fields.failed_in_a_row)).toEqual([1]);
    expect(t.logged('info').filter((l) => l.msg.startsWith('Cilium conntrack maps'))).toEqual([
      {
        level: 'info',
        msg: `Cilium conntrack maps recovered: ${TCP4}, ${ANY4}, ${TCP6}, ${ANY6}`,
        fields: { maps: ['tcp4', 'any4', 'tcp6', 'any6'] },
      },
    ]);
    expect(t.sink.batches).toHaveLength(1);
    expect(t.state.status).toBe('ok');
    expect(t.metric('netmon_cilium_read_failures', { map: 'tcp4' })).toBe(5);
    expect(t.metric('netmon_cilium_reads', undefined, 'counter')).toBe(6);
    // Back to the read_interval once a read worked.
    await tick(5000);
    expect(t.readTimes()).toEqual([0, 500, 1500, 3500, 7500, 12_500, 17_500]);
    await t.receiver.shutdown();
  });

  it('a map holding more than max_entries is read in part: no snapshot, netmon_cilium_truncated_reads counts it', async () => {
    const kernel = new FakeCiliumKernel().pinAll();
    kernel.set(
      TCP4,
      [1, 2, 3].map((p) => split(kernel, conn(p), 100 * p)),
    );
    kernel.set(ANY4, [split(kernel, conn(53, { protocol: UDP }), 80)]);
    const t = setup({ max_entries: 2 }, kernel);
    await t.start();
    await tick(0);
    expect(kernel.reads.slice(4).every((r) => r.maxEntries === 2)).toBe(true);
    expect(t.rows(0).map((r) => r.src)).toEqual(['10.0.1.5:1', '10.0.1.5:2', '10.0.1.5:53']);
    expect(t.sink.batches[0].snapshot).toBe(false);
    expect(t.metric('netmon_cilium_truncated_reads', { map: 'tcp4' }, 'counter')).toBe(1);
    expect(t.metric('netmon_cilium_truncated_reads', { map: 'any4' })).toBeUndefined();
    await tick(5000);
    expect(t.metric('netmon_cilium_truncated_reads', { map: 'tcp4' })).toBe(2);
    // Room again: a whole read is a snapshot.
    kernel.set(TCP4, [split(kernel, conn(1), 100)]);
    await tick(5000);
    expect(t.sink.batches[2].snapshot).toBe(true);
    expect(t.metric('netmon_cilium_truncated_reads', { map: 'tcp4' })).toBe(2);
    await t.receiver.shutdown();
  });

  it('a map read in part says so in /status, as max_entries’ description promises', async () => {
    const kernel = new FakeCiliumKernel().pinAll();
    kernel.set(
      TCP4,
      [1, 2, 3].map((p) => split(kernel, conn(p), 100 * p)),
    );
    const t = setup({ max_entries: 2 }, kernel);
    await t.start();
    await tick(0);
    expect(JSON.stringify((t.details().maps as Record<string, unknown>)[TCP4])).toMatch(
      /truncated|in part|max_entries/,
    );
    await t.receiver.shutdown();
  });

  it('a Cilium without IPv6 pins no IPv6 maps: the IPv4 maps are read as a whole snapshot, with no failure', async () => {
    // Cilium defines cilium_ct6_global and cilium_ct_any6_global only with ENABLE_IPV6 (bpf/lib/conntrack_map.h),
    // and IPv6 is off by default.
    const kernel = new FakeCiliumKernel().pin(TCP4).pin(ANY4);
    kernel.set(TCP4, [split(kernel, conn(40000), 1000)]);
    const t = setup({}, kernel);
    await t.start();
    await tick(0);
    await tick(5000);
    expect(t.rows(1).map((r) => r.src)).toEqual(['10.0.1.5:40000']);
    expect(t.sink.batches.map((b) => b.snapshot)).toEqual([true, true]);
    expect(t.state.status).toBe('ok');
    expect(t.metric('netmon_cilium_read_failures', { map: 'tcp6' })).toBeUndefined();
    expect(t.logged('warn')).toEqual([]);
    const maps = t.details().maps as Record<string, unknown>;
    expect([maps[TCP6], maps[ANY6]]).toEqual([
      `not pinned, nor is ${ANY6}: Cilium pins a family's conntrack maps only with that family on (or map_names names files it does not pin)`,
      `not pinned, nor is ${TCP6}: Cilium pins a family's conntrack maps only with that family on (or map_names names files it does not pin)`,
    ]);
    await t.receiver.shutdown();
  });

  it('an IPv6-only Cilium pins no IPv4 maps: their /status says so without blaming IPv6, and the IPv6 maps are read whole', async () => {
    const kernel = new FakeCiliumKernel().pin(TCP6).pin(ANY6);
    kernel.set(TCP6, [split(kernel, conn(41000, {}, 6), 300)]);
    const t = setup({}, kernel);
    await t.start();
    await tick(0);
    expect(t.rows(0).map((r) => r.src)).toEqual(['[fd00::5]:41000']);
    expect(t.sink.batches[0].snapshot).toBe(true);
    expect(t.state.status).toBe('ok');
    const maps = t.details().maps as Record<string, unknown>;
    expect(maps[TCP4]).toBe(
      `not pinned, nor is ${ANY4}: Cilium pins a family's conntrack maps only with that family on (or map_names names files it does not pin)`,
    );
    expect(JSON.stringify(maps)).not.toContain('IPv6');
    // The other map of the family left out by the config: nothing to compare with.
    const u = setup({ map_names: { any4: '' } }, kernel);
    await u.start();
    await tick(0);
    expect((u.details().maps as Record<string, unknown>)[TCP4]).toBe(
      "not pinned: Cilium pins a family's conntrack maps only with that family on (or map_names names files it does not pin)",
    );
    expect(u.state.status).toBe('ok');
    await u.receiver.shutdown();
    await t.receiver.shutdown();
  });

  it('a TCP map not pinned while its family’s other map is (map_names.tcp4 mistyped): recoverable_error naming it, warned once; the rest read whole; fixed, it is read', async () => {
    const kernel = new FakeCiliumKernel().pinAll();
    kernel.set(ANY4, [split(kernel, conn(5353, { protocol: UDP, responderPort: 53 }), 80)]);
    kernel.set(TCP4, [split(kernel, conn(40000), 1000)]);
    const typo = 'cilium_ct4_globl';
    const t = setup({ map_names: { tcp4: typo } }, kernel);
    await t.start();
    const message = `${MAPS_DIR}/${typo} is not pinned, while ${ANY4} is: the IPv4 TCP connections are not read (map_names.tcp4 names a file Cilium does not pin, or Cilium's agent has pinned its maps only in part)`;
    // Said in /status from the start.
    expect((t.details().maps as Record<string, unknown>)[typo]).toBe(message);
    await tick(0);
    await tick(5000);
    expect(t.rows(1).map((r) => r.src)).toEqual(['10.0.1.5:5353']);
    // Every other map was read whole, and the missing one never was: no connection is taken for ended.
    expect(t.sink.batches.map((b) => b.snapshot)).toEqual([true, true]);
    expect(t.state.status).toBe('recoverable_error');
    expect(t.state.lastError).toBe(`Cilium conntrack maps not read: ${message}`);
    expect((t.details().maps as Record<string, unknown>)[typo]).toBe(message);
    expect(t.logged('warn')).toEqual([
      { level: 'warn', msg: `Cilium conntrack maps not read: ${message}`, fields: { maps: ['tcp4'] } },
    ]);
    // Not a failed read: there was nothing to read.
    expect(t.metric('netmon_cilium_read_failures', { map: 'tcp4' })).toBeUndefined();
    // The file by that name appears (a Cilium pinning its maps late): read, ok, and said once.
    kernel.pin(typo, [split(kernel, conn(40001), 700)]);
    await tick(5000);
    expect(t.rows(2).map((r) => r.src)).toEqual(['10.0.1.5:40001', '10.0.1.5:5353']);
    expect(t.state.status).toBe('ok');
    expect(t.logged('info').filter((l) => l.msg.startsWith('Cilium conntrack maps'))).toEqual([
      { level: 'info', msg: `Cilium conntrack maps recovered: ${typo}`, fields: { maps: ['tcp4'] } },
    ]);
    await t.receiver.shutdown();
  });

  it('the reverse, an other-protocol map missing while its family’s TCP map is pinned: the same error (UDP, ICMP and SCTP are lost)', async () => {
    const kernel = new FakeCiliumKernel().pin(TCP4).pin(TCP6).pin(ANY6);
    kernel.set(TCP4, [split(kernel, conn(40000), 1000)]);
    const t = setup({}, kernel);
    await t.start();
    await tick(0);
    const message = `${MAPS_DIR}/${ANY4} is not pinned, while ${TCP4} is: the IPv4 connections of every protocol but TCP (UDP, ICMP, SCTP) are not read (map_names.any4 names a file Cilium does not pin, or Cilium's agent has pinned its maps only in part)`;
    expect(t.rows(0).map((r) => r.src)).toEqual(['10.0.1.5:40000']);
    expect(t.state.status).toBe('recoverable_error');
    expect(t.state.lastError).toBe(`Cilium conntrack maps not read: ${message}`);
    expect((t.details().maps as Record<string, unknown>)[ANY4]).toBe(message);
    await tick(5000);
    expect(t.logged('warn')).toHaveLength(1);
    await t.receiver.shutdown();
  });

  it('every connection at zero counters (Cilium’s accounting off): warned once, and said in /status while it lasts', async () => {
    const kernel = new FakeCiliumKernel().pinAll();
    const lifetime = kernel.ktimeNow() + 3600;
    const zero = [
      { key: conn(1), value: splitValue({ lifetime }) },
      { key: conn(2, { tuple: TUPLE.IN }), value: splitValue({ lifetime }) },
    ];
    kernel.set(TCP4, zero);
    const t = setup({}, kernel);
    await t.start();
    await tick(0);
    const counters =
      "every connection's counters are 0: Cilium's conntrack accounting looks off (--bpf-conntrack-accounting, Helm bpf.ctAccounting: true)";
    expect(t.rows(0).map((r) => [r.tx, r.rx, r.txp, r.rxp])).toEqual([
      [0, 0, 0, 0],
      [0, 0, 0, 0],
    ]);
    expect(t.details().counters).toBe(counters);
    expect(t.logged('warn')).toEqual([
      {
        level: 'warn',
        msg: "every connection in Cilium's conntrack maps has zero counters: its conntrack accounting looks off, so no bytes can be reported. Turn it on (cilium-agent --bpf-conntrack-accounting, Helm bpf.ctAccounting: true), or choose the ebpf or netfilter collection mode",
        fields: { connections: 2 },
      },
    ]);
    await tick(5000);
    expect(t.logged('warn')).toHaveLength(1);
    // Accounting turned on: one connection counting is enough.
    kernel.set(TCP4, [...zero, split(kernel, conn(3), 100)]);
    await tick(5000);
    expect(t.details()).not.toHaveProperty('counters');
    // Off again: said in /status again, not logged again.
    kernel.set(TCP4, zero);
    await tick(5000);
    expect(t.details().counters).toBe(counters);
    expect(t.logged('warn')).toHaveLength(1);
    // No connection at all says nothing about the counters.
    const empty = setup();
    await empty.start();
    await tick(0);
    expect(empty.details()).not.toHaveProperty('counters');
    expect(empty.logged('warn')).toEqual([]);
    await empty.receiver.shutdown();
    await t.receiver.shutdown();
  });

  it('a next stage that throws: recoverable_error, and reading goes on', async () => {
    const kernel = new FakeCiliumKernel().pinAll();
    kernel.set(TCP4, [split(kernel, conn(40000), 1000)]);
    const t = setup({}, kernel);
    let fail = true;
    const consume = t.sink.consume.bind(t.sink);
    t.sink.consume = (b) => {
      if (fail) throw new Error('queue closed');
      consume(b);
    };
    await t.start();
    await tick(0);
    expect(t.state.status).toBe('recoverable_error');
    expect(t.state.lastError).toBe('Cilium flows read but not handed on: queue closed');
    fail = false;
    await tick(5000);
    expect(t.sink.batches).toHaveLength(1);
    expect(t.state.status).toBe('ok');
    await t.receiver.shutdown();
  });
});

describe('cilium receiver: value layout', () => {
  fakeClock();

  /** An IN entry of a local server: split counters (rx: what the opener sent). */
  const inSplit = (kernel: FakeCiliumKernel, port: number) => ({
    key: conn(port, { tuple: TUPLE.IN }),
    value: splitValue({
      rxPackets: 10,
      rxBytes: 1000,
      txPackets: 40,
      txBytes: 50_000,
      lifetime: kernel.ktimeNow() + 60,
    }),
  });

  it('auto: settled from the first entries that tell, once, logged and shown in /status; entries read before are decoded as total', async () => {
    const kernel = new FakeCiliumKernel().pinAll();
    // No evidence yet: an OUT entry that has not received anything (identical in both layouts).
    kernel.set(TCP4, [
      {
        key: conn(40000),
        value: splitValue({ txPackets: 1, txBytes: 74, lifetime: kernel.ktimeNow() + 60 }),
      },
    ]);
    const t = setup({}, kernel);
    await t.start();
    await tick(0);
    expect(t.rows(0)).toEqual([expect.objectContaining({ tx: 74, rx: 0, txp: 1, rxp: 0 })]);
    expect(t.details()).toMatchObject({
      value_layout: 'undetermined (no entry with counters yet)',
      value_layout_reason: '',
    });
    expect(t.receiver.valueLayout).toBeUndefined();

    kernel.set(TCP4, [inSplit(kernel, 51000)]);
    await tick(5000);
    expect(t.receiver.valueLayout).toBe('split');
    expect(t.details()).toMatchObject({
      value_layout: 'split',
      value_layout_reason:
        'entries hold rx packets and bytes before tx (Cilium 1.15 and earlier): 1 of 1 entries that tell the layouts apart',
      directions: 'tx and rx',
    });
    expect(t.rows(1)).toEqual([
      expect.objectContaining({ src: '10.0.1.5:51000', tx: 1000, rx: 50_000, txp: 10, rxp: 40 }),
    ]);

    // Settled: an entry that would say otherwise later changes nothing.
    kernel.set(TCP4, [
      inSplit(kernel, 51000),
      { key: conn(40001), value: totalValue({ natAddress: '192.0.2.1', packets: 3, bytes: 300 }) },
    ]);
    await tick(5000);
    expect(t.receiver.valueLayout).toBe('split');
    // Read as split: the NAT address 192.0.2.1 (c0 00 02 01) lands in rx_packets.
    expect(t.rows(2)[1]).toMatchObject({ rxp: 0x010200c0, tx: 300 });
    expect(t.logged('info').filter((l) => l.msg.startsWith('Cilium value layout'))).toEqual([
      {
        level: 'info',
        msg: 'Cilium value layout: split',
        fields: {
          value_layout: 'split',
          reason:
            'entries hold rx packets and bytes before tx (Cilium 1.15 and earlier): 1 of 1 entries that tell the layouts apart',
        },
      },
    ]);
    await t.receiver.shutdown();
  });

  it('auto: entries that disagree decide nothing and are read neither way (said in /status); a later read with a clear majority decides and reads them', async () => {
    const kernel = new FakeCiliumKernel().pinAll();
    const lifetime = kernel.ktimeNow() + 60;
    const odd = {
      key: conn(1),
      value: splitValue({ rxPackets: 10, rxBytes: 5, txPackets: 1, txBytes: 60, lifetime }),
    };
    kernel.set(TCP4, [odd, inSplit(kernel, 51000)]);
    const t = setup({}, kernel);
    await t.start();
    await tick(0);
    expect(t.receiver.valueLayout).toBeUndefined();
    expect(t.details().value_layout).toBe(
      'undetermined (entries disagree: 1 read as rx counters, 1 cannot be; no flow is read until a read decides)',
    );
    // Read as either layout, one of the two would carry wrong counters into delta: no row, and not a
    // snapshot (an empty one would end every connection delta holds).
    expect(t.sink.batches.map((b) => [b.length, b.snapshot])).toEqual([[0, false]]);
    kernel.set(TCP4, [odd, ...[51000, 51001, 51002, 51003].map((p) => inSplit(kernel, p))]);
    await tick(5000);
    expect(t.receiver.valueLayout).toBe('split');
    expect(t.sink.batches[1].snapshot).toBe(true);
    expect(t.rows(1).find((r) => r.src === '10.0.1.5:51000')).toMatchObject({
      tx: 1000,
      rx: 50_000,
      txp: 10,
      rxp: 40,
    });
    expect(t.details().value_layout_reason).toBe(
      'entries hold rx packets and bytes before tx (Cilium 1.15 and earlier): 4 of 5 entries that tell the layouts apart',
    );
    await t.receiver.shutdown();
  });

  it('auto with BIG TCP (GRO packets past 64 KiB): a split node stays split, its rx kept', async () => {
    // Cilium ≤ 1.15 counts skbs: with BIG TCP, GRO hands a pod packets of up to 512 KiB, so a bulk
    // download's rx bytes per packet can be far above 64 KiB. Here the first map read holds only such.
    const kernel = new FakeCiliumKernel().pinAll();
    const lifetime = kernel.ktimeNow() + 60;
    const download = (port: number, perPacket: number) => ({
      key: conn(port),
      value: splitValue({
        rxPackets: 2000,
        rxBytes: 2000 * perPacket,
        txPackets: 900,
        txBytes: 60_000,
        lifetime,
      }),
    });
    kernel.set(TCP4, [download(40000, 190_000), download(40001, 500_000), download(40002, 120_000)]);
    kernel.set(ANY4, [split(kernel, conn(53, { protocol: UDP }), 80)]);
    const t = setup({}, kernel);
    await t.start();
    await tick(0);
    expect(t.receiver.valueLayout).toBe('split');
    expect(
      t
        .rows(0)
        .slice(0, 3)
        .map((r) => [r.src, r.rx, r.rxp]),
    ).toEqual([
      ['10.0.1.5:40000', 380_000_000, 2000],
      ['10.0.1.5:40001', 1_000_000_000, 2000],
      ['10.0.1.5:40002', 240_000_000, 2000],
    ]);
    await t.receiver.shutdown();
  });

  it('auto: total from an entry whose first 16 bytes cannot be rx counters (a 1.19+ NAT address), shown with its consequence', async () => {
    const kernel = new FakeCiliumKernel().pinAll();
    kernel.set(TCP4, [
      {
        key: conn(40000),
        value: totalValue({
          natAddress: '192.0.2.1',
          packets: 60,
          bytes: 42_000,
          lifetime: kernel.ktimeNow() + 60,
        }),
      },
    ]);
    const t = setup({}, kernel);
    await t.start();
    await tick(0);
    expect(t.details()).toMatchObject({
      value_layout: 'total',
      value_layout_reason:
        'entries hold one packets/bytes pair (Cilium 1.16 and later): 1 of 1 entries that tell the layouts apart',
      directions: 'both directions in tx (this Cilium version counts a connection’s packets together)',
    });
    expect(t.rows(0)).toEqual([expect.objectContaining({ tx: 42_000, rx: 0, txp: 60, rxp: 0 })]);
    await t.receiver.shutdown();
  });

  it('value_layout from the config wins over what the entries look like, and is never re-decided', async () => {
    for (const [layout, row] of [
      ['total', { tx: 50_000, rx: 0, txp: 40, rxp: 0 }],
      ['split', { tx: 1000, rx: 50_000, txp: 10, rxp: 40 }],
    ] as const) {
      const kernel = new FakeCiliumKernel().pinAll();
      kernel.set(TCP4, [
        inSplit(kernel, 51000),
        { key: conn(1), value: totalValue({ natAddress: '192.0.2.1' }) },
      ]);
      const t = setup({ value_layout: layout }, kernel);
      expect(t.receiver.valueLayout).toBe(layout);
      await t.start();
      await tick(0);
      expect(t.rows(0)[0]).toMatchObject(row);
      expect(t.details()).toMatchObject({ value_layout: layout, value_layout_reason: 'set in the config' });
      expect(t.logged('info').filter((l) => l.msg.startsWith('Cilium value layout'))).toEqual([]);
      await t.receiver.shutdown();
    }
  });
});

describe('cilium receiver: lifetimes and expired entries', () => {
  fakeClock();

  it('auto, ktime: settled from the lifetimes, logged once; an expired entry closed both ways is Closed, others are not', async () => {
    const kernel = new FakeCiliumKernel().pinAll();
    const now = kernel.ktimeNow();
    kernel.set(TCP4, [
      split(kernel, conn(1), 100, { lifetime: now + 3600 }),
      split(kernel, conn(2), 200, { lifetime: now - 5, flags: CLOSING }),
      split(kernel, conn(3), 300, { lifetime: now - 5 }),
      split(kernel, conn(4), 400, { lifetime: now + 8, flags: CLOSING }),
    ]);
    const t = setup({}, kernel);
    await t.start();
    await tick(0);
    expect(t.details()).toMatchObject({ clock_source: 'ktime', kernel_hz: 250 });
    // Entry 2 ended before the first read: the agent may have reported it before a restart, so it is left
    // out (the first read is delta's baseline anyway).
    expect(t.rows(0).map((r) => [r.src, r.flags])).toEqual([
      ['10.0.1.5:1', KNOWN],
      ['10.0.1.5:3', KNOWN],
      ['10.0.1.5:4', KNOWN],
    ]);
    expect(t.metric('netmon_cilium_entries', { map: 'tcp4', kind: 'expired' })).toBe(2);
    // Ten seconds on, entry 4's close timeout has passed too.
    await tick(10_000);
    expect(t.rows(2).find((r) => r.src === '10.0.1.5:4')?.flags).toBe(KNOWN | CLOSED);
    expect(t.logged('info').filter((l) => l.msg.startsWith('Cilium lifetimes'))).toEqual([
      {
        level: 'info',
        msg: 'Cilium lifetimes count in ktime',
        fields: { clock_source: 'ktime', kernel_hz: 250 },
      },
    ]);
    await t.receiver.shutdown();
  });

  it('auto, jiffies (--enable-bpf-clock-probe): lifetimes in jiffies >> 8 at the measured HZ', async () => {
    const kernel = new FakeCiliumKernel().pinAll();
    kernel.hz = 1000;
    kernel.set(ANY4, [
      split(kernel, conn(1, { protocol: UDP }), 100, { lifetime: kernel.jiffiesIn(60) }),
      split(kernel, conn(2, { protocol: UDP }), 200, { lifetime: kernel.jiffiesIn(-3), flags: CLOSING }),
    ]);
    const t = setup({}, kernel);
    await t.start();
    await tick(0);
    expect(t.details()).toMatchObject({ clock_source: 'jiffies', kernel_hz: 1000 });
    // The ended entry is left out of the first read; expired is counted by jiffies.
    expect(t.rows(0).map((r) => r.flags)).toEqual([KNOWN]);
    expect(t.metric('netmon_cilium_entries', { map: 'any4', kind: 'expired' })).toBe(1);
    await t.receiver.shutdown();
  });

  it('auto, undecidable (lifetimes near neither clock): nothing is taken as expired, and the next read tries again', async () => {
    const kernel = new FakeCiliumKernel().pinAll();
    kernel.set(TCP4, [split(kernel, conn(1), 100, { lifetime: 5, flags: CLOSING })]);
    const t = setup({}, kernel);
    await t.start();
    await tick(0);
    expect(t.details().clock_source).toBe('undetermined');
    expect(t.rows(0)[0].flags).toBe(KNOWN);
    expect(t.metric('netmon_cilium_entries', { map: 'tcp4', kind: 'expired' })).toBe(0);
    kernel.set(TCP4, [split(kernel, conn(1), 100, { lifetime: kernel.ktimeNow() + 60 })]);
    await tick(5000);
    expect(t.details().clock_source).toBe('ktime');
    await t.receiver.shutdown();
  });

  it('clock_source from the config wins: ktime-sized lifetimes read as jiffies have all passed', async () => {
    const kernel = new FakeCiliumKernel().pinAll();
    const now = kernel.ktimeNow();
    kernel.set(TCP4, [
      split(kernel, conn(1), 100, { lifetime: now + 3600, flags: CLOSING }),
      split(kernel, conn(2), 200, { lifetime: now + 3600 }),
    ]);
    const jif = setup({ clock_source: 'jiffies' }, kernel);
    await jif.start();
    await tick(0);
    expect(jif.details().clock_source).toBe('jiffies');
    // Read as jiffies, both have passed: the closed one is an ended entry, left out of the first read.
    expect(jif.rows(0).map((r) => r.flags)).toEqual([KNOWN]);
    expect(jif.metric('netmon_cilium_entries', { map: 'tcp4', kind: 'expired' })).toBe(2);
    await jif.receiver.shutdown();

    // And jiffies-sized lifetimes read as ktime lie far ahead: nothing passed.
    const other = new FakeCiliumKernel().pinAll();
    other.set(TCP4, [split(other, conn(1), 100, { lifetime: other.jiffiesIn(-60), flags: CLOSING })]);
    const kt = setup({ clock_source: 'ktime' }, other);
    await kt.start();
    await tick(0);
    expect(kt.details().clock_source).toBe('ktime');
    expect(kt.rows(0)[0].flags).toBe(KNOWN);
    expect(kt.logged('info').filter((l) => l.msg.startsWith('Cilium lifetimes'))).toEqual([]);
    await kt.receiver.shutdown();
  });

  it('an ended connection is reported Closed once: while Cilium’s GC has not removed its entry, later reads leave it out', async () => {
    // Cilium deletes expired entries only when its GC runs (every 5 minutes at first, up to 12 hours).
    // Reported again, with or without Closed, a downstream delta would count the connection again once
    // it has forgotten the tombstone of the first report.
    const kernel = new FakeCiliumKernel().pinAll();
    const now = kernel.ktimeNow();
    kernel.set(TCP4, [
      split(kernel, conn(1), 100, { lifetime: now + 3600 }),
      split(kernel, conn(2), 1200, { lifetime: now + 3, flags: CLOSING }),
    ]);
    const t = setup({}, kernel);
    await t.start();
    await tick(0);
    expect(t.rows(0).map((r) => [r.src, r.flags])).toEqual([
      ['10.0.1.5:1', KNOWN],
      ['10.0.1.5:2', KNOWN],
    ]);
    await tick(5000);
    expect(t.rows(1).map((r) => [r.src, r.tx, r.flags])).toEqual([
      ['10.0.1.5:1', 100, KNOWN],
      ['10.0.1.5:2', 1200, KNOWN | CLOSED],
    ]);
    for (let i = 0; i < 4; i++) await tick(5000);
    expect(t.sink.batches).toHaveLength(6);
    for (let i = 2; i < 6; i++)
      expect(
        t.rows(i).map((r) => r.src),
        `read ${i}`,
      ).toEqual(['10.0.1.5:1']);
    await t.receiver.shutdown();
  });
});

describe('cilium receiver: self-metrics', () => {
  fakeClock();

  it('reads, entries by map and kind, the last read’s duration, as the meter collects them', async () => {
    const kernel = new FakeCiliumKernel().pinAll();
    const now = kernel.ktimeNow();
    const tcp4: CtEntry[] = [
      split(kernel, conn(1), 100),
      split(kernel, conn(2), 100),
      split(kernel, conn(2, { tuple: TUPLE.IN }), 100),
      {
        key: serviceKey({ vip: '10.96.0.10', servicePort: 80, client: '10.0.1.5', clientPort: 3 }),
        value: totalValue({ lifetime: now + 60 }),
      },
    ];
    const any4: CtEntry[] = [
      split(kernel, conn(0, { protocol: ICMP, responderPort: 0, tuple: TUPLE.RELATED }), 0),
      split(kernel, conn(53, { protocol: UDP }), 80, { lifetime: now - 30 }),
    ];
    kernel.set(TCP4, tcp4).set(ANY4, any4);
    const t = setup({}, kernel);
    await t.start();
    // The first read of tcp4 takes 12 ms.
    kernel.answer(TCP4, new Promise((resolve) => setTimeout(() => resolve(tcp4), 12)));
    expect(t.metric('netmon_cilium_reads', undefined, 'counter')).toBe(0);
    await tick(12);
    expect(t.metric('netmon_cilium_reads', undefined, 'counter')).toBe(1);
    expect(t.metric('netmon_cilium_read_duration', undefined, 'gauge')).toBe(0.012);
    const entries = (map: string, kind: string) => t.metric('netmon_cilium_entries', { map, kind }, 'gauge');
    expect(['connection', 'service', 'related', 'pair', 'expired'].map((k) => entries('tcp4', k))).toEqual([
      2, 1, 0, 1, 0,
    ]);
    expect(['connection', 'service', 'related', 'pair', 'expired'].map((k) => entries('any4', k))).toEqual([
      1, 0, 1, 0, 1,
    ]);
    expect(entries('tcp6', 'connection')).toBe(0);
    // Gauges follow the last read; counters add up.
    kernel.set(TCP4, [split(kernel, conn(1), 100)]);
    await tick(5000);
    expect(t.metric('netmon_cilium_reads')).toBe(2);
    expect(t.metric('netmon_cilium_read_duration')).toBe(0);
    expect(entries('tcp4', 'connection')).toBe(1);
    expect(entries('tcp4', 'pair')).toBe(0);
    await t.receiver.shutdown();
    // Unregistered at shutdown.
    expect(t.metric('netmon_cilium_reads')).toBeUndefined();
  });
});

describe('cilium receiver: shutdown', () => {
  fakeClock();

  it('waits for a read in flight, hands its batch on, and reads no more', async () => {
    const kernel = new FakeCiliumKernel().pinAll();
    let release!: (e: readonly CtEntry[]) => void;
    const t = setup({}, kernel);
    await t.start();
    kernel.answer(TCP4, new Promise((r) => (release = r)));
    await tick(0);
    let done = false;
    const stopping = t.receiver.shutdown().then(() => (done = true));
    await tick(100);
    expect(done).toBe(false);
    release([split(kernel, conn(1), 100)]);
    await stopping;
    expect(t.sink.batches).toHaveLength(1);
    await tick(20_000);
    expect(t.readTimes()).toEqual([0]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('shutdown without start, or after a start that failed, is safe (twice)', async () => {
    const t = setup();
    await t.receiver.shutdown();
    await t.receiver.shutdown();
    const u = setup({}, new FakeCiliumKernel());
    await expect(u.receiver.start()).rejects.toThrow(/no Cilium conntrack map/);
    await u.receiver.shutdown();
    await u.receiver.shutdown();
    expect(vi.getTimerCount()).toBe(0);
  });
});

// The conformance suite every component passes, on the fake kernel (real timers): start → a few reads →
// shutdown leaves no handles, timers or fds, and every self-metric made is declared.
const ciliumOnFakeKernel = defineReceiver({
  ...ciliumReceiverFactory,
  create: (settings, config, next) => {
    const kernel = new FakeCiliumKernel().pinAll();
    kernel.set(TCP4, [split(kernel, conn(40000), 1500)]);
    return new CiliumReceiver(settings, config, next, kernel);
  },
});
describeConformance(ciliumOnFakeKernel, { config: { read_interval: '100ms' }, runMs: 350, expectItems: 3 });

describe('cilium receiver: require_counters (auto mode)', () => {
  fakeClock();

  it("refuses to start when every connection's counters are 0 (Cilium's accounting off), and starts when one counts", async () => {
    const off = new FakeCiliumKernel().pinAll();
    off.set(TCP4, [split(off, conn(1), 0), split(off, conn(2), 0)]);
    const t = setup({ require_counters: true }, off);
    await expect(t.start()).rejects.toThrow(
      "cilium receiver: the 2 connections in Cilium's conntrack maps all have zero counters: Cilium's conntrack accounting is off",
    );
    // A mode named cilium (require_counters false) starts, and says so.
    const named = setup({}, off);
    await named.start();
    await named.receiver.shutdown();

    const on = new FakeCiliumKernel().pinAll();
    on.set(TCP4, [split(on, conn(1), 0), split(on, conn(2), 300)]);
    const counting = setup({ require_counters: true }, on);
    await counting.start();
    await counting.receiver.shutdown();
  });
});
