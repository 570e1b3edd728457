import {
  type ComponentSettings,
  type ComponentState,
  type FlowBatch,
  FlowFlags,
  StatusBoard,
} from '@netmon/core';
import { CollectingSink, recordingLogger, recordingMeter, testSettings } from '@netmon/core/testkit';
import type { DumpResult } from '@netmon/native';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { conntrackReceiverConfig } from './config.js';
import { ConntrackReceiver } from './receiver.js';
import { dumpResult, FakeKernel, type Row } from './testdata/fake-kernel.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');
const ACCT = 'net/netfilter/nf_conntrack_acct';

/** A receiver on a fake kernel, with a status board, a recording logger and a meter that can be read. */
function setup(config: Record<string, unknown> = {}, kernel = new FakeKernel()) {
  const { logger, logs } = recordingLogger();
  const meter = recordingMeter();
  const board = new StatusBoard();
  const settings: ComponentSettings = {
    ...testSettings('receiver', 'conntrack', { board }),
    logger,
    meter: meter.meter,
  };
  const state: ComponentState = board.all()[0];
  // What the service does before start().
  board.set(state, 'starting');
  const sink = new CollectingSink<FlowBatch>();
  const receiver = new ConntrackReceiver(settings, conntrackReceiverConfig.parse(config), sink, kernel);
  /** A self-metric's current value (undefined once unregistered), checked to be of `kind`. */
  const metric = (name: string, kind?: 'counter' | 'gauge'): number | undefined => {
    if (kind) expect(meter.kind(name)).toBe(kind);
    return meter.value(name);
  };
  const warnings = (pattern: RegExp) => logs.filter((l) => l.level === 'warn' && pattern.test(l.msg)).length;
  return {
    receiver,
    kernel,
    dumper: kernel.dumper,
    events: kernel.events,
    sink,
    state,
    logs,
    metric,
    warnings,
    /**
     * Dump times relative to T0, to 100 ms: the fake clock, like Node, gives a zero-delay timer made inside
     * a timer 1 ms, so "at once" is a few ms late.
     */
    dumpTimes: () => kernel.dumper.calls.map((c) => Math.round((c.at - T0) / 100) * 100),
    snapshots: () => sink.batches.map((b) => b.snapshot),
    stop: () => settle(receiver.shutdown()),
  };
}

/** Advances the fake clock by `ms`, running due timers and the promise work they start. */
const tick = (ms: number) => vi.advanceTimersByTimeAsync(ms);

/** Runs the fake clock until `p` settles (shutdown waits on a barrier and on setImmediate). */
async function settle<T>(p: Promise<T>): Promise<T> {
  let done = false;
  p.then(
    () => {
      done = true;
    },
    () => {
      done = true;
    },
  );
  for (let i = 0; !done && i < 10_000; i++) await tick(1);
  return p;
}

function deferred<T>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

const tcp = (port: number, tx = 100, extra: Partial<Row> = {}): Row => ({
  protocol: 6,
  src: '10.0.0.1',
  srcPort: port,
  dst: '10.0.0.2',
  dstPort: 443,
  tx,
  rx: 10 * tx,
  txPackets: 1,
  rxPackets: 2,
  id: port,
  ...extra,
});

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
});
afterEach(() => {
  vi.useRealTimers();
});

