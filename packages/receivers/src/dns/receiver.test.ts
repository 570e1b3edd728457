import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type ComponentSettings,
  type ComponentState,
  type DnsBatch,
  defineReceiver,
  parseIp,
  StatusBoard,
} from '@netmon/core';
import {
  CollectingSink,
  describeConformance,
  recordingLogger,
  recordingMeter,
  testSettings,
} from '@netmon/core/testkit';
import { createDnsCache, type DnsCache, dnsCacheConfig } from '@netmon/extensions';
import type { CgroupDnsRead } from '@netmon/native';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  CAP,
  capMask,
  MOUNTINFO_PRIVATE_NS_ONLY,
  MOUNTINFO_V1_ONLY,
  mountinfoWithCgroup2,
  procStatus,
} from '../ebpf/testdata/proc.js';
import { dnsReceiverConfig } from './config.js';
import { dnsReceiverFactory } from './factory.js';
import { DnsReceiver } from './receiver.js';
import { type DrainStep, dnsRead, FakeKernel } from './testdata/fake-kernel.js';
import {
  type AnswerInit,
  answer,
  query,
  RA,
  RD,
  type RecordInit,
  record,
  stream,
  TC,
  TCP,
  TCP_ACK,
  TCP_SYN,
} from './testdata/records.js';
import { DnsTracker } from './tracker.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');
const CLIENT = '10.0.0.5';
const SERVER = '10.96.0.10';
const MIB = 1024 * 1024;

/** The cgroup2 "mount" of each test: a temp folder, so the pod lookups walk it and never the host's. */
let cgroupRoot: string;

/** A receiver on a fake kernel whose cgroup2 mount is `cgroupRoot`, with a status board, a log and a meter. */
function setup(config: Record<string, unknown> = {}, kernel = new FakeKernel(), cache?: DnsCache) {
  if (!kernel.files.has('/proc/self/mountinfo')) {
    kernel.files.set('/proc/self/mountinfo', mountinfoWithCgroup2(cgroupRoot));
  }
  const { logger, logs } = recordingLogger();
  const meter = recordingMeter();
  const board = new StatusBoard();
  const settings: ComponentSettings = {
    ...testSettings('receiver', 'dns/node', { board, signals: ['dns'] }),
    logger,
    meter: meter.meter,
  };
  const state: ComponentState = board.all()[0];
  // What the service does before start().
  board.set(state, 'starting');
  const sink = new CollectingSink<DnsBatch>();
  const receiver = new DnsReceiver(settings, dnsReceiverConfig.parse(config), sink, cache, kernel);
  /** A self-metric's current value (undefined once unregistered), checked to be of `kind`. */
  const metric = (
    name: string,
    attributes?: Record<string, string>,
    kind?: 'counter' | 'gauge',
  ): number | undefined => {
    if (kind) expect(meter.kind(name)).toBe(kind);
    return meter.value(name, attributes);
  };
  return {
    receiver,
    kernel,
    sink,
    state,
    logs,
    metric,
    logged: (level: string) => logs.filter((l) => l.level === level),
    /** Drain times relative to T0. */
    readTimes: () => kernel.readTimes(T0),
    answer: (...steps: DrainStep[]) => kernel.answer(...steps),
    details: () => state.details?.() as Record<string, unknown>,
    /** Every row handed on so far, as plain data. */
    lookups: () => sink.batches.flatMap((b) => Array.from({ length: b.length }, (_, i) => b.lookup(i))),
  };
}

type Setup = ReturnType<typeof setup>;

/** A record of the client's socket at wall time T0 + `ms` on `t`'s kernel clock. */
function rec(t: Setup, ms: number, egress: boolean, payload: Uint8Array, over: Partial<RecordInit> = {}) {
  return record({
    ktimeNs: t.kernel.ktimeAt(T0 + ms),
    local: CLIENT,
    remote: SERVER,
    localPort: 40000,
    egress,
    payload,
    ...over,
  });
}
const sent = (t: Setup, ms: number, id: number, name: string, over: Partial<RecordInit> = {}) =>
  rec(t, ms, true, query({ id, name }), over);
const got = (t: Setup, ms: number, a: AnswerInit, over: Partial<RecordInit> = {}) =>
  rec(t, ms, false, answer(a), over);
/**
 * A lookup: its query 1 ms before `ms` and its answer at `ms`. An answer whose query was not seen is a
 * lookup only in the receiver's first query_timeout (5 s); later ones are skipped as unsolicited.
 */
const asked = (t: Setup, ms: number, a: AnswerInit) => [sent(t, ms - 1, a.id, a.name), got(t, ms, a)];

const SHOP: AnswerInit = {
  id: 0x4100,
  name: 'www.shop.example',
  answers: [
    { name: 'www.shop.example', type: 'CNAME', ttl: 300, target: 'e1234.a.akamaiedge.net' },
    { name: 'e1234.a.akamaiedge.net', type: 'A', ttl: 20, ip: '23.45.67.89' },
  ],
};