describe('conntrack receiver: what it emits', () => {
  it('hands a dump on as a cumulative snapshot, src the opener, dst as dialled, the DNAT backend apart', async () => {
    const t = setup();
    t.dumper.script.push(
      dumpResult(
        [
          // A pod dialling a Service ClusterIP, DNAT'ed to a backend pod.
          {
            protocol: 6,
            src: '10.244.1.5',
            srcPort: 40000,
            dst: '10.96.0.10',
            dstPort: 443,
            replySrc: '10.244.2.7',
            replySrcPort: 8443,
            tx: 1200,
            rx: 64000,
            txPackets: 10,
            rxPackets: 50,
            id: 3735928559,
            zone: 1,
            mark: 0x4000,
            startMs: T0 - 60_000,
          },
          {
            protocol: 17,
            src: 'fd00::1',
            srcPort: 5353,
            dst: 'fd00::53',
            dstPort: 53,
            tx: 80,
            rx: 160,
            id: 7,
          },
          // ICMP echo: src port = echo id, dst port = type << 8 | code.
          {
            protocol: 1,
            src: '10.0.0.1',
            srcPort: 77,
            dst: '1.1.1.1',
            dstPort: 8 << 8,
            tx: 84,
            rx: 84,
            id: 8,
          },
        ],
        { durationMs: 12 },
      ),
    );
    t.receiver.start();
    await tick(10);
    expect(t.sink.batches).toHaveLength(1);
    const b = t.sink.batches[0];
    expect(b.snapshot).toBe(true);
    expect(b.temporality).toBe('cumulative');
    expect(b.origin).toBe('conntrack');
    const rows = [...Array(b.length).keys()].map((i) => b.row(i));
    expect(
      rows.map((r) => [
        r.family,
        r.protocol,
        r.srcIp,
        r.srcPort,
        r.dstIp,
        r.dstPort,
        r.backendIp,
        r.backendPort,
      ]),
    ).toEqual([
      [4, 6, '10.244.1.5', 40000, '10.96.0.10', 443, '10.244.2.7', 8443],
      [6, 17, 'fd00::1', 5353, 'fd00::53', 53, undefined, undefined],
      [4, 1, '10.0.0.1', 77, '1.1.1.1', 2048, undefined, undefined],
    ]);
    expect([rows[0].txBytes, rows[0].rxBytes, rows[0].txPackets, rows[0].rxPackets]).toEqual([
      1200, 64000, 10, 50,
    ]);
    expect(rows[0].flags).toBe(FlowFlags.InitiatorKnown | FlowFlags.Dnat);
    expect(rows[1].flags).toBe(FlowFlags.InitiatorKnown);
    expect(rows[0].attributes).toEqual({
      'conntrack.id': 3735928559,
      'conntrack.zone': 1,
      'conntrack.mark': 0x4000,
    });
    expect([rows[0].timeStart, rows[0].timeEnd]).toEqual([T0 - 60_000, T0]);
    expect(t.metric('netmon_conntrack_reads', 'counter')).toBe(1);
    expect(t.metric('netmon_conntrack_entries', 'gauge')).toBe(3);
    expect(t.metric('netmon_conntrack_read_duration', 'gauge')).toBe(0.012);
    expect(t.state.status).toBe('ok');
    await t.stop();
  });

  it('hands events on as they come, not as snapshots: NEW counts from zero, DESTROY is final', async () => {
    const t = setup();
    t.receiver.start();
    await tick(10);
    t.events.emit([tcp(1, 0, { event: 1 }), tcp(2, 500, { event: 2 })]);
    const b = t.sink.batches[1];
    expect(b.snapshot).toBe(false);
    expect(b.temporality).toBe('cumulative');
    expect([b.row(0).flags, b.row(1).flags]).toEqual([
      FlowFlags.InitiatorKnown | FlowFlags.Opened,
      FlowFlags.InitiatorKnown | FlowFlags.Closed,
    ]);
    expect(b.row(1).txBytes).toBe(500);
    expect(t.metric('netmon_conntrack_events', 'counter')).toBe(2);
    // A batch that only completes a barrier, with no rows, is not handed on.
    t.events.emit([], { barrier: 99 });
    expect(t.sink.batches).toHaveLength(2);
    await t.stop();
  });

  it('asks the addon only for the configured families and protocols', async () => {
    const all = setup({ netns: '/proc/1/ns/net' });
    all.receiver.start();
    await tick(10);
    expect(all.dumper.calls[0]).toMatchObject({ family: 0, protocols: null });
    expect(all.kernel.openedIn).toEqual(['/proc/1/ns/net']);
    expect(all.events.options).toEqual({
      netns: '/proc/1/ns/net',
      newEvents: true,
      receiveBuffer: 8 << 20,
      batchSize: 4096,
      flushMs: 200,
      family: 0,
      protocols: null,
    });
    await all.stop();

    const v6 = setup({ families: ['ipv6'], protocols: ['tcp', 132, 'udp'], event_buffer_size: 65536 });
    v6.receiver.start();
    await tick(10);
    expect(v6.dumper.calls[0]).toMatchObject({ family: 10, protocols: [6, 132, 17] });
    expect(v6.events.options).toMatchObject({ family: 6, protocols: [6, 132, 17], receiveBuffer: 65536 });
    await v6.stop();

    const v4 = setup({ families: ['ipv4', 'ipv4'] });
    v4.receiver.start();
    await tick(10);
    expect(v4.dumper.calls[0].family).toBe(2);
    expect(v4.events.options?.family).toBe(4);
    await v4.stop();
  });

  it('reads every read_interval, starting at once', async () => {
    const t = setup({ read_interval: '5s' });
    t.receiver.start();
    await tick(12_000);
    expect(t.dumpTimes()).toEqual([0, 5000, 10_000]);
    expect(t.snapshots()).toEqual([true, true, true]);
    await t.stop();
  });

  it('without events: no subscription, no nf_conntrack_events change, snapshots without a barrier', async () => {
    const kernel = new FakeKernel();
    kernel.sysctls.set('net/netfilter/nf_conntrack_events', '2');
    const t = setup({ events: false }, kernel);
    t.receiver.start();
    await tick(10);
    expect(t.events.subscribed).toBe(false);
    expect(kernel.sysctlWrites).toEqual([]);
    expect(t.snapshots()).toEqual([true]);
    await t.stop();
  });

  it('with events, sets nf_conntrack_events=1 so connections older than netmon report their end', async () => {
    const kernel = new FakeKernel();
    kernel.sysctls.set('net/netfilter/nf_conntrack_events', '2');
    const t = setup({}, kernel);
    t.receiver.start();
    expect(kernel.sysctlWrites).toEqual([['net/netfilter/nf_conntrack_events', '1', undefined]]);
    await t.stop();
  });

  it('warns once when the table is empty, explaining that the kernel tracks nothing without a rule', async () => {
    const t = setup({ read_interval: '1s' });
    t.receiver.start();
    await tick(3000);
    expect(t.warnings(/conntrack table of .* is empty/)).toBe(1);
    await t.stop();
  });
});

describe('conntrack receiver: the dump/event barrier', () => {
  it('passes the DESTROYs a dump queued before the snapshot that no longer lists them', async () => {
    const t = setup();
    // The dump reaps entry 2: its DESTROY is on the event socket when the dump ends.
    t.dumper.onDump = () => {
      t.events.pendingAtBarrier = [tcp(2, 700, { event: 2 })];
    };
    t.dumper.script.push(dumpResult([tcp(1)]));
    t.receiver.start();
    await tick(10);
    expect(t.events.barriers).toBe(1);
    expect(t.sink.batches.map((b) => [b.snapshot, b.length, b.srcPort[0]])).toEqual([
      [false, 1, 2],
      [true, 1, 1],
    ]);
    await t.stop();
  });

  it('hands the snapshot on after 1 s when the barrier never completes, with a warning', async () => {
    const t = setup();
    t.events.autoBarrier = false;
    t.dumper.script.push(dumpResult([tcp(1)]));
    t.receiver.start();
    await tick(999);
    expect(t.dumper.calls).toHaveLength(1);
    expect(t.sink.batches).toHaveLength(0);
    await tick(5);
    expect(t.snapshots()).toEqual([true]);
    expect(t.warnings(/did not catch up within 1 s/)).toBe(1);
    // The late marker changes nothing, and the next read is one interval after the first began.
    t.events.emit([], { barrier: 1 });
    expect(t.sink.batches).toHaveLength(1);
    await tick(4000);
    expect(t.dumpTimes()).toEqual([0, 5000]);
    t.events.autoBarrier = true;
    await t.stop();
  });

  it('waits for the barrier of its own dump, not an earlier one', async () => {
    const t = setup();
    t.events.autoBarrier = false;
    t.receiver.start();
    await tick(10);
    // An older marker (say, from before) does not release this dump's snapshot.
    t.events.emit([], { barrier: 0 });
    await tick(500);
    expect(t.sink.batches).toHaveLength(0);
    t.events.emit([], { barrier: 1 });
    await tick(10);
    expect(t.snapshots()).toEqual([true]);
    expect(t.warnings(/did not catch up/)).toBe(0);
    t.events.autoBarrier = true;
    await t.stop();
  });
});