/** Advances the fake clock by `ms`, running due timers and the promise work they start. */
const tick = (ms: number) => vi.advanceTimersByTimeAsync(ms);

function deferred<T>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

function bytes(ip: string): Uint8Array {
  const b = new Uint8Array(16);
  if (parseIp(ip, b, 0) === 0) throw new Error(`not an address: ${ip}`);
  return b;
}

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
    cgroupRoot = mkdtempSync(join(tmpdir(), 'netmon-dns-receiver-'));
  });
  afterEach(() => {
    vi.useRealTimers();
    vi.restoreAllMocks();
    rmSync(cgroupRoot, { recursive: true, force: true });
  });
}

const NO_CAPS =
  'dns receiver: loading and attaching eBPF programs needs CAP_BPF and CAP_NET_ADMIN (or CAP_SYS_ADMIN). ' +
  'Run netmon as root, or grant them (Kubernetes: securityContext.capabilities.add: [BPF, NET_ADMIN]); ' +
  'or set optional: true to run without DNS (flows are still counted, without domain names)';

describe('dns receiver: start', () => {
  fakeClock();

  it("attaches to the cgroup2 hierarchy's root from mountinfo with the ring size and capture length, and says so once", () => {
    const t = setup({ ring_buffer_size: '4MiB', capture_bytes: 512, read_interval: '250ms' });
    t.receiver.start();
    expect(t.kernel.attached).toEqual([{ cgroupPath: cgroupRoot, ringBytes: 4 * MIB, captureBytes: 512 }]);
    expect(t.logged('info')).toEqual([
      {
        level: 'info',
        msg: `tracing the DNS lookups of the sockets under ${cgroupRoot} with eBPF (UDP and TCP port 53)`,
        fields: { cgroup: cgroupRoot, read_interval_ms: 250, ring_buffer_bytes: 4 * MIB, capture_bytes: 512 },
      },
    ]);
    expect(t.details()).toEqual({
      tracing: true,
      cgroup: cgroupRoot,
      ring_buffer_bytes: 4 * MIB,
      lookups: 0,
      lost_packets: 0,
      pending_queries: 0,
      cache: 'none configured: flows get no dst.domain',
    });
    // One timer: the first read.
    expect(vi.getTimerCount()).toBe(1);
  });

  it('attaches to cgroup_path when set, whether or not mountinfo shows a cgroup2 mount', () => {
    const sub = join(cgroupRoot, 'kubepods.slice');
    mkdirSync(sub);
    for (const mountinfo of [MOUNTINFO_V1_ONLY, mountinfoWithCgroup2(cgroupRoot)]) {
      const kernel = new FakeKernel();
      kernel.files.set('/proc/self/mountinfo', mountinfo);
      const t = setup({ cgroup_path: sub }, kernel);
      t.receiver.start();
      expect(kernel.attached).toEqual([{ cgroupPath: sub, ringBytes: MIB, captureBytes: 1500 }]);
      expect(t.details().cgroup).toBe(sub);
    }
  });

  it('refuses to start without CAP_BPF and CAP_NET_ADMIN (or CAP_SYS_ADMIN), saying how to grant them or to set optional', () => {
    const t = setup();
    t.kernel.files.set('/proc/self/status', procStatus(capMask(CAP.NET_ADMIN, CAP.PERFMON)));
    expect(() => t.receiver.start()).toThrow(NO_CAPS);
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

  it("refuses a container's own cgroup (a private cgroup namespace) and a host without cgroup2, saying what to mount", () => {
    const own = new FakeKernel();
    own.files.set('/proc/self/mountinfo', MOUNTINFO_PRIVATE_NS_ONLY);
    own.present.add('/sys/fs/cgroup/cgroup.type');
    expect(() => setup({}, own).receiver.start()).toThrow(
      /^dns receiver: the cgroup2 mount at \/sys\/fs\/cgroup is not the hierarchy's root but a cgroup below it .* set cgroup_path to it$/,
    );
    const none = new FakeKernel();
    none.files.set('/proc/self/mountinfo', MOUNTINFO_V1_ONLY);
    expect(() => setup({}, none).receiver.start()).toThrow(
      'dns receiver: no cgroup2 filesystem is mounted (none in /proc/self/mountinfo): mount one (mount -t cgroup2 none /sys/fs/cgroup) or set cgroup_path to a cgroup2 directory',
    );
    expect([own.attached, none.attached]).toEqual([[], []]);
  });

  it('wraps an attach error with the cgroup it tried', () => {
    const t = setup();
    t.kernel.attachError = new Error('cannot load the DNS tracer: Operation not permitted');
    expect(() => t.receiver.start()).toThrow(
      `dns receiver: cannot attach to the cgroup ${cgroupRoot}: cannot load the DNS tracer: Operation not permitted`,
    );
    expect(vi.getTimerCount()).toBe(0);
  });

  it('optional: true runs without tracing when it cannot: one warning with the reason, /status says so, no timer, no reads', async () => {
    for (const cause of ['caps', 'attach'] as const) {
      const t = setup({ optional: true });
      if (cause === 'caps') t.kernel.files.set('/proc/self/status', procStatus(capMask(CAP.NET_ADMIN)));
      else t.kernel.attachError = new Error('kernel 5.4 has no BPF ring buffer');
      expect(() => t.receiver.start()).not.toThrow();
      const reason =
        cause === 'caps'
          ? NO_CAPS
          : `dns receiver: cannot attach to the cgroup ${cgroupRoot}: kernel 5.4 has no BPF ring buffer`;
      expect(t.logged('warn')).toEqual([
        {
          level: 'warn',
          msg: 'DNS lookups are not traced on this host (optional: true): flows get no domain names',
          fields: { reason },
        },
      ]);
      expect(t.details()).toEqual({ tracing: false, reason });
      expect(vi.getTimerCount()).toBe(0);
      await tick(10_000);
      expect(t.kernel.handle?.reads ?? []).toEqual([]);
      expect(t.sink.batches).toEqual([]);
      await t.receiver.shutdown();
      expect(vi.getTimerCount()).toBe(0);
    }
  });
});

describe('dns receiver: reads', () => {
  fakeClock();

  it('drains every read_interval with a 4 MiB budget, the first one an interval after start; a drain with no lookup hands nothing on', async () => {
    const t = setup({ read_interval: '2s' });
    t.receiver.start();
    t.answer(dnsRead([sent(t, 100, 1, 'a.example')]), dnsRead([got(t, 2100, { id: 1, name: 'a.example' })]));
    await tick(1999);
    expect(t.readTimes()).toEqual([]);
    await tick(4001);
    expect(t.readTimes()).toEqual([2000, 4000, 6000]);
    expect(t.kernel.handle?.reads.map((r) => r.maxBytes)).toEqual([4 * MIB, 4 * MIB, 4 * MIB]);
    // The query alone makes no row; the answer's read hands on one batch.
    expect(t.sink.batches).toHaveLength(1);
    expect(t.lookups()).toEqual([
      {
        time: T0 + 2100,
        clientIp: CLIENT,
        clientPort: 40000,
        serverIp: SERVER,
        protocol: 17,
        question: 'a.example',
        questionType: 1,
        latencyMs: 2000,
        cgroupId: 4242,
        answers: [],
      },
    ]);
    expect(t.state.status).toBe('ok');
    await t.receiver.shutdown();
  });

  it('chains drains while the ring holds more, in one read that hands on one batch', async () => {
    const t = setup({ read_interval: '2s' });
    t.receiver.start();
    t.answer(
      dnsRead([sent(t, 100, 1, 'www.shop.example'), sent(t, 101, 2, 'x.example')], { more: true }),
      dnsRead([got(t, 120, { ...SHOP, id: 1 })], { more: true }),
      dnsRead([got(t, 130, { id: 2, name: 'x.example', rcode: 3 })]),
      dnsRead([got(t, 2500, { ...SHOP, id: 9 })]),
    );
    await tick(2000);
    expect(t.readTimes()).toEqual([2000, 2000, 2000]);
    expect(t.sink.batches.map((b) => b.length)).toEqual([2]);
    expect(t.lookups().map((l) => [l.question, l.rcode, l.latencyMs])).toEqual([
      ['www.shop.example', undefined, 20],
      ['x.example', 3, 29],
    ]);
    await tick(2000);
    expect(t.readTimes()).toEqual([2000, 2000, 2000, 4000]);
    expect(t.sink.batches.map((b) => b.length)).toEqual([2, 1]);
    await t.receiver.shutdown();
  });

  it('chains at most 8 drains per read; while the ring still holds more, the next read follows at once', async () => {
    const t = setup({ read_interval: '1s' });
    let n = 0;
    // Twelve drains find more behind them until the twelfth.
    t.kernel.fallback = () => dnsRead([got(t, 10, { ...SHOP, id: ++n })], { more: n < 12 });
    t.receiver.start();
    await tick(1000);
    expect(t.readTimes()).toEqual(Array(8).fill(1000));
    // A zero delay is a timer's minimum, 1 ms.
    await tick(1);
    expect(t.readTimes()).toEqual([...Array(8).fill(1000), ...Array(4).fill(1001)]);
    expect(t.sink.batches.map((b) => b.length)).toEqual([8, 4]);
    await tick(999);
    expect(t.readTimes()).toHaveLength(12);
    await tick(1);
    expect(t.readTimes()).toHaveLength(13);
    expect(t.metric('netmon_dns_reads')).toBe(13);
    t.kernel.fallback = () => dnsRead();
    await t.receiver.shutdown();
  });

  it('a failed read reports recoverable_error, is retried after 250 ms, doubling, and ok returns with a good read', async () => {
    const t = setup({ read_interval: '5s' });
    const efault = () => new Error('ring buffer consume: Bad address');
    t.answer(dnsRead([got(t, 1, SHOP)]), efault(), efault(), efault(), dnsRead(asked(t, 6000, SHOP)));
    t.receiver.start();
    await tick(5000);
    expect(t.state.status).toBe('ok');
    await tick(5000);
    expect(t.state.status).toBe('recoverable_error');
    expect(t.state.lastError).toBe('DNS ring buffer read failed: ring buffer consume: Bad address');
    await tick(1750);
    expect(t.readTimes()).toEqual([5000, 10_000, 10_250, 10_750, 11_750]);
    expect(t.state.status).toBe('ok');
    expect(t.metric('netmon_dns_read_failures', undefined, 'counter')).toBe(3);
    expect(t.metric('netmon_dns_reads', undefined, 'counter')).toBe(2);
    expect(t.logged('error').map((l) => [l.msg, l.fields])).toEqual(
      [1, 2, 3].map((n) => [
        'DNS ring buffer read failed: ring buffer consume: Bad address',
        { err: 'ring buffer consume: Bad address', failed_in_a_row: n },
      ]),
    );
    expect(t.sink.batches.map((b) => b.length)).toEqual([1, 1]);
    // Back to the interval, counted from the good read.
    await tick(5000);
    expect(t.readTimes().at(-1)).toBe(16_750);
    expect(t.kernel.handle?.refused).toEqual([]);
    await t.receiver.shutdown();
  });

  it('a read that keeps failing is retried while the backoff is below read_interval, then at the interval', async () => {
    const t = setup({ read_interval: '5s' });
    t.kernel.fallback = () => new Error('EBADF');
    t.receiver.start();
    await tick(22_750);
    expect(t.readTimes()).toEqual([5000, 5250, 5750, 6750, 8750, 12_750, 17_750, 22_750]);
    expect(t.state.status).toBe('recoverable_error');
    expect(t.metric('netmon_dns_read_failures')).toBe(8);
    expect(t.metric('netmon_dns_reads')).toBe(0);
    t.kernel.fallback = () => dnsRead();
    await t.receiver.shutdown();
  });

  it('a drain failing after a good one in the same read hands on what was read, and reports the failure', async () => {
    const t = setup({ read_interval: '5s' });
    t.answer(dnsRead([got(t, 1, SHOP)], { more: true }), new Error('EINTR'), dnsRead());
    t.receiver.start();
    await tick(5000);
    expect(t.sink.batches.map((b) => b.length)).toEqual([1]);
    expect(t.state.status).toBe('recoverable_error');
    expect([t.metric('netmon_dns_reads'), t.metric('netmon_dns_read_failures')]).toEqual([1, 1]);
    await tick(250);
    expect(t.readTimes()).toEqual([5000, 5000, 5250]);
    expect(t.state.status).toBe('ok');
    await t.receiver.shutdown();
  });

  it('records the tracker cannot decode (a defect, not bad input) are a failed read: reported, counted, logged with their number', async () => {
    const t = setup({ read_interval: '5s' });
    vi.spyOn(DnsTracker.prototype, 'add').mockImplementationOnce(() => {
      throw new TypeError('offset is outside the bounds of the DataView');
    });
    t.answer(dnsRead([got(t, 1, SHOP), got(t, 2, SHOP)]), dnsRead(asked(t, 6000, SHOP)));
    t.receiver.start();
    await tick(5000);
    expect(t.state.status).toBe('recoverable_error');
    expect(t.state.lastError).toBe(
      'DNS records could not be decoded: offset is outside the bounds of the DataView',
    );
    expect(t.logged('error').map((l) => [l.msg, l.fields])).toEqual([
      ['DNS records lost', { err: 'offset is outside the bounds of the DataView', records: 2 }],
    ]);
    expect([t.metric('netmon_dns_reads'), t.metric('netmon_dns_read_failures')]).toEqual([1, 1]);
    expect(t.sink.batches).toEqual([]);
    // No quick retry: the kernel side is fine.
    await tick(5000);
    expect(t.readTimes()).toEqual([5000, 10_000]);
    expect(t.sink.batches.map((b) => b.length)).toEqual([1]);
    expect(t.state.status).toBe('ok');
    await t.receiver.shutdown();
  });

  it('a sink that throws is a failed read, reported and counted, never an unhandled rejection; shutdown still closes the tracer', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (err: unknown) => unhandled.push(err);
    process.on('unhandledRejection', onUnhandled);
    try {
      const t = setup({ read_interval: '5s' });
      vi.spyOn(t.sink, 'consume').mockImplementation(() => {
        throw new Error('the queue is gone');
      });
      t.answer(dnsRead([got(t, 1, SHOP)]), dnsRead([got(t, 5001, SHOP)]));
      t.receiver.start();
      await tick(5000);
      expect(t.state.status).toBe('recoverable_error');
      expect(t.metric('netmon_dns_read_failures')).toBe(1);
      await tick(5000);
      expect(t.readTimes()).toEqual([5000, 10_000]);
      t.answer(dnsRead([got(t, 10_001, SHOP)]));
      await t.receiver.shutdown().catch(() => {});
      expect(t.kernel.handle?.closed).toBe(true);
      await tick(0);
      await new Promise((r) => process.nextTick(r));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it('a TCP hole that outwaits REORDER_NS is a gap found after a read that emptied the ring: the messages past it are handed on then, never while the ring still holds more', async () => {
    const t = setup({ read_interval: '1s' });
    const two = answer({ id: 2, name: 'two.example' });
    const s = stream(answer(SHOP), two);
    const isn = 5000;
    const tcp = (ms: number, bytes: Uint8Array, seq: number, flags: number) =>
      rec(t, ms, false, bytes, { protocol: TCP, tcpSeq: seq, tcpFlags: flags });
    const first = stream(answer(SHOP)).length;
    t.answer(
      // [30, 40) never comes; the first message's length was seen.
      dnsRead([
        tcp(100, new Uint8Array(0), isn, TCP_SYN | TCP_ACK),
        tcp(101, s.subarray(0, 30), isn + 1, TCP_ACK),
        tcp(102, s.subarray(40), isn + 41, TCP_ACK),
      ]),
    );
    t.receiver.start();
    await tick(1000);
    expect(t.sink.batches).toEqual([]);
    // The read at 2 s: eight drains, each with more behind it (nothing in them): the hole is judged by the
    // newest record read (102 ms), not by the clock.
    let drains = 0;
    t.kernel.fallback = () => dnsRead([], { more: ++drains <= 8 });
    await tick(1000);
    expect(drains).toBe(8);
    expect(t.sink.batches).toEqual([]);
    expect(t.receiver.counters.malformed).toEqual({});
    // The next read, at once, empties the ring: the hole is a gap, the second answer is read.
    await tick(1);
    expect(drains).toBe(9);
    expect(t.lookups().map((l) => [l.question, l.time])).toEqual([['two.example', T0 + 102]]);
    expect(t.receiver.counters.malformed).toEqual({ tcp_gap: 1 });
    expect(first).toBeGreaterThan(40);
    t.kernel.fallback = () => dnsRead();
    await t.receiver.shutdown();
  });

  it("names the client's pod from its cgroup under the attach point", async () => {
    const uid = '0f6b2c1e-6a1d-4f1e-9a52-3c7f0c1d2e3a';
    const pod = join(
      'kubepods.slice',
      'kubepods-burstable.slice',
      `kubepods-burstable-pod${uid.replaceAll('-', '_')}.slice`,
      'cri-containerd-aaaa.scope',
    );
    mkdirSync(join(cgroupRoot, pod), { recursive: true });
    mkdirSync(join(cgroupRoot, 'system.slice'));
    const idOf = (p: string) => Number(statSync(join(cgroupRoot, p), { bigint: true }).ino);
    const t = setup();
    t.answer(
      dnsRead([
        got(t, 1, { ...SHOP, id: 1 }, { cgroupId: idOf(pod) }),
        got(t, 2, { ...SHOP, id: 2 }, { cgroupId: idOf('system.slice') }),
      ]),
    );
    t.receiver.start();
    await tick(1000);
    expect(t.lookups().map((l) => [l.cgroupId, l.podUid])).toEqual([
      [idOf(pod), uid],
      [idOf('system.slice'), undefined],
    ]);
    await t.receiver.shutdown();
  });
});

describe('dns receiver: the dns_cache extension', () => {
  fakeClock();

  it('teaches the cache each batch before handing it on, and says so in /status', async () => {
    const order: string[] = [];
    const learned: DnsBatch[] = [];
    const cache: DnsCache = {
      learn: (b) => {
        order.push('learn');
        learned.push(b);
      },
      domainOf: () => undefined,
    };
    const t = setup({}, new FakeKernel(), cache);
    const consume = t.sink.consume.bind(t.sink);
    vi.spyOn(t.sink, 'consume').mockImplementation((b) => {
      order.push('consume');
      consume(b);
    });
    t.answer(dnsRead([got(t, 1, SHOP)]), dnsRead(), dnsRead([got(t, 2001, { ...SHOP, id: 2 })]));
    t.receiver.start();
    expect(t.details().cache).toBe('feeding the dns_cache extension');
    await tick(3000);
    expect(order).toEqual(['learn', 'consume', 'learn', 'consume']);
    expect(learned).toEqual(t.sink.batches);
    expect(learned[0]).toBe(t.sink.batches[0]);
    await t.receiver.shutdown();
  });

  it('a cache that throws is logged; the batch still goes on and the read is good', async () => {
    const cache: DnsCache = {
      learn: () => {
        throw new Error('out of memory');
      },
      domainOf: () => undefined,
    };
    const t = setup({}, new FakeKernel(), cache);
    t.answer(dnsRead([got(t, 1, SHOP)]));
    t.receiver.start();
    await tick(1000);
    expect(t.sink.batches.map((b) => b.length)).toEqual([1]);
    expect(t.logged('error').map((l) => [l.msg, l.fields])).toEqual([
      ['the dns_cache extension could not learn a batch', { err: 'out of memory' }],
    ]);
    expect(t.state.status).toBe('ok');
    await t.receiver.shutdown();
  });

  it('with the real extension: the answered address is named by its question and canonical name, for the client that asked', async () => {
    const cacheSettings = testSettings('extension', 'dns_cache');
    const cache = createDnsCache(cacheSettings, dnsCacheConfig.parse({}));
    const t = setup({}, new FakeKernel(), cache);
    t.answer(dnsRead([sent(t, 1, SHOP.id, SHOP.name), got(t, 3, SHOP)]));
    t.receiver.start();
    await tick(1000);
    expect(cache.domainOf(bytes('23.45.67.89'), 0, bytes(CLIENT), 0)).toEqual({
      name: 'www.shop.example',
      canonical: 'e1234.a.akamaiedge.net',
    });
    expect(cache.domainOf(bytes('23.45.67.90'), 0)).toBeUndefined();
    await t.receiver.shutdown();
    cache.shutdown?.();
  });

  it('an answer no query was seen for teaches the cache in the first query_timeout only: later it is unsolicited, skipped and counted', async () => {
    const cacheSettings = testSettings('extension', 'dns_cache');
    const cache = createDnsCache(cacheSettings, dnsCacheConfig.parse({}));
    const t = setup({ query_timeout: '5s' }, new FakeKernel(), cache);
    // A "server" on port 53 sends the client answers it never asked for: one naming an address shop's,
    // one giving shop's own address another name.
    const spoof = (id: number, name: string, ip: string): AnswerInit => ({
      id,
      name,
      answers: [{ name, type: 'A', ttl: 300, ip }],
    });
    t.answer(
      // In the first 5 s: perhaps the answer to a query sent before the start, so a lookup, and learned.
      dnsRead([got(t, 4999, spoof(0x0bad, 'early.example', '192.0.2.10'))]),
      dnsRead([
        got(t, 5000, spoof(0x0bad + 1, 'evil.example', '192.0.2.11')),
        got(t, 6500, spoof(0x0bad + 2, 'evil.example', '23.45.67.89')),
        ...asked(t, 7000, SHOP),
        got(t, 7001, spoof(0x0bad + 3, 'evil.example', '23.45.67.89'), { remote: '198.51.100.53' }),
      ]),
    );
    // Read at 1 s and 2 s: what counts is when the answers came (the records' kernel time).
    t.receiver.start();
    await tick(2000);
    expect(cache.domainOf(bytes('192.0.2.10'), 0)?.name).toBe('early.example');
    // After the first 5 s only the lookup whose query was seen is handed on and learned.
    expect(t.lookups().map((l) => [l.question, l.latencyMs])).toEqual([
      ['early.example', undefined],
      ['www.shop.example', 1],
    ]);
    expect(cache.domainOf(bytes('192.0.2.11'), 0)).toBeUndefined();
    expect(cache.domainOf(bytes('23.45.67.89'), 0)?.name).toBe('www.shop.example');
    expect(cache.domainOf(bytes('23.45.67.89'), 0, bytes(CLIENT), 0)?.name).toBe('www.shop.example');
    expect(t.metric('netmon_dns_skipped_messages', { reason: 'unsolicited' })).toBe(3);
    expect(t.metric('netmon_dns_unmatched_answers')).toBe(1);
    expect(t.receiver.counters).toMatchObject({ lookups: 2, unmatched: 1, skipped: { unsolicited: 3 } });
    await t.receiver.shutdown();
    cache.shutdown?.();
  });
});

describe('dns receiver: losses and self-metrics', () => {
  fakeClock();

  it('warns once per growth of the lost packets, with ring_buffer_size advice; the metrics are the addon totals', async () => {
    const t = setup({ ring_buffer_size: '64KiB' });
    let id = 0;
    const one = () => [got(t, 0, { ...SHOP, id: ++id })];
    t.answer(
      dnsRead(one(), { lost: 0, lostBytes: 0 }),
      dnsRead(one(), { lost: 120, lostBytes: 9600 }),
      dnsRead(one(), { lost: 120, lostBytes: 9600 }),
      dnsRead(one(), { lost: 300, lostBytes: 24_000 }),
      dnsRead(one(), { lost: 300, lostBytes: 24_000 }),
    );
    t.receiver.start();
    const warned: number[] = [];
    const lost: (number | undefined)[][] = [];
    for (let i = 0; i < 5; i++) {
      await tick(1000);
      warned.push(t.logged('warn').length);
      lost.push([
        t.metric('netmon_dns_lost_packets', undefined, 'counter'),
        t.metric('netmon_dns_lost_bytes', undefined, 'counter'),
      ]);
    }
    expect(warned).toEqual([0, 1, 1, 2, 2]);
    expect(lost).toEqual([
      [0, 0],
      [120, 9600],
      [120, 9600],
      [300, 24_000],
      [300, 24_000],
    ]);
    expect(t.logged('warn')).toEqual(
      [120, 300].map((p) => ({
        level: 'warn',
        msg: 'the DNS ring buffer was full: DNS packets were not traced. Raise ring_buffer_size or shorten read_interval',
        fields: { lost_packets: p, ring_buffer_bytes: 65_536 },
      })),
    );
    expect(t.details().lost_packets).toBe(300);
    // The lookups that fit still go on.
    expect(t.sink.batches.map((b) => b.length)).toEqual([1, 1, 1, 1, 1]);
    await t.receiver.shutdown();
  });

  it('every self-metric, by direction and reason, with the counters and /status agreeing', async () => {
    const t = setup({ query_timeout: '5s' });
    const short = rec(t, 5, false, Uint8Array.of(0x41, 0x00, 0x81, 0x80));
    t.answer(
      dnsRead(
        [
          sent(t, 100, 1, 'www.shop.example'),
          got(t, 110, { ...SHOP, id: 1 }),
          // A UDP answer with the TC bit, one whose query was not seen, one too short to be DNS.
          got(t, 111, { id: 2, name: 'big.example', flags: RD | RA | TC }),
          got(t, 112, { id: 3, name: 'nope.example', rcode: 3 }),
          short,
          // Never answered.
          sent(t, 200, 4, 'lost.example'),
          // An answer leaving: the socket is a server's.
          rec(t, 300, true, answer({ id: 5, name: 'served.example' })),
        ],
        { malformed: 2, durationMs: 12 },
      ),
    );
    t.receiver.start();
    await tick(1000);
    const m = (name: string, attributes?: Record<string, string>, kind?: 'counter' | 'gauge') =>
      t.metric(`netmon_dns_${name}`, attributes, kind);
    expect({
      reads: m('reads', undefined, 'counter'),
      readFailures: m('read_failures', undefined, 'counter'),
      readDuration: m('read_duration', undefined, 'gauge'),
      queryPackets: m('packets', { direction: 'query' }, 'counter'),
      answerPackets: m('packets', { direction: 'answer' }),
      shortHeader: m('malformed_messages', { reason: 'short_header' }, 'counter'),
      unreadable: m('malformed_messages', { reason: 'unreadable' }),
      truncated: m('skipped_messages', { reason: 'truncated' }, 'counter'),
      direction: m('skipped_messages', { reason: 'direction' }),
      lookups: m('lookups_read', undefined, 'counter'),
      unmatched: m('unmatched_answers', undefined, 'counter'),
      unanswered: m('unanswered_queries', undefined, 'counter'),
      pending: m('pending_queries', undefined, 'gauge'),
    }).toEqual({
      reads: 1,
      readFailures: 0,
      readDuration: 0.012,
      queryPackets: 3,
      answerPackets: 4,
      shortHeader: 1,
      unreadable: 2,
      truncated: 1,
      direction: 1,
      lookups: 2,
      unmatched: 1,
      unanswered: 0,
      pending: 1,
    });
    expect(t.receiver.counters).toEqual({
      reads: 1,
      readFailures: 0,
      queryPackets: 3,
      answerPackets: 4,
      lostPackets: 0,
      lostBytes: 0,
      lookups: 2,
      unmatched: 1,
      unanswered: 0,
      pending: 1,
      malformed: { short_header: 1, unreadable: 2 },
      skipped: { truncated: 1, direction: 1 },
    });
    expect(t.details()).toMatchObject({ lookups: 2, pending_queries: 1, lost_packets: 0 });
    // The query of T0 + 200 ms has waited query_timeout by the read at 5200 ms or after: the read at 6 s.
    await tick(4000);
    expect([m('unanswered_queries'), m('pending_queries')]).toEqual([0, 1]);
    await tick(1000);
    expect([m('unanswered_queries'), m('pending_queries')]).toEqual([1, 0]);
    expect(m('reads')).toBe(6);
    await t.receiver.shutdown();
  });

  it('records the addon rejected as the wrong size are counted as malformed{reason="bad_record"}, summed over reads, and warned about once', async () => {
    const t = setup();
    t.answer(
      dnsRead([got(t, 1, SHOP)], { badRecords: 2 }),
      dnsRead([got(t, 1001, { ...SHOP, id: 2 })]),
      dnsRead([], { badRecords: 1 }),
    );
    t.receiver.start();
    await tick(1000);
    expect(t.metric('netmon_dns_malformed_messages', { reason: 'bad_record' }, 'counter')).toBe(2);
    await tick(2000);
    // The addon reports each read's own rejects: the receiver keeps the total.
    expect(t.metric('netmon_dns_malformed_messages', { reason: 'bad_record' })).toBe(3);
    expect(t.receiver.counters.malformed).toEqual({ bad_record: 3 });
    expect(t.logged('warn').map((l) => [l.msg, l.fields])).toEqual([
      [
        'DNS tracer records of an impossible size were skipped: the BPF program and the addon are not from one build',
        { bad_records: 2 },
      ],
    ]);
    // The good records of those reads still count.
    expect(t.sink.batches.map((b) => b.length)).toEqual([1, 1]);
    await t.receiver.shutdown();
  });

  it('every metric it makes is declared', async () => {
    const meter = recordingMeter();
    const settings = { ...testSettings('receiver', 'dns', { signals: ['dns'] }), meter: meter.meter };
    const r = new DnsReceiver(
      settings,
      dnsReceiverConfig.parse({}),
      new CollectingSink(),
      undefined,
      new FakeKernel(),
    );
    const declared = Object.values(dnsReceiverFactory.metrics ?? {}).map((d) => d.name);
    expect(meter.names().sort()).toEqual([...declared].sort());
    await r.shutdown();
  });
});

describe('dns receiver: shutdown', () => {
  fakeClock();

  it('reads a last time, hands those lookups on, closes the tracer and leaves no timers', async () => {
    const t = setup({ read_interval: '5s' });
    t.receiver.start();
    await tick(5000);
    await tick(1234);
    t.answer(dnsRead(asked(t, 6000, SHOP)));
    await t.receiver.shutdown();
    expect(t.readTimes()).toEqual([5000, 6234]);
    expect(t.lookups().map((l) => l.time)).toEqual([T0 + 6000]);
    expect(t.kernel.handle?.closed).toBe(true);
    expect(t.kernel.handle?.closedWhileBusy).toBe(false);
    expect(vi.getTimerCount()).toBe(0);
    // The self-metric callbacks are gone too; a second shutdown reads nothing more.
    expect(t.metric('netmon_dns_reads')).toBeUndefined();
    await t.receiver.shutdown();
    await tick(20_000);
    expect(t.readTimes()).toHaveLength(2);
  });

  it('waits for a read in flight before the last one, and never runs two at once', async () => {
    const t = setup({ read_interval: '5s' });
    const slow = deferred<CgroupDnsRead>();
    t.answer(slow.promise, dnsRead(asked(t, 5050, { ...SHOP, id: 2 })));
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
    slow.resolve(dnsRead(asked(t, 5010, { ...SHOP, id: 1 })));
    await stopping;
    expect(t.readTimes()).toEqual([5000, 5100]);
    expect(t.lookups().map((l) => l.time)).toEqual([T0 + 5010, T0 + 5050]);
    expect(t.kernel.handle?.refused).toEqual([]);
    expect(t.kernel.handle?.closed).toBe(true);
    expect(t.kernel.handle?.closedWhileBusy).toBe(false);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('while a retry is pending: cancels it and still reads a last time', async () => {
    const t = setup({ read_interval: '5s' });
    t.answer(new Error('boom'), dnsRead(asked(t, 5100, SHOP)));
    t.receiver.start();
    await tick(5100);
    await t.receiver.shutdown();
    expect(t.readTimes()).toEqual([5000, 5100]);
    expect(t.sink.batches).toHaveLength(1);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('without start, or after a start that failed, is safe (twice)', async () => {
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
const conformanceRoot = mkdtempSync(join(tmpdir(), 'netmon-dns-conformance-'));
const dnsOnFakeKernel = defineReceiver({
  ...dnsReceiverFactory,
  create: (settings, config, next) => {
    const kernel = new FakeKernel();
    kernel.files.set('/proc/self/mountinfo', mountinfoWithCgroup2(conformanceRoot));
    let id = 0;
    kernel.fallback = () =>
      dnsRead([
        record({
          ktimeNs: kernel.monotonicNs(),
          local: CLIENT,
          remote: SERVER,
          localPort: 40000,
          egress: false,
          // A new id each time: one answer again would be a duplicate, not a lookup.
          payload: answer({ ...SHOP, id: ++id }),
        }),
      ]);
    return new DnsReceiver(settings, config, next, undefined, kernel);
  },
});
describeConformance(dnsOnFakeKernel, {
  config: { read_interval: '100ms' },
  runMs: 350,
  expectItems: 3,
  cleanup: () => rmSync(conformanceRoot, { recursive: true, force: true }),
});