describe('conntrack receiver: loss and resyncs', () => {
  it('resyncs at once after the event socket overflowed (ENOBUFS), then reads on at the interval', async () => {
    const t = setup();
    t.receiver.start();
    await tick(1000);
    t.events.emit([tcp(5, 0, { event: 1 })], { overflows: 1 });
    await tick(10);
    expect(t.dumpTimes()).toEqual([0, 1000]);
    expect(t.snapshots()).toEqual([true, false, true]);
    expect(t.metric('netmon_conntrack_event_overflows', 'counter')).toBe(1);
    expect(t.metric('netmon_conntrack_resyncs', 'counter')).toBe(1);
    expect(t.metric('netmon_conntrack_events', 'counter')).toBe(1);
    expect(t.warnings(/events were lost \(socket buffer overflow\): resyncing/)).toBe(1);
    await tick(6000);
    expect(t.dumpTimes()).toEqual([0, 1000, 6000]);
    await t.stop();
  });

  it('an overflow during a dump is answered by another dump right after it', async () => {
    const t = setup();
    const slow = deferred<DumpResult>();
    t.dumper.script.push(slow.promise);
    t.receiver.start();
    await tick(300);
    t.events.emit([], { overflows: 1 });
    await tick(10);
    expect(t.dumper.calls).toHaveLength(1);
    slow.resolve(dumpResult([tcp(1)]));
    await tick(10);
    expect(t.dumpTimes()).toEqual([0, 300]);
    expect(t.metric('netmon_conntrack_resyncs')).toBe(1);
    await t.stop();
  });

  it('events dropped because JS lagged are counted and answered by a resync', async () => {
    const t = setup();
    t.receiver.start();
    await tick(2000);
    t.events.emit([], { dropped: 40 });
    await tick(10);
    expect(t.dumpTimes()).toEqual([0, 2000]);
    expect(t.metric('netmon_conntrack_events_dropped', 'counter')).toBe(40);
    expect(t.metric('netmon_conntrack_resyncs')).toBe(1);
    await t.stop();
  });

  it('malformed events are counted and answered by a resync; the good rows still go on', async () => {
    const t = setup();
    t.receiver.start();
    await tick(2000);
    t.events.emit([tcp(9, 300, { event: 2 })], { malformed: 1 });
    await tick(10);
    expect(t.dumpTimes()).toEqual([0, 2000]);
    expect(t.sink.batches[1].length).toBe(1);
    expect(t.sink.batches[1].row(0).flags & FlowFlags.Closed).toBe(FlowFlags.Closed);
    expect(t.metric('netmon_conntrack_malformed_messages', 'counter')).toBe(1);
    expect(t.metric('netmon_conntrack_resyncs')).toBe(1);
    expect(t.warnings(/malformed conntrack event messages were skipped: resyncing/)).toBe(1);
    expect(t.receiver.counters).toMatchObject({ malformed: 1, resyncs: 1, eventOverflows: 0 });
    await t.stop();
  });

  it('a malformed dump goes on as readings, not a snapshot, followed at once by another read', async () => {
    const t = setup();
    t.dumper.script.push(
      dumpResult([tcp(1), tcp(2)], { malformed: 2 }),
      dumpResult([tcp(1), tcp(2), tcp(3)]),
    );
    t.receiver.start();
    await tick(10);
    expect(t.dumpTimes()).toEqual([0, 0]);
    expect(t.sink.batches.map((b) => [b.snapshot, b.length])).toEqual([
      [false, 2],
      [true, 3],
    ]);
    expect(t.metric('netmon_conntrack_malformed_messages')).toBe(2);
    expect(t.metric('netmon_conntrack_resyncs')).toBe(1);
    expect(t.metric('netmon_conntrack_reads')).toBe(2);
    await t.stop();
  });

  it('a lasting fault: one resync, then snapshots at the interval, warned once; a clean dump resets it', async () => {
    const t = setup();
    const bad = () => dumpResult([tcp(1)], { malformed: 1 });
    t.dumper.script.push(bad(), bad(), bad(), bad(), dumpResult([tcp(1)]), bad());
    t.receiver.start();
    await tick(20_100);
    // 0: malformed, resync at once; 0: malformed again (lasting), a snapshot; 5 s, 10 s: the same;
    // 15 s: clean; 20 s: malformed after a clean one, so a resync again (the fallback dump, clean).
    expect(t.dumpTimes()).toEqual([0, 0, 5000, 10_000, 15_000, 20_000, 20_000]);
    expect(t.snapshots()).toEqual([false, true, true, true, true, false, true]);
    expect(t.warnings(/every conntrack dump holds malformed messages/)).toBe(1);
    expect(t.metric('netmon_conntrack_malformed_messages')).toBe(5);
    expect(t.metric('netmon_conntrack_resyncs')).toBe(2);
    await t.stop();
  });
});

describe('conntrack receiver: failed reads and status', () => {
  it('a failed dump reports recoverable_error, is retried after 500 ms and more, and ok returns with a good read', async () => {
    const t = setup({ read_interval: '5s' });
    const enobufs = () => new Error('conntrack dump failed while reading: No buffer space available');
    t.dumper.script.push(dumpResult([tcp(1)]), enobufs(), enobufs(), enobufs());
    t.receiver.start();
    await tick(10);
    expect(t.state.status).toBe('ok');
    await tick(4995);
    expect(t.state.status).toBe('recoverable_error');
    expect(t.state.lastError).toBe(
      "conntrack dump of the agent's network namespace failed: conntrack dump failed while reading: No buffer space available",
    );
    await tick(480);
    expect(t.dumpTimes()).toEqual([0, 5000]);
    await tick(3100);
    // Retries after 0.5, 1 and 2 s; the third succeeds.
    expect(t.dumpTimes()).toEqual([0, 5000, 5500, 6500, 8500]);
    expect(t.state.status).toBe('ok');
    expect(t.metric('netmon_conntrack_read_failures', 'counter')).toBe(3);
    expect(t.metric('netmon_conntrack_read_retries', 'counter')).toBe(3);
    expect(t.metric('netmon_conntrack_reads')).toBe(2);
    expect(t.logs.filter((l) => l.level === 'error').map((l) => l.msg)).toEqual([
      'conntrack dump failed; retrying in 500 ms',
      'conntrack dump failed; retrying in 1000 ms',
      'conntrack dump failed; retrying in 2000 ms',
    ]);
    // Back to the interval, counted from the good read.
    await tick(5000);
    expect(t.dumpTimes()).toEqual([0, 5000, 5500, 6500, 8500, 13_500]);
    await t.stop();
  });

  it('a dump that keeps failing is retried while the backoff is below read_interval, then at the interval', async () => {
    const t = setup({ read_interval: '5s' });
    t.dumper.fallback = () => new Error('the kernel refused the conntrack dump: Operation not permitted');
    t.receiver.start();
    await tick(20_000);
    expect(t.dumpTimes()).toEqual([0, 500, 1500, 3500, 7500, 12_500, 17_500]);
    expect(t.metric('netmon_conntrack_read_retries')).toBe(4);
    expect(t.metric('netmon_conntrack_read_failures')).toBe(7);
    expect(t.metric('netmon_conntrack_reads')).toBe(0);
    expect(t.state.status).toBe('recoverable_error');
    expect(t.logs.filter((l) => l.level === 'error').at(-1)?.msg).toBe(
      'conntrack dump failed; retrying at the next interval',
    );
    t.dumper.fallback = () => dumpResult([]);
    await t.stop();
  });

  it('with a short read_interval a failed dump just waits for the interval', async () => {
    const t = setup({ read_interval: '400ms' });
    t.dumper.script.push(new Error('boom'));
    t.receiver.start();
    await tick(800);
    expect(t.dumpTimes()).toEqual([0, 400, 800]);
    expect(t.metric('netmon_conntrack_read_retries')).toBe(0);
    expect(t.state.status).toBe('ok');
    await t.stop();
  });

  it('an overflow while a retry is pending resyncs at once; the retry is not also counted', async () => {
    const t = setup();
    t.dumper.script.push(new Error('boom'));
    t.receiver.start();
    await tick(100);
    t.events.emit([], { overflows: 1 });
    await tick(1000);
    expect(t.dumpTimes()).toEqual([0, 100]);
    expect(t.metric('netmon_conntrack_read_retries')).toBe(0);
    expect(t.metric('netmon_conntrack_resyncs')).toBe(1);
    expect(t.state.status).toBe('ok');
    await t.stop();
  });

  it('a read that never returns turns the status to recoverable_error after three intervals (at least 30 s)', async () => {
    const t = setup();
    const stuck = deferred<DumpResult>();
    t.dumper.script.push(stuck.promise);
    t.receiver.start();
    await tick(30_000);
    expect(t.state.status).toBe('starting');
    await tick(5000);
    expect(t.state.status).toBe('recoverable_error');
    expect(t.state.lastError).toBe(
      "a conntrack read of the agent's network namespace has not returned for 35 s",
    );
    stuck.resolve(dumpResult([tcp(1)]));
    await tick(10);
    expect(t.state.status).toBe('ok');
    // Nothing piled up behind it: the next read is one interval after the stuck one returned.
    expect(t.dumpTimes()).toEqual([0, 35_000]);
    await t.stop();
  });

  it('refuses to start without CAP_NET_ADMIN, saying how to grant it', () => {
    const kernel = new FakeKernel();
    kernel.netAdmin = false;
    const t = setup({}, kernel);
    // Its own namespace: NET_ADMIN is all it needs, and all the message asks for.
    expect(() => t.receiver.start()).toThrow(/needs CAP_NET_ADMIN\. .*capabilities\.add: \[NET_ADMIN\] /);
    expect(kernel.openedIn).toEqual([]);
    // Another namespace: entering it (setns) needs SYS_ADMIN too.
    const other = setup({ netns: '/run/netns/x' }, kernel);
    expect(() => other.receiver.start()).toThrow(
      /needs CAP_NET_ADMIN and CAP_SYS_ADMIN \(to enter \/run\/netns\/x\).*capabilities\.add: \[NET_ADMIN, SYS_ADMIN\]/,
    );
  });
});

describe('conntrack receiver: byte accounting', () => {
  it('turns nf_conntrack_acct on when it is off, and says so', async () => {
    const kernel = new FakeKernel();
    kernel.sysctls.set(ACCT, '0');
    const t = setup({ netns: '/run/netns/x' }, kernel);
    t.receiver.start();
    expect(kernel.sysctlWrites).toContainEqual([ACCT, '1', '/run/netns/x']);
    expect(
      t.logs.some((l) => l.level === 'info' && /set net\.netfilter\.nf_conntrack_acct=1/.test(l.msg)),
    ).toBe(true);
    await tick(10);
    expect(t.state.status).toBe('ok');
    expect(t.metric('netmon_conntrack_accounting_enabled', 'gauge')).toBe(1);
    expect(t.receiver.counters.accountingEnabled).toBe(true);
    await t.stop();
  });

  it('when it cannot, says so in /status with the fix and a 0 gauge, until someone sets it; status stays ok', async () => {
    const kernel = new FakeKernel();
    kernel.sysctls.set(ACCT, '0');
    kernel.writeError = new Error(
      'cannot write /proc/sys/net/netfilter/nf_conntrack_acct: Read-only file system',
    );
    const t = setup({}, kernel);
    t.receiver.start();
    await tick(10);
    expect(t.state.status).toBe('ok');
    const message =
      "cannot set net.netfilter.nf_conntrack_acct in the agent's network namespace (cannot write " +
      '/proc/sys/net/netfilter/nf_conntrack_acct: Read-only file system): conntrack byte and packet counts are 0 ' +
      "unless it is 1. Fix: run 'sysctl -w net.netfilter.nf_conntrack_acct=1' on the node (Kubernetes: a " +
      "container's /proc/sys is read-only; the netmon chart's init container sets it through a hostPath mount " +
      'of /proc/sys/net/netfilter)';
    expect(t.state.details?.()).toEqual({ accounting: `off: ${message}` });
    expect(t.metric('netmon_conntrack_accounting_enabled', 'gauge')).toBe(0);
    // A good read does not hide it; it is logged once, not at every read.
    await tick(10_000);
    expect(t.dumper.calls).toHaveLength(3);
    expect(t.state.status).toBe('ok');
    expect(t.state.details?.()).toEqual({ accounting: `off: ${message}` });
    expect(t.warnings(/nf_conntrack_acct/)).toBe(1);
    // The operator follows the advice: the next read sees it, and stops checking.
    kernel.sysctls.set(ACCT, '1');
    await tick(5000);
    expect(t.state.details?.()).toEqual({ accounting: 'on' });
    expect(t.metric('netmon_conntrack_accounting_enabled')).toBe(1);
    const reads = kernel.sysctlReads.filter((n) => n === ACCT).length;
    await tick(10_000);
    expect(kernel.sysctlReads.filter((n) => n === ACCT).length).toBe(reads);
    await t.stop();
  });

  it('with enable_accounting: false it never writes, but an off switch is still reported', async () => {
    const kernel = new FakeKernel();
    kernel.sysctls.set(ACCT, '0');
    const t = setup({ enable_accounting: false }, kernel);
    t.receiver.start();
    await tick(10);
    expect(kernel.sysctlWrites.filter(([n]) => n === ACCT)).toEqual([]);
    expect(t.state.status).toBe('ok');
    expect(t.state.details?.().accounting).toMatch(
      /nf_conntrack_acct is 0 in .* and enable_accounting is false: .*Set enable_accounting: true, or run 'sysctl -w net\.netfilter\.nf_conntrack_acct=1'/,
    );
    expect(t.metric('netmon_conntrack_accounting_enabled')).toBe(0);
    await t.stop();
  });

  it('with enable_accounting: false and accounting on, all is well', async () => {
    const t = setup({ enable_accounting: false });
    t.receiver.start();
    await tick(10);
    expect(t.kernel.sysctlWrites).toEqual([]);
    expect(t.state.status).toBe('ok');
    expect(t.metric('netmon_conntrack_accounting_enabled')).toBe(1);
    await t.stop();
  });

  it('sets it after the first dump when the sysctl appears only then (nf_conntrack loaded by the dump)', async () => {
    const kernel = new FakeKernel();
    kernel.sysctls.delete(ACCT);
    kernel.dumper.onDump = () => {
      if (!kernel.sysctls.has(ACCT)) kernel.sysctls.set(ACCT, '0');
    };
    const t = setup({}, kernel);
    t.receiver.start();
    expect(t.state.details?.().accounting).toMatch(/^off: /);
    expect(t.metric('netmon_conntrack_accounting_enabled')).toBe(0);
    await tick(10);
    expect(kernel.sysctlWrites).toContainEqual([ACCT, '1', undefined]);
    expect(t.state.status).toBe('ok');
    expect(t.metric('netmon_conntrack_accounting_enabled')).toBe(1);
    await t.stop();
  });
});

describe('conntrack receiver: shutdown', () => {
  it('reads a last time, then closes the subscription and the socket, leaving no timers', async () => {
    const t = setup();
    t.receiver.start();
    await tick(2000);
    t.dumper.script.push(dumpResult([tcp(1, 999)]));
    await t.stop();
    expect(t.dumpTimes()).toEqual([0, 2000]);
    expect(t.sink.batches.at(-1)?.snapshot).toBe(true);
    expect(t.sink.batches.at(-1)?.txBytes[0]).toBe(999);
    expect(t.events.barriers).toBe(2);
    expect(t.events.closed).toBe(true);
    expect(t.dumper.closed).toBe(true);
    expect(vi.getTimerCount()).toBe(0);
    // The self-metric callbacks are gone too.
    expect(t.metric('netmon_conntrack_reads')).toBeUndefined();
    // Events arriving after shutdown (the addon's last hand-over) are ignored; a second shutdown is a no-op.
    t.events.emit([tcp(3, 1, { event: 2 })]);
    const handed = t.sink.batches.length;
    await t.stop();
    expect(t.sink.batches.length).toBe(handed);
    expect(t.dumper.calls).toHaveLength(2);
  });

  it('waits for a read in flight before the last one', async () => {
    const t = setup();
    const slow = deferred<DumpResult>();
    t.dumper.script.push(slow.promise);
    t.receiver.start();
    await tick(100);
    const stopping = t.receiver.shutdown();
    await tick(100);
    expect(t.dumper.calls).toHaveLength(1);
    slow.resolve(dumpResult([tcp(1)]));
    await settle(stopping);
    expect(t.dumpTimes()).toEqual([0, 200]);
    expect(t.dumper.closed).toBe(true);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('shutdown without start is safe', async () => {
    const t = setup();
    await t.stop();
    expect(t.dumper.calls).toHaveLength(0);
    expect(t.events.subscribed).toBe(false);
  });
});

describe('conntrack receiver: counters', () => {
  it('counters and self-metrics agree', async () => {
    const t = setup();
    t.dumper.script.push(dumpResult([tcp(1), tcp(2)], { malformed: 1 }), dumpResult([tcp(1), tcp(2)]));
    t.receiver.start();
    await tick(10);
    t.events.emit([tcp(4, 0, { event: 1 }), tcp(5, 0, { event: 1 })], { overflows: 2, dropped: 3 });
    await tick(10);
    expect(t.receiver.counters).toEqual({
      reads: 3,
      readFailures: 0,
      readRetries: 0,
      lastEntries: 0,
      resyncs: 2,
      eventsReceived: 2,
      eventOverflows: 2,
      eventsDropped: 3,
      malformed: 1,
      accountingEnabled: true,
    });
    const c = t.receiver.counters;
    expect([
      t.metric('netmon_conntrack_reads'),
      t.metric('netmon_conntrack_read_failures'),
      t.metric('netmon_conntrack_read_retries'),
      t.metric('netmon_conntrack_entries'),
      t.metric('netmon_conntrack_resyncs'),
      t.metric('netmon_conntrack_events'),
      t.metric('netmon_conntrack_event_overflows'),
      t.metric('netmon_conntrack_events_dropped'),
      t.metric('netmon_conntrack_malformed_messages'),
      t.metric('netmon_conntrack_accounting_enabled'),
    ]).toEqual([
      c.reads,
      c.readFailures,
      c.readRetries,
      c.lastEntries,
      c.resyncs,
      c.eventsReceived,
      c.eventOverflows,
      c.eventsDropped,
      c.malformed,
      1,
    ]);
    await t.stop();
  });
});
