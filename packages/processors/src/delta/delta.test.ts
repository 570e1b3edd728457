import { execFileSync } from 'node:child_process';
import { closeSync, constants, mkdirSync, openSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FlowBatch, FlowFlags, type FlowInit, StatusBoard } from '@netmon/core';
import { describeConformance, testSettings } from '@netmon/core/testkit';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { pino } from 'pino';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { checkpointId, decodeCheckpoint } from './checkpoint.js';
import { deltaProcessorConfig } from './config.js';
import { DeltaProcessor } from './delta.js';
import { deltaProcessorFactory } from './factory.js';
import { rng } from './testdata/rng.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');
const S = 10_000;

/** A flow as the conntrack receiver reports it; `port` (the source port) names it in the tests. */
interface F {
  port: number;
  tx: number;
  rx?: number;
  txp?: number;
  rxp?: number;
  id?: number;
  zone?: number;
  flags?: number;
  start?: number;
  mark?: number;
  dst?: string;
}

function init(f: F, t: number): FlowInit {
  const attributes: Record<string, number | string> = {};
  if (f.id !== undefined) attributes['conntrack.id'] = f.id;
  if (f.zone !== undefined) attributes['conntrack.zone'] = f.zone;
  if (f.mark !== undefined) attributes['conntrack.mark'] = f.mark;
  return {
    timeStart: f.start ?? 0,
    timeEnd: t,
    protocol: 6,
    srcIp: '10.0.0.1',
    srcPort: f.port,
    dstIp: f.dst ?? '10.96.0.10',
    dstPort: 443,
    txBytes: f.tx,
    rxBytes: f.rx ?? 10 * f.tx,
    txPackets: f.txp ?? Math.ceil(f.tx / 100),
    rxPackets: f.rxp ?? Math.ceil(f.tx / 50),
    flags: f.flags ?? FlowFlags.InitiatorKnown,
    attributes,
  };
}

/** A full dump of `origin` at time t. */
function snap(t: number, flows: F[], origin = 'conntrack'): FlowBatch {
  const b = FlowBatch.from(
    flows.map((f) => init(f, t)),
    'cumulative',
  );
  b.snapshot = true;
  b.origin = origin;
  return b;
}

/** NEW / DESTROY events at time t. */
function events(t: number, flows: F[], origin = 'conntrack'): FlowBatch {
  const b = FlowBatch.from(
    flows.map((f) => init(f, t)),
    'cumulative',
  );
  b.origin = origin;
  return b;
}

const opened = (port: number, extra: Partial<F> = {}): F => ({
  port,
  tx: 0,
  rx: 0,
  txp: 0,
  rxp: 0,
  flags: FlowFlags.Opened,
  ...extra,
});
const closed = (port: number, tx: number, extra: Partial<F> = {}): F => ({
  port,
  tx,
  flags: FlowFlags.Closed,
  ...extra,
});

interface Out {
  port: number;
  tx: number;
  rx: number;
  txp: number;
  rxp: number;
  start: number;
  end: number;
}

function rows(b: FlowBatch | null | undefined): Out[] {
  if (!b) return [];
  expect(b.temporality).toBe('delta');
  expect(b.snapshot).toBe(false);
  const out: Out[] = [];
  for (let i = 0; i < b.length; i++) {
    out.push({
      port: b.srcPort[i],
      tx: b.txBytes[i],
      rx: b.rxBytes[i],
      txp: b.txPackets[i],
      rxp: b.rxPackets[i],
      start: b.timeStart[i],
      end: b.timeEnd[i],
    });
  }
  return out.sort((a, b) => a.port - b.port);
}

/** port → tx bytes of the emitted rows. */
const tx = (b: FlowBatch | null | undefined) => Object.fromEntries(rows(b).map((r) => [r.port, r.tx]));

interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

function processor(
  config: Record<string, unknown> = {},
  configDir?: string,
  opts: { logs?: LogLine[]; board?: StatusBoard; meter?: MeterProvider } = {},
): DeltaProcessor {
  const settings = testSettings('processor', 'delta', { configDir, board: opts.board });
  const logs = opts.logs;
  if (logs)
    settings.logger = pino({ level: 'debug' }, { write: (line: string) => logs.push(JSON.parse(line)) });
  if (opts.meter) settings.meter = opts.meter.getMeter('test');
  return new DeltaProcessor(settings, deltaProcessorConfig.parse(config));
}

/** Runs a batch through, as the framework would (read-only input). */
async function run(p: DeltaProcessor, b: FlowBatch): Promise<FlowBatch | null> {
  return (await p.process(b.seal())) as FlowBatch | null;
}

const conformanceDir = join(tmpdir(), `netmon-delta-conformance-${process.pid}`);
mkdirSync(conformanceDir, { recursive: true });
afterAll(() => rm(conformanceDir, { recursive: true, force: true }));

describeConformance(deltaProcessorFactory, {
  config: { state_file: 'state/delta.state' },
  configDir: conformanceDir,
  sample: () => snap(T0, [{ port: 1, tx: 100 }]),
});

describe('delta processor', () => {
  it('fills defaults and rejects unknown keys and bad durations', () => {
    expect(deltaProcessorConfig.parse({})).toEqual({ checkpoint_interval: 0 });
    expect(deltaProcessorConfig.parse({ state_file: 's.bin', checkpoint_interval: '1m' })).toEqual({
      state_file: 's.bin',
      checkpoint_interval: 60_000,
    });
    expect(deltaProcessorConfig.safeParse({ state_file: '' }).success).toBe(false);
    expect(deltaProcessorConfig.safeParse({ checkpoint_interval: '5' }).success).toBe(false);
    expect(deltaProcessorConfig.safeParse({ interval: '5s' }).success).toBe(false);
  });

  it('takes the first snapshot as a baseline, then emits exact deltas with the previous reading as start', async () => {
    const p = processor();
    expect(
      await run(
        p,
        snap(T0, [
          { port: 1, tx: 1000 },
          { port: 2, tx: 500 },
        ]),
      ),
    ).toBeNull();
    const out = await run(
      p,
      snap(T0 + S, [
        { port: 1, tx: 1500 },
        { port: 2, tx: 500 },
      ]),
    );
    expect(rows(out)).toEqual([{ port: 1, tx: 500, rx: 5000, txp: 5, rxp: 10, start: T0, end: T0 + S }]);
    const out2 = await run(
      p,
      snap(T0 + 2 * S, [
        { port: 1, tx: 1600 },
        { port: 2, tx: 700 },
      ]),
    );
    expect(rows(out2)).toEqual([
      { port: 1, tx: 100, rx: 1000, txp: 1, rxp: 2, start: T0 + S, end: T0 + 2 * S },
      // Unchanged at T0 + S, so its bytes were sent after that reading.
      { port: 2, tx: 200, rx: 2000, txp: 2, rxp: 4, start: T0 + S, end: T0 + 2 * S },
    ]);
    expect(p.trackedFlows('conntrack')).toBe(2);
  });

  it('counts a flow born between two reads whole, starting when it began or at the previous snapshot', async () => {
    const p = processor();
    await run(p, snap(T0, [{ port: 1, tx: 1000 }]));
    const out = rows(
      await run(
        p,
        snap(T0 + S, [
          { port: 1, tx: 1000 },
          { port: 2, tx: 300, start: T0 + 4000 },
          { port: 3, tx: 70 },
        ]),
      ),
    );
    expect(out).toEqual([
      { port: 2, tx: 300, rx: 3000, txp: 3, rxp: 6, start: T0 + 4000, end: T0 + S },
      { port: 3, tx: 70, rx: 700, txp: 1, rxp: 2, start: T0, end: T0 + S },
    ]);
  });

  it('counts an Opened flow from zero, before and after the first snapshot', async () => {
    const p = processor();
    expect(await run(p, events(T0 - 500, [opened(1, { start: T0 - 600, tx: 40 })]))).toBeNull();
    // Before the first snapshot: flow 1 is known to be new, flow 2 is older than the agent.
    expect(
      rows(
        await run(
          p,
          snap(T0, [
            { port: 1, tx: 900 },
            { port: 2, tx: 5000 },
          ]),
        ),
      ),
    ).toEqual([{ port: 1, tx: 900, rx: 9000, txp: 9, rxp: 18, start: T0 - 600, end: T0 }]);
    await run(p, events(T0 + 1000, [opened(3)]));
    expect(
      tx(
        await run(
          p,
          snap(T0 + S, [
            { port: 1, tx: 900 },
            { port: 2, tx: 5100 },
            { port: 3, tx: 250 },
          ]),
        ),
      ),
    ).toEqual({ 2: 100, 3: 250 });
  });

  it('emits final − baseline on DESTROY once; a stale dump and a duplicate DESTROY add nothing', async () => {
    const p = processor();
    await run(
      p,
      snap(T0, [
        { port: 1, tx: 1000 },
        { port: 2, tx: 10 },
      ]),
    );
    const out = rows(await run(p, events(T0 + 4000, [closed(1, 1800, { mark: 3 })])));
    expect(out).toEqual([{ port: 1, tx: 800, rx: 8000, txp: 8, rxp: 16, start: T0, end: T0 + 4000 }]);
    expect(await run(p, events(T0 + 4100, [closed(1, 1800)]))).toBeNull();
    // The dump was taken before the DESTROY was processed: it still lists flow 1 with older counters.
    expect(
      tx(
        await run(
          p,
          snap(T0 + S, [
            { port: 1, tx: 1700 },
            { port: 2, tx: 20 },
          ]),
        ),
      ),
    ).toEqual({ 2: 10 });
    expect(p.counts.vanished).toBe(0);
    expect(await run(p, events(T0 + S + 1, [closed(1, 1800)]))).toBeNull();
  });

  it('keeps tombstones for two snapshots, then forgets them', async () => {
    const p = processor();
    await run(p, snap(T0, [{ port: 1, tx: 1000 }]));
    await run(p, events(T0 + 1, [closed(1, 1100)]));
    expect(p.trackedFlows('conntrack')).toBe(1);
    await run(p, snap(T0 + S, []));
    expect(p.trackedFlows('conntrack')).toBe(1);
    await run(p, snap(T0 + 2 * S, []));
    expect(p.trackedFlows('conntrack')).toBe(0);
    expect(p.counts.vanished).toBe(0);
  });

  it('counts a flow born and closed between reads whole, and ignores a stale dump row for it', async () => {
    const p = processor();
    await run(p, snap(T0, []));
    expect(rows(await run(p, events(T0 + 3000, [closed(7, 400, { start: T0 + 1000 })])))).toEqual([
      { port: 7, tx: 400, rx: 4000, txp: 4, rxp: 8, start: T0 + 1000, end: T0 + 3000 },
    ]);
    expect(await run(p, snap(T0 + S, [{ port: 7, tx: 300 }]))).toBeNull();
  });

  it('drops the DESTROY of a flow older than the agent before the first snapshot, and counts it', async () => {
    const p = processor();
    expect(await run(p, events(T0 - 100, [closed(1, 5000)]))).toBeNull();
    // But a flow that is known to have begun after the agent started counts whole.
    expect(
      tx(await run(p, events(T0 - 50, [closed(2, 60, { flags: FlowFlags.Closed | FlowFlags.Opened })]))),
    ).toEqual({
      2: 60,
    });
    expect(p.counts.preexistingClosed).toBe(1);
    expect(
      await run(
        p,
        snap(T0, [
          { port: 1, tx: 4000 },
          { port: 3, tx: 1 },
        ]),
      ),
    ).toBeNull();
  });

  it('treats tuple reuse with a new conntrack id as a new flow counting from zero', async () => {
    const p = processor();
    await run(p, snap(T0, [{ port: 1, tx: 1000, id: 11 }]));
    expect(tx(await run(p, snap(T0 + S, [{ port: 1, tx: 300, id: 12 }])))).toEqual({ 1: 300 });
    // The old id is missing, not gone yet: a late DESTROY could still settle it.
    expect(p.counts.vanished).toBe(0);
    expect(p.counts.counterResets).toBe(0);
    // The zone is part of the key too; an absent or NaN id is 0.
    await run(
      p,
      snap(T0 + 2 * S, [
        { port: 1, tx: 400, id: 12 },
        { port: 1, tx: 50, id: 12, zone: 2 },
        { port: 2, tx: 5 },
      ]),
    );
    const b = snap(T0 + 3 * S, [
      { port: 1, tx: 400, id: 12 },
      { port: 1, tx: 50, id: 12, zone: 2 },
      { port: 2, tx: 6, id: 0 },
    ]);
    b.column('conntrack.id')?.set(2, undefined);
    expect(tx(await run(p, b))).toEqual({ 2: 1 });
    // Missing from two snapshots in a row: the old id has ended without a DESTROY.
    expect(p.counts.vanished).toBe(1);
  });

  it('counts a flow whose counters went below its baseline from zero, and counts the reset', async () => {
    const p = processor();
    await run(p, snap(T0, [{ port: 1, tx: 1000 }]));
    expect(rows(await run(p, snap(T0 + S, [{ port: 1, tx: 200 }])))).toEqual([
      { port: 1, tx: 200, rx: 2000, txp: 2, rxp: 4, start: T0, end: T0 + S },
    ]);
    expect(p.counts.counterResets).toBe(1);
    expect(tx(await run(p, snap(T0 + 2 * S, [{ port: 1, tx: 250 }])))).toEqual({ 1: 50 });
  });

  it('forgets flows that vanished from a snapshot without a DESTROY, and counts them', async () => {
    const p = processor();
    await run(
      p,
      snap(T0, [
        { port: 1, tx: 1000 },
        { port: 2, tx: 1000 },
        { port: 3, tx: 1 },
      ]),
    );
    // A NEW read after the dump (event time later than the dump's) is not judged by that dump.
    await run(p, events(T0 + S + 100, [opened(4)]));
    expect(tx(await run(p, snap(T0 + S, [{ port: 1, tx: 1100 }])))).toEqual({ 1: 100 });
    // Flows 2 and 3 are missing, not forgotten yet: one snapshot is not proof (a DESTROY may be on its
    // way, or the dump skipped a malformed row).
    expect(p.counts.vanished).toBe(0);
    expect(p.trackedFlows('conntrack')).toBe(4);
    // Flow 2 turns up again: it resumes from its baseline. Flow 3, missing twice, is forgotten.
    expect(
      tx(
        await run(
          p,
          snap(T0 + 2 * S, [
            { port: 1, tx: 1100 },
            { port: 2, tx: 1200 },
            { port: 4, tx: 5 },
          ]),
        ),
      ),
    ).toEqual({
      2: 200,
      4: 5,
    });
    expect(p.counts.vanished).toBe(1);
    // Two empty dumps: every live flow has gone.
    await run(p, snap(T0 + 3 * S, []));
    expect(p.trackedFlows('conntrack')).toBe(3);
    await run(p, snap(T0 + 4 * S, []));
    expect(p.trackedFlows('conntrack')).toBe(0);
    expect(p.counts.vanished).toBe(4);
  });

  describe('a key reused by a new connection with the same id (NEW for a key held)', () => {
    // Conntrack ids hash the entry's address and tuple: a tuple reused at once (a SYN on a TIME_WAIT
    // entry: the kernel destroys it and creates a new one, often at the same address) keeps its id.

    it('after a DESTROY: the new connection counts from zero, and closing within the tombstone is counted', async () => {
      const p = processor();
      await run(p, snap(T0, [{ port: 1, tx: 1000 }]));
      expect(tx(await run(p, snap(T0 + S, [{ port: 1, tx: 1500 }])))).toEqual({ 1: 500 });
      expect(tx(await run(p, events(T0 + S + 100, [closed(1, 1800)])))).toEqual({ 1: 300 });
      expect(await run(p, events(T0 + S + 200, [opened(1)]))).toBeNull();
      // Opened and closed again before any dump, while the old one's tombstone lasts: counted whole.
      expect(rows(await run(p, events(T0 + S + 300, [closed(1, 700)])))).toEqual([
        { port: 1, tx: 700, rx: 7000, txp: 7, rxp: 14, start: T0 + S + 200, end: T0 + S + 300 },
      ]);
      // A third connection on the key, still open at the next dumps.
      await run(p, events(T0 + S + 400, [opened(1)]));
      // The first dump after its NEW may have passed the key before the reuse: held back, not lost.
      expect(await run(p, snap(T0 + 2 * S, [{ port: 1, tx: 400 }]))).toBeNull();
      expect(rows(await run(p, snap(T0 + 3 * S, [{ port: 1, tx: 900 }])))).toEqual([
        { port: 1, tx: 900, rx: 9000, txp: 9, rxp: 18, start: T0 + S + 400, end: T0 + 3 * S },
      ]);
      // Its DESTROY carries its final counters: final − baseline.
      expect(tx(await run(p, events(T0 + 3 * S + 5, [closed(1, 1000)])))).toEqual({ 1: 100 });
      expect(p.counts.vanished).toBe(0);
      expect(p.counts.counterResets).toBe(0);
    });

    it('a dump taken before the DESTROY and NEW were processed does not count the old connection again', async () => {
      const p = processor();
      await run(p, snap(T0, [{ port: 1, tx: 1000 }]));
      await run(p, events(T0 + 100, [closed(1, 1800)]));
      await run(p, events(T0 + 200, [opened(1)]));
      // Read while the old connection was alive: its counters, below the final ones, or up to them.
      expect(await run(p, snap(T0 + S, [{ port: 1, tx: 1700 }]))).toBeNull();
      // The next dump began after the NEW was handed on: the new connection, whole.
      expect(tx(await run(p, snap(T0 + 2 * S, [{ port: 1, tx: 60 }])))).toEqual({ 1: 60 });
      expect(p.counts.counterResets).toBe(0);
    });

    it('with conntrack timestamps, the first dump after the NEW is used when its start proves the row new', async () => {
      const s1 = T0 - 5000;
      const s2 = T0 + 150;
      const s3 = T0 + S + 190;
      const p = processor();
      await run(p, snap(T0, [{ port: 1, tx: 1000, start: s1 }]));
      expect(tx(await run(p, events(T0 + 100, [closed(1, 1800, { start: s1 })])))).toEqual({ 1: 800 });
      await run(p, events(T0 + 200, [opened(1)]));
      // The old connection's DESTROY again (its start): a duplicate, not the new one's end.
      expect(await run(p, events(T0 + 250, [closed(1, 1800, { start: s1 })]))).toBeNull();
      // A stale row: the old connection's start.
      expect(await run(p, snap(T0 + S, [{ port: 1, tx: 1700, start: s1 }]))).toBeNull();
      expect(tx(await run(p, events(T0 + S + 100, [closed(1, 50, { start: s2 })])))).toEqual({ 1: 50 });
      await run(p, events(T0 + S + 200, [opened(1)]));
      // Started after the connection before it: the new one, used at once.
      expect(rows(await run(p, snap(T0 + 2 * S, [{ port: 1, tx: 400, start: s3 }])))).toEqual([
        { port: 1, tx: 400, rx: 4000, txp: 4, rxp: 8, start: T0 + S + 200, end: T0 + 2 * S },
      ]);
    });

    it('with its DESTROY lost: the old connection vanished, the new one counts from zero, not from the old baseline', async () => {
      const p = processor();
      await run(p, snap(T0, [{ port: 1, tx: 1000 }]));
      expect(tx(await run(p, snap(T0 + S, [{ port: 1, tx: 1500 }])))).toEqual({ 1: 500 });
      await run(p, events(T0 + S + 100, [opened(1)]));
      expect(p.counts.vanished).toBe(1);
      // Stale: the old connection, read before it ended.
      expect(await run(p, snap(T0 + 2 * S, [{ port: 1, tx: 1600 }]))).toBeNull();
      // Above the old baseline: computed against it, 500 of these 2000 bytes would be lost.
      expect(rows(await run(p, snap(T0 + 3 * S, [{ port: 1, tx: 2000 }])))).toEqual([
        { port: 1, tx: 2000, rx: 20000, txp: 20, rxp: 40, start: T0 + S + 100, end: T0 + 3 * S },
      ]);
      expect(tx(await run(p, events(T0 + 3 * S + 5, [closed(1, 2300)])))).toEqual({ 1: 300 });
      expect(p.counts.counterResets).toBe(0);
    });

    it('with its DESTROY lost while missing from the last snapshot', async () => {
      const p = processor();
      await run(p, snap(T0, [{ port: 1, tx: 1000 }]));
      await run(p, snap(T0 + S, [{ port: 1, tx: 1500 }]));
      await run(p, snap(T0 + 2 * S, []));
      await run(p, events(T0 + 2 * S + 10, [opened(1)]));
      expect(p.counts.vanished).toBe(1);
      expect(await run(p, snap(T0 + 3 * S, [{ port: 1, tx: 3000 }]))).toBeNull();
      expect(tx(await run(p, snap(T0 + 4 * S, [{ port: 1, tx: 3100 }])))).toEqual({ 1: 3100 });
      expect(p.counts.vanished).toBe(1);
    });

    it('a plain reading (a dump with skipped rows) after the NEW is the first dump; the snapshot after it is trusted', async () => {
      const p = processor();
      await run(p, snap(T0, [{ port: 1, tx: 1000 }]));
      await run(p, events(T0 + 100, [closed(1, 1800)]));
      await run(p, events(T0 + 200, [opened(1)]));
      expect(await run(p, events(T0 + S, [{ port: 1, tx: 1800 }]))).toBeNull();
      expect(tx(await run(p, snap(T0 + S + 10, [{ port: 1, tx: 30 }])))).toEqual({ 1: 30 });
    });

    it('a NEW read before the reading that already saw its connection is late, not a reuse', async () => {
      const p = processor();
      await run(p, snap(T0, []));
      // Born after the first dump; this dump lists it, and its NEW (read before the dump ended) comes
      // after the snapshot: only when the receiver's event barrier failed.
      expect(tx(await run(p, snap(T0 + S, [{ port: 1, tx: 500 }])))).toEqual({ 1: 500 });
      expect(await run(p, events(T0 + S - 10, [opened(1)]))).toBeNull();
      expect(p.counts.vanished).toBe(0);
      expect(tx(await run(p, snap(T0 + 2 * S, [{ port: 1, tx: 600 }])))).toEqual({ 1: 100 });
    });
  });

  it('a DESTROY that arrives after the snapshot that no longer lists the flow settles it once', async () => {
    const p = processor();
    await run(p, snap(T0, [{ port: 1, tx: 1000 }]));
    await run(p, snap(T0 + S, [{ port: 1, tx: 1500 }]));
    // The next dump reaped it (absent), and its DESTROY comes after that snapshot.
    expect(await run(p, snap(T0 + 2 * S, []))).toBeNull();
    expect(tx(await run(p, events(T0 + 2 * S + 50, [closed(1, 1800)])))).toEqual({ 1: 300 });
    expect(p.counts.vanished).toBe(0);
  });

  it('keeps origins apart', async () => {
    const p = processor();
    await run(p, snap(T0, [{ port: 1, tx: 1000 }], 'conntrack/a'));
    // Same tuple, other origin: its own baseline phase.
    expect(await run(p, snap(T0, [{ port: 1, tx: 5000 }], 'conntrack/b'))).toBeNull();
    const a = await run(p, snap(T0 + S, [{ port: 1, tx: 1100 }], 'conntrack/a'));
    expect(a?.origin).toBe('conntrack/a');
    expect(tx(a)).toEqual({ 1: 100 });
    expect(tx(await run(p, snap(T0 + S, [{ port: 1, tx: 5007 }], 'conntrack/b')))).toEqual({ 1: 7 });
    // Not in b's snapshots any more: a's flow is untouched.
    await run(p, snap(T0 + 2 * S, [], 'conntrack/b'));
    await run(p, snap(T0 + 3 * S, [], 'conntrack/b'));
    expect(p.trackedFlows('conntrack/a')).toBe(1);
    expect(p.trackedFlows('conntrack/b')).toBe(0);
  });

  it('copies every column of the chosen rows and leaves its input as it was', async () => {
    const p = processor();
    const first = FlowBatch.from(
      [
        {
          ...init({ port: 1, tx: 100, id: 5, mark: 9 }, T0),
          backendIp: '10.1.2.3',
          backendPort: 8443,
          attributes: { 'conntrack.id': 5, 'conntrack.mark': 9, 'src.k8s.pod.name': 'web-1' },
        },
        init({ port: 2, tx: 100 }, T0),
      ],
      'cumulative',
    );
    first.snapshot = true;
    first.origin = 'conntrack';
    await run(p, first);
    const second = FlowBatch.from(
      [
        init({ port: 2, tx: 100 }, T0 + S),
        {
          ...init({ port: 1, tx: 150, id: 5 }, T0 + S),
          backendIp: '10.1.2.3',
          backendPort: 8443,
          attributes: { 'conntrack.id': 5, 'conntrack.mark': 9, 'src.k8s.pod.name': 'web-1' },
        },
      ],
      'cumulative',
    );
    second.snapshot = true;
    second.origin = 'conntrack';
    const before = second.clone();
    const out = await run(p, second);
    expect(out).not.toBe(second);
    expect(out?.length).toBe(1);
    const r = out!.row(0);
    expect(r.backendIp).toBe('10.1.2.3');
    expect(r.backendPort).toBe(8443);
    expect(r.flags).toBe(FlowFlags.InitiatorKnown | FlowFlags.Dnat);
    expect(r.attributes).toEqual({ 'conntrack.id': 5, 'conntrack.mark': 9, 'src.k8s.pod.name': 'web-1' });
    expect(r.txBytes).toBe(50);
    expect(out!.origin).toBe('conntrack');
    expect(second.txBytes[1]).toBe(150);
    expect(second.temporality).toBe('cumulative');
    expect(second.snapshot).toBe(true);
    for (let i = 0; i < 2; i++) expect(second.row(i).attributes).toEqual(before.row(i).attributes);
  });

  it('passes delta batches through unchanged', async () => {
    const p = processor();
    const b = FlowBatch.from([init({ port: 1, tx: 5 }, T0)], 'delta');
    expect(await run(p, b)).toBe(b);
  });

  it('tracks 200k flows with random keys and adds up exactly', async () => {
    const N = 200_000;
    const random = rng(7);
    const make = (t: number, counters: Float64Array, count: number, from = 0) => {
      const b = new FlowBatch(count, 'cumulative');
      b.length = count;
      b.snapshot = true;
      b.origin = 'conntrack';
      const id = b.ensureColumn('conntrack.id', 'number');
      for (let j = 0; j < count; j++) {
        const i = from + j;
        keyRow(b, j, i);
        id.values[j] = ids[i];
        b.txBytes[j] = counters[i];
        b.rxBytes[j] = 2 * counters[i];
        b.txPackets[j] = 1;
        b.rxPackets[j] = 1;
        b.timeEnd[j] = t;
      }
      return b;
    };
    const addr = new Uint32Array(N * 3);
    const ids = new Float64Array(N);
    for (let i = 0; i < addr.length; i++) addr[i] = (random() * 2 ** 32) >>> 0;
    for (let i = 0; i < N; i++) ids[i] = (random() * 2 ** 32) >>> 0;
    const keyRow = (b: FlowBatch, j: number, i: number) => {
      b.family[j] = 4;
      b.protocol[j] = 6;
      const o = 16 * j;
      b.srcAddr[o + 10] = b.srcAddr[o + 11] = b.dstAddr[o + 10] = b.dstAddr[o + 11] = 0xff;
      new DataView(b.srcAddr.buffer).setUint32(o + 12, addr[3 * i]);
      new DataView(b.dstAddr.buffer).setUint32(o + 12, addr[3 * i + 1]);
      b.srcPort[j] = addr[3 * i + 2] & 0xffff;
      b.dstPort[j] = addr[3 * i + 2] >>> 16;
    };
    const counters = new Float64Array(N);
    for (let i = 0; i < N; i++) counters[i] = Math.floor(random() * 1e6);
    const base = counters.slice();
    const p = processor();
    // Half the flows are there from the start; the other half appear in the second dump.
    expect(await run(p, make(T0, counters, N / 2))).toBeNull();
    let sumTx = 0;
    let sumRx = 0;
    for (let round = 1; round <= 3; round++) {
      for (let i = 0; i < N; i++) counters[i] += Math.floor(random() * 3) * 1000;
      const out = await run(p, make(T0 + round * S, counters, N));
      for (let i = 0; i < (out?.length ?? 0); i++) {
        sumTx += out!.txBytes[i];
        sumRx += out!.rxBytes[i];
      }
    }
    expect(p.trackedFlows('conntrack')).toBe(N);
    let expected = 0;
    for (let i = 0; i < N; i++) expected += i < N / 2 ? counters[i] - base[i] : counters[i];
    expect(sumTx).toBe(expected);
    expect(sumRx).toBe(2 * expected);
    expect(p.stateBytes / N).toBeLessThan(100);
    // All gone in the next two dumps but the last 1000.
    await run(p, make(T0 + 4 * S, counters, 1000, N - 1000));
    await run(p, make(T0 + 5 * S, counters, 1000, N - 1000));
    expect(p.trackedFlows('conntrack')).toBe(1000);
    expect(p.counts.vanished).toBe(N - 1000);
  });

  it('property: what it emits per flow adds up to final minus baseline, whatever the order of reads and events', async () => {
    for (let seed = 1; seed <= 12; seed++) {
      const random = rng(seed);
      const p = processor();
      interface Sim {
        port: number;
        id: number;
        tx: number;
        rx: number;
        alive: boolean;
        /** Counters when the agent took its baseline (flows older than the agent). */
        baseTx: number;
        baseRx: number;
        emittedTx: number;
        emittedRx: number;
      }
      const flows: Sim[] = [];
      let nextPort = 1;
      const born = (old: boolean): Sim => {
        const f: Sim = {
          port: nextPort++,
          id: 1 + Math.floor(random() * 4),
          tx: old ? Math.floor(random() * 5000) : 0,
          rx: old ? Math.floor(random() * 5000) : 0,
          alive: true,
          baseTx: 0,
          baseRx: 0,
          emittedTx: 0,
          emittedRx: 0,
        };
        flows.push(f);
        return f;
      };
      const byKey = new Map<string, Sim>();
      const account = (out: FlowBatch | null) => {
        if (!out) return;
        const id = out.column('conntrack.id');
        for (let i = 0; i < out.length; i++) {
          const f = byKey.get(`${out.srcPort[i]}/${id?.get(i)}`)!;
          f.emittedTx += out.txBytes[i];
          f.emittedRx += out.rxBytes[i];
        }
      };
      const dump = (t: number, list: Sim[]) =>
        snap(
          t,
          list.map((f) => ({ port: f.port, id: f.id, tx: f.tx, rx: f.rx, txp: 0, rxp: 0 })),
        );
      for (let i = 0; i < 30; i++) born(true);
      for (const f of flows) {
        byKey.set(`${f.port}/${f.id}`, f);
        f.baseTx = f.tx;
        f.baseRx = f.rx;
      }
      let t = T0;
      const eventsOn = random() < 0.8;
      const closeEvent = (f: Sim) =>
        events(t, [{ port: f.port, id: f.id, tx: f.tx, rx: f.rx, txp: 0, rxp: 0, flags: FlowFlags.Closed }]);
      // A new connection on a closed one's tuple, with the same conntrack id (the kernel's reuse).
      const reuse = async (old: Sim) => {
        const f: Sim = {
          ...old,
          tx: 0,
          rx: 0,
          alive: true,
          baseTx: 0,
          baseRx: 0,
          emittedTx: 0,
          emittedRx: 0,
        };
        flows.push(f);
        byKey.set(`${f.port}/${f.id}`, f);
        account(await run(p, events(t, [opened(f.port, { id: f.id })])));
      };
      if (eventsOn) {
        // Before the first dump: new flows open (and count from zero), old ones close (dropped whole).
        for (let i = 0; i < 5; i++) {
          t += 10;
          const f = born(false);
          byKey.set(`${f.port}/${f.id}`, f);
          account(await run(p, events(t, [opened(f.port, { id: f.id })])));
          f.tx += 100;
          const old = flows[i];
          old.tx += 50;
          old.alive = false;
          old.baseTx = old.tx;
          old.baseRx = old.rx;
          account(await run(p, closeEvent(old)));
        }
      }
      t += 10;
      for (const f of flows) {
        if (f.alive && f.port <= 30) {
          f.baseTx = f.tx;
          f.baseRx = f.rx;
        }
      }
      account(
        await run(
          p,
          dump(
            t,
            flows.filter((f) => f.alive),
          ),
        ),
      );
      for (let step = 0; step < 400; step++) {
        t += 100;
        const r = random();
        if (r < 0.15) {
          const f = born(false);
          byKey.set(`${f.port}/${f.id}`, f);
          if (eventsOn && random() < 0.7) account(await run(p, events(t, [opened(f.port, { id: f.id })])));
        } else if (r < 0.6) {
          const live = flows.filter((f) => f.alive);
          if (live.length === 0) continue;
          const f = live[Math.floor(random() * live.length)];
          f.tx += Math.floor(random() * 2000);
          f.rx += Math.floor(random() * 2000);
        } else if (r < 0.75) {
          const live = flows.filter((f) => f.alive);
          if (live.length === 0) continue;
          const f = live[Math.floor(random() * live.length)];
          f.alive = false;
          // With events off, a closed flow just vanishes: its bytes since the last dump are lost.
          if (eventsOn) {
            account(await run(p, closeEvent(f)));
            if (random() < 0.2) account(await run(p, closeEvent(f)));
            if (random() < 0.3) await reuse(f);
          }
        } else {
          // A dump, sometimes processed only after a few more events (so it is stale by then).
          const b = dump(
            t,
            flows.filter((f) => f.alive),
          );
          if (random() < 0.3 && eventsOn) {
            t += 1;
            const live = flows.filter((f) => f.alive);
            for (const f of live.slice(0, 2)) {
              f.tx += 10;
              f.alive = false;
              account(await run(p, closeEvent(f)));
              // The stale dump lists the old connection on a key that is now the new one's.
              if (random() < 0.5) await reuse(f);
            }
            // Born after the dump was read, NEW processed before the dump: not in it, and not gone.
            const f = born(false);
            byKey.set(`${f.port}/${f.id}`, f);
            account(await run(p, events(t, [opened(f.port, { id: f.id })])));
            f.tx += 7;
          }
          account(await run(p, b));
        }
      }
      // Two final dumps: a reused key's first dump after its NEW is held back, the next one reports it.
      for (let k = 0; k < 2; k++) {
        t += 100;
        account(
          await run(
            p,
            dump(
              t,
              flows.filter((f) => f.alive),
            ),
          ),
        );
      }
      if (eventsOn) {
        for (const f of flows) {
          expect(f.emittedTx, `seed ${seed} flow ${f.port}`).toBe(f.tx - f.baseTx);
          expect(f.emittedRx, `seed ${seed} flow ${f.port}`).toBe(f.rx - f.baseRx);
        }
      } else {
        for (const f of flows) {
          expect(f.emittedTx).toBeLessThanOrEqual(f.tx - f.baseTx);
          if (f.alive) expect(f.emittedTx, `seed ${seed} flow ${f.port}`).toBe(f.tx - f.baseTx);
        }
      }
    }
  });
});

describe('delta processor state file', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'netmon-delta-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const config = { state_file: 'var/delta.state' };
  const stateFile = () => join(dir, 'var/delta.state');

  it('is on disk before the deltas of a snapshot are passed on, and a restarted agent continues exactly', async () => {
    const a = processor(config, dir);
    await a.start();
    await run(
      a,
      snap(T0, [
        { port: 1, tx: 1000 },
        { port: 2, tx: 2000, id: 9 },
      ]),
    );
    await run(a, snap(T0, [{ port: 1, tx: 70 }], 'conntrack/b'));
    expect(
      tx(
        await run(
          a,
          snap(T0 + S, [
            { port: 1, tx: 1500 },
            { port: 2, tx: 2100, id: 9 },
          ]),
        ),
      ),
    ).toEqual({
      1: 500,
      2: 100,
    });
    // The file holds the baselines of what was just passed on.
    const saved = decodeCheckpoint(await readFile(stateFile()));
    expect(
      saved.map((o) => [o.origin, o.table.count, o.generation, o.baselinePhase, o.lastSnapshotTime]),
    ).toEqual([
      ['conntrack', 2, 2, false, T0 + S],
      ['conntrack/b', 1, 1, false, T0],
    ]);
    // A DESTROY after the last write; then kill -9 (no shutdown).
    expect(tx(await run(a, events(T0 + S + 10, [closed(2, 2300, { id: 9 })])))).toEqual({ 2: 200 });

    const b = processor(config, dir);
    await b.start();
    expect(b.trackedFlows('conntrack')).toBe(2);
    // Flow 1 continues from its saved baseline, flow 3 was born after the write (counts whole), flow 2 is
    // closed (its DESTROY is in the journal): neither the snapshot nor a repeated DESTROY counts it again.
    expect(
      rows(
        await run(
          b,
          snap(T0 + 2 * S, [
            { port: 1, tx: 1600 },
            { port: 3, tx: 30, start: T0 + S + 5 },
          ]),
        ),
      ),
    ).toEqual([
      { port: 1, tx: 100, rx: 1000, txp: 1, rxp: 2, start: T0 + S, end: T0 + 2 * S },
      { port: 3, tx: 30, rx: 300, txp: 1, rxp: 1, start: T0 + S + 5, end: T0 + 2 * S },
    ]);
    expect(await run(b, events(T0 + 2 * S + 1, [closed(2, 2300, { id: 9 })]))).toBeNull();
    // A restored origin is past its baseline phase: a DESTROY of an unknown flow counts whole.
    expect(tx(await run(b, events(T0 + S + 1, [closed(4, 44)], 'conntrack/b')))).toEqual({ 4: 44 });
    expect(b.counts.preexistingClosed).toBe(0);
    await b.shutdown();
    await a.shutdown();
  });

  /** Runs the batches that precede a kill -9 in the journal tests; returns what each passed on. */
  async function beforeKill(a: DeltaProcessor): Promise<Record<number, number>[]> {
    const out: Record<number, number>[] = [];
    await run(
      a,
      snap(T0, [
        { port: 1, tx: 1000 },
        { port: 2, tx: 2000 },
        { port: 4, tx: 10 },
      ]),
    );
    out.push(
      tx(
        await run(
          a,
          snap(T0 + S, [
            { port: 1, tx: 1500 },
            { port: 2, tx: 2100 },
            { port: 4, tx: 10 },
          ]),
        ),
      ),
    );
    // After the last snapshot: a dump with skipped rows (plain readings), a DESTROY, a key reused (its
    // NEW has nothing to pass on, so it is not waited for: the next append queues behind it), and a flow
    // born and closed between reads.
    out.push(tx(await run(a, events(T0 + S + 5, [{ port: 1, tx: 1700 }]))));
    out.push(tx(await run(a, events(T0 + S + 10, [closed(2, 2300)]))));
    out.push(tx(await run(a, events(T0 + S + 20, [closed(4, 15)]))));
    expect(await run(a, events(T0 + S + 30, [opened(4)]))).toBeNull();
    out.push(tx(await run(a, events(T0 + S + 40, [closed(5, 9)]))));
    return out;
  }

  it('after kill -9, a restarted agent reports nothing again that event batches and plain readings passed on', async () => {
    const a = processor(config, dir);
    await a.start();
    expect(await beforeKill(a)).toEqual([{ 1: 500, 2: 100 }, { 1: 200 }, { 2: 200 }, { 4: 5 }, { 5: 9 }]);
    // The state file is the last snapshot's; what came after is in its journal.
    expect(decodeCheckpoint(await readFile(stateFile()))[0].table.count).toBe(3);
    // A 16-byte header, then per batch a frame: 8 + 8 bytes of header, the origin's 32 and its name's 16,
    // and the one record the batch changed.
    expect((await stat(`${stateFile()}.journal`)).size).toBe(16 + 5 * (8 + 8 + 32 + 16 + 56));

    // kill -9: no shutdown.
    const logs: LogLine[] = [];
    const b = processor(config, dir, { logs });
    await b.start();
    expect(logs.find((l) => l.msg === 'state restored')).toMatchObject({
      journal_frames: 5,
      journal_records: 5,
    });
    expect(b.trackedFlows('conntrack')).toBe(4);
    // Flow 1 from its plain reading's baseline; flow 4's new connection from zero, at the first dump (it
    // began after the NEW, which came before the restart).
    expect(
      tx(
        await run(
          b,
          snap(T0 + 2 * S, [
            { port: 1, tx: 1800 },
            { port: 4, tx: 70 },
          ]),
        ),
      ),
    ).toEqual({ 1: 100, 4: 70 });
    // Closed flows stay closed.
    expect(await run(b, events(T0 + 2 * S + 1, [closed(2, 2300), closed(5, 9)]))).toBeNull();
    await b.shutdown();
    // The state file now holds it all; its journal is gone.
    await expect(stat(`${stateFile()}.journal`)).rejects.toThrow(/ENOENT/);
    await a.shutdown();
  });

  it('while writes fail, event batches do not try a full rewrite each; the next snapshot tries again', async () => {
    const a = processor(config, dir);
    await a.start();
    await run(a, snap(T0, [{ port: 1, tx: 1000 }]));
    // The state file's folder becomes a file: every write from now on fails (root ignores permissions).
    await rm(join(dir, 'var'), { recursive: true, force: true });
    await writeFile(join(dir, 'var'), 'not a folder');
    expect(tx(await run(a, snap(T0 + S, [{ port: 1, tx: 1500 }])))).toEqual({ 1: 500 });
    expect(a.counts.checkpointFailures).toBe(1);
    for (let k = 1; k <= 5; k++) {
      expect(tx(await run(a, events(T0 + S + k, [closed(10 + k, 7)])))).toEqual({ [10 + k]: 7 });
    }
    expect(a.counts.checkpointFailures).toBe(1);
    await rm(join(dir, 'var'));
    await run(a, snap(T0 + 2 * S, [{ port: 1, tx: 1600 }]));
    expect(a.counts.checkpointFailures).toBe(1);
    expect(decodeCheckpoint(await readFile(stateFile()))[0].table.count).toBeGreaterThan(0);
    await a.shutdown();
  });

  it('ignores the end of a journal cut short by a crash, and a journal of an older state file', async () => {
    const a = processor(config, dir);
    await a.start();
    await beforeKill(a);
    const journal = await readFile(`${stateFile()}.journal`);
    // Killed while appending the last frame: its deltas were not passed on, so it is not needed.
    await writeFile(`${stateFile()}.journal`, journal.subarray(0, journal.length - 5));
    const logs: LogLine[] = [];
    const b = processor(config, dir, { logs });
    await b.start();
    const note = logs.find((l) => l.msg === 'part of the state file journal is not used');
    expect(note?.level).toBe(30);
    expect(note?.problem).toMatch(/incomplete frame/);
    expect(note?.frames_used).toBe(4);
    // Flow 5 is unknown again: its DESTROY (the batch that was being written) counts when it comes.
    expect(tx(await run(b, events(T0 + S + 40, [closed(5, 9)])))).toEqual({ 5: 9 });
    await b.shutdown();

    // A crash after the state file was rewritten but before the old journal was removed.
    await writeFile(`${stateFile()}.journal`, journal);
    const quiet: LogLine[] = [];
    const c = processor(config, dir, { logs: quiet });
    await c.start();
    expect(quiet.find((l) => l.msg === 'part of the state file journal is not used')?.problem).toMatch(
      /older state file/,
    );
    expect(quiet.find((l) => l.msg === 'state restored')).toMatchObject({ journal_frames: 0 });
    expect(c.trackedFlows('conntrack')).toBe(4);
    await c.shutdown();
    await a.shutdown();
  });

  it('with checkpoint_interval, event batches rewrite the state file when a write is due, and keep no journal', async () => {
    const a = processor({ ...config, checkpoint_interval: '1h' }, dir);
    await a.start();
    expect(
      tx(await run(a, events(T0, [closed(1, 50, { flags: FlowFlags.Closed | FlowFlags.Opened })]))),
    ).toEqual({
      1: 50,
    });
    const first = await readFile(stateFile());
    expect(decodeCheckpoint(first)[0].table.count).toBe(1);
    await run(a, snap(T0 + S, [{ port: 2, tx: 5 }]));
    await run(a, events(T0 + S + 1, [closed(2, 9)]));
    expect(await readFile(stateFile())).toEqual(first);
    await expect(stat(`${stateFile()}.journal`)).rejects.toThrow(/ENOENT/);
    await a.shutdown();
  });

  it('writes the state on shutdown, tombstones and baseline phases included', async () => {
    const a = processor(config, dir);
    await a.start();
    await run(a, snap(T0, [{ port: 1, tx: 1000 }]));
    await run(a, events(T0 + 1, [closed(1, 1200)]));
    // An origin that has not had its first snapshot yet.
    await run(a, events(T0 + 2, [opened(5)], 'conntrack/new'));
    await a.shutdown();
    await a.shutdown();

    const b = processor(config, dir);
    await b.start();
    expect(await run(b, events(T0 + 3, [closed(1, 1200)]))).toBeNull();
    // Still in its baseline phase: an old flow's DESTROY is dropped, the Opened one counts from zero.
    expect(await run(b, events(T0 + 4, [closed(6, 600)], 'conntrack/new'))).toBeNull();
    expect(tx(await run(b, events(T0 + 5, [closed(5, 50)], 'conntrack/new')))).toEqual({ 5: 50 });
    expect(await run(b, snap(T0 + 6, [{ port: 7, tx: 700 }], 'conntrack/new'))).toBeNull();
    await b.shutdown();
  });

  it('does not overwrite the state file when shut down without being started', async () => {
    const a = processor(config, dir);
    await a.start();
    await run(a, snap(T0, [{ port: 1, tx: 1000 }]));
    await a.shutdown();
    const before = await readFile(stateFile());
    await processor(config, dir).shutdown();
    expect(await readFile(stateFile())).toEqual(before);
  });

  it('writes at most once per checkpoint_interval, and always on shutdown', async () => {
    const a = processor({ ...config, checkpoint_interval: '1h' }, dir);
    await a.start();
    await run(a, snap(T0, [{ port: 1, tx: 1000 }]));
    const first = await readFile(stateFile());
    await run(
      a,
      snap(T0 + S, [
        { port: 1, tx: 1000 },
        { port: 2, tx: 1 },
      ]),
    );
    expect(await readFile(stateFile())).toEqual(first);
    await a.shutdown();
    expect(decodeCheckpoint(await readFile(stateFile()))[0].table.count).toBe(2);
  });

  it.each([
    ['garbage', (_good: Buffer) => Buffer.from('hello, world: not a state file at all'), /wrong magic/],
    ['truncated', (good: Buffer) => good.subarray(0, good.length - 13), /checksum mismatch/],
    ['shorter than its header', (good: Buffer) => good.subarray(0, 20), /truncated/],
    [
      'of another version',
      (good: Buffer) => {
        const b = Buffer.from(good);
        b.writeUInt32LE(99, 8);
        return b;
      },
      /version 99/,
    ],
    [
      'damaged',
      (good: Buffer) => {
        const b = Buffer.from(good);
        b[b.length - 3] ^= 0x40;
        return b;
      },
      /checksum/,
    ],
  ])('sets aside a state file that is %s, says why, and starts afresh', async (_name, spoil, reason) => {
    const a = processor(config, dir);
    await a.start();
    await run(a, snap(T0, [{ port: 1, tx: 1000 }]));
    await a.shutdown();
    const bad = spoil(await readFile(stateFile()));
    await writeFile(stateFile(), bad);
    const logs: LogLine[] = [];
    const b = processor(config, dir, { logs });
    await b.start();
    const warning = logs.find((l) => l.level === 40);
    expect(warning?.msg).toContain(stateFile());
    expect(warning?.msg).toMatch(reason);
    expect(warning?.moved_to).toBe(`${stateFile()}.corrupt`);
    expect(await readFile(`${stateFile()}.corrupt`)).toEqual(bad);
    // Fresh: the first snapshot is a baseline again, and what that loses is counted.
    expect(await run(b, snap(T0 + S, [{ port: 1, tx: 1500 }]))).toBeNull();
    expect(b.counts.rebaselined).toBe(1);
    await b.shutdown();
    expect(decodeCheckpoint(await readFile(stateFile()))[0].table.count).toBe(1);
  });

  it('reports a path it cannot write in validate, and at run time counts, warns and goes on', async () => {
    await writeFile(join(dir, 'blocker'), 'a file, not a directory');
    const bad = { state_file: 'blocker/delta.state' };
    const issues = await deltaProcessorFactory.validate?.(deltaProcessorConfig.parse(bad), {
      configDir: dir,
    });
    expect(issues).toEqual([
      { key: 'state_file', message: expect.stringContaining('blocker is not a directory') },
    ]);
    expect(
      await deltaProcessorFactory.validate?.(deltaProcessorConfig.parse({ state_file: '.' }), {
        configDir: dir,
      }),
    ).toEqual([{ key: 'state_file', message: expect.stringContaining('is a directory') }]);
    expect(
      await deltaProcessorFactory.validate?.(deltaProcessorConfig.parse({ state_file: 'new/sub/x.state' }), {
        configDir: dir,
      }),
    ).toEqual([]);
    expect(
      await deltaProcessorFactory.validate?.(deltaProcessorConfig.parse({}), { configDir: dir }),
    ).toEqual([]);

    // At start, the same: refused with the reason, before anything is read or written.
    await expect(processor(bad, dir).start()).rejects.toThrow(
      `unusable state_file: cannot create ${join(dir, 'blocker/delta.state')}: ${join(dir, 'blocker')} is not a directory`,
    );

    // A path that breaks while running: counted, warned, reported; deltas go on.
    await rm(join(dir, 'blocker'));
    const board = new StatusBoard();
    const logs: LogLine[] = [];
    const p = processor(bad, dir, { logs, board });
    const [state] = board.all();
    board.set(state, 'starting');
    board.set(state, 'ok');
    await p.start();
    await writeFile(join(dir, 'blocker'), 'a file, not a directory');
    await run(p, snap(T0, [{ port: 1, tx: 1000 }]));
    expect(tx(await run(p, snap(T0 + S, [{ port: 1, tx: 1100 }])))).toEqual({ 1: 100 });
    expect(p.counts.checkpointFailures).toBe(2);
    // One warning for the same error, however often it repeats.
    expect(logs.filter((l) => l.level === 40)).toHaveLength(1);
    expect(logs.find((l) => l.level === 40)?.path).toBe(join(dir, 'blocker/delta.state'));
    await new Promise((r) => setImmediate(r));
    expect(state.status).toBe('recoverable_error');
    expect(state.lastError).toContain('cannot write the state file');
    await p.shutdown();
  });

  it('warns when two running instances share a state file (one processor listed in two pipelines)', async () => {
    const logs: LogLine[] = [];
    const a = processor(config, dir);
    const b = processor(config, dir, { logs });
    await a.start();
    await b.start();
    expect(logs.find((l) => l.level === 40)?.msg).toMatch(
      /another delta processor .* uses the same state_file/,
    );
    await a.shutdown();
    await b.shutdown();
    const quiet: LogLine[] = [];
    const c = processor(config, dir, { logs: quiet });
    await c.start();
    expect(quiet.filter((l) => l.level >= 40)).toEqual([]);
    await c.shutdown();
  });

  it('creates missing directories', async () => {
    const p = processor({ state_file: 'a/b/c/delta.state' }, dir);
    await p.start();
    await run(p, snap(T0, [{ port: 1, tx: 1 }]));
    expect((await stat(join(dir, 'a/b/c/delta.state'))).size).toBeGreaterThan(32);
    await p.shutdown();
  });

  describe('a state it cannot use or trust', () => {
    const journalFile = () => `${stateFile()}.journal`;
    const validate = (state_file: string) =>
      deltaProcessorFactory.validate?.(deltaProcessorConfig.parse({ state_file }), { configDir: dir });
    /** A reader blocked on a FIFO gets a writer and EOF, so that nothing stays blocked after a test. */
    const release = (fifo: string) => {
      try {
        closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK));
      } catch {
        // No reader: nothing is blocked.
      }
    };

    it('validate refuses a state file, journal or temporary file that is not a regular file, naming the key and the path', async () => {
      await mkdir(join(dir, 'var'));
      await mkdir(journalFile());
      expect(await validate('var/delta.state')).toEqual([
        { key: 'state_file', message: `${journalFile()} is a directory, not a regular file` },
      ]);
      await rm(journalFile(), { recursive: true });
      await mkdir(`${stateFile()}.tmp`);
      expect(await validate('var/delta.state')).toEqual([
        { key: 'state_file', message: `${stateFile()}.tmp is a directory, not a regular file` },
      ]);
      await rm(`${stateFile()}.tmp`, { recursive: true });
      execFileSync('mkfifo', [stateFile()]);
      expect(await validate('var/delta.state')).toEqual([
        { key: 'state_file', message: `${stateFile()} is a FIFO (named pipe), not a regular file` },
      ]);
      await rm(stateFile());
      const server = createServer();
      await new Promise<void>((done) => server.listen(journalFile(), done));
      try {
        expect(await validate('var/delta.state')).toEqual([
          { key: 'state_file', message: `${journalFile()} is a socket, not a regular file` },
        ]);
      } finally {
        await new Promise((done) => server.close(done));
      }
      await writeFile(stateFile(), '');
      await writeFile(journalFile(), '');
      expect(await validate('var/delta.state')).toEqual([]);
    });

    it('refuses to start on a journal path that is a directory, with a clear error instead of failing every batch', async () => {
      await mkdir(journalFile(), { recursive: true });
      const p = processor(config, dir);
      const refusal = `unusable state_file: ${journalFile()} is a directory, not a regular file`;
      await expect(p.start()).rejects.toThrow(refusal);
      // A batch handed over without a successful start (a tool) fails with that error, not a nonsense one.
      await expect(run(p, snap(T0, [{ port: 1, tx: 1 }]))).rejects.toThrow(refusal);
      await p.shutdown();
      expect((await stat(journalFile())).isDirectory()).toBe(true);
      await expect(stat(stateFile())).rejects.toThrow(/ENOENT/);
    });

    it('refuses to start on a state file that is a FIFO instead of waiting for a writer forever', async () => {
      await mkdir(join(dir, 'var'));
      execFileSync('mkfifo', [stateFile()]);
      const p = processor(config, dir);
      try {
        const outcome = await Promise.race([
          p.start().then(
            () => 'started',
            (err: Error) => err.message,
          ),
          new Promise((done) => setTimeout(() => done('still starting after 3 s'), 3000)),
        ]);
        expect(outcome).toBe(
          `unusable state_file: ${stateFile()} is a FIFO (named pipe), not a regular file`,
        );
      } finally {
        release(stateFile());
        await p.shutdown().catch(() => undefined);
      }
    });

    it('a journal path turned into a directory at run time is a failed write (counted, reported, deltas go on) until it is fixed', async () => {
      const board = new StatusBoard();
      const logs: LogLine[] = [];
      const p = processor(config, dir, { logs, board });
      const [state] = board.all();
      board.set(state, 'starting');
      board.set(state, 'ok');
      await p.start();
      await run(p, snap(T0, [{ port: 1, tx: 1000 }]));
      expect(
        tx(await run(p, events(T0 + 1, [closed(2, 50, { flags: FlowFlags.Opened | FlowFlags.Closed })]))),
      ).toEqual({ 2: 50 });
      await rm(journalFile());
      await mkdir(journalFile());
      expect(tx(await run(p, snap(T0 + S, [{ port: 1, tx: 1500 }])))).toEqual({ 1: 500 });
      expect(p.counts.checkpointFailures).toBe(1);
      const warnings = logs.filter((l) => l.level === 40);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatchObject({
        path: stateFile(),
        err: 'EISDIR (illegal operation on a directory)',
      });
      await new Promise((r) => setImmediate(r));
      expect(state.status).toBe('recoverable_error');
      expect(state.lastError).toBe(
        `cannot write the state file ${stateFile()}: EISDIR (illegal operation on a directory)`,
      );
      await rm(journalFile(), { recursive: true });
      expect(tx(await run(p, snap(T0 + 2 * S, [{ port: 1, tx: 1600 }])))).toEqual({ 1: 100 });
      expect(p.counts.checkpointFailures).toBe(1);
      expect(state.status).toBe('ok');
      await p.shutdown();
    });

    /** Where frame k (from 1) of the journal `beforeKill` leaves begins: 16-byte header, 120-byte frames. */
    const frameAt = (k: number) => 16 + (k - 1) * 120;
    const flip = (j: Buffer, at: number) => {
      j[at] ^= 0x20;
    };
    /** Warnings and errors, but for the one an in-process kill -9 causes (two instances on one file). */
    const problems = (logs: LogLine[]) =>
      logs.filter((l) => l.level >= 40 && !l.msg.startsWith('another delta processor'));

    /**
     * Runs `beforeKill`, spoils the journal it left (kill -9: no shutdown) and restarts; returns the
     * restarted processor, its logs and what the two runs passed on per flow (tx bytes).
     */
    async function restartAfter(spoil: (journal: Buffer) => Buffer | undefined, meter?: MeterProvider) {
      const a = processor(config, dir);
      await a.start();
      const passed: Record<number, number> = {};
      const add = (out: Record<number, number>) => {
        for (const [port, n] of Object.entries(out)) passed[+port] = (passed[+port] ?? 0) + n;
      };
      for (const out of await beforeKill(a)) add(out);
      const journal = await readFile(journalFile());
      await writeFile(journalFile(), spoil(journal) ?? journal);
      const logs: LogLine[] = [];
      const b = processor(config, dir, { logs, meter });
      await b.start();
      return { a, b, logs, passed, add };
    }

    it.each([
      ['its first frame damaged', (j: Buffer) => flip(j, frameAt(1) + 70), /checksum mismatch in frame 1/],
      ['a middle frame damaged', (j: Buffer) => flip(j, frameAt(3) + 100), /checksum mismatch in frame 3/],
      [
        'the length of its first frame damaged (so that it looks cut short)',
        (j: Buffer) => {
          j.writeUInt32LE(112 + 40 * 56, frameAt(1));
        },
        /frame 1 /,
      ],
      [
        'the length of a middle frame zeroed',
        (j: Buffer) => {
          j.writeUInt32LE(0, frameAt(2));
        },
        /frame 2 /,
      ],
      [
        'garbage after its frames',
        (j: Buffer) => Buffer.concat([j, Buffer.from('not a frame at all')]),
        /frame 6 /,
      ],
      ['a wrong magic', (j: Buffer) => j.write('NOTAJRNL', 0, 'latin1'), /not a journal/],
      [
        'a format version this netmon does not know',
        (j: Buffer) => {
          j.writeUInt32LE(7, 8);
        },
        /version 7/,
      ],
    ])(
      'with %s, never counts twice: every flow’s next reading is a new baseline, counted and logged once',
      async (_name, spoil, problem) => {
        const reader = new TestReader();
        const provider = new MeterProvider({ readers: [reader] });
        const { a, b, logs, passed, add } = await restartAfter((j) => {
          const out = spoil(j);
          return Buffer.isBuffer(out) ? out : undefined;
        }, provider);
        const warnings = problems(logs);
        expect(warnings).toHaveLength(1);
        expect(warnings[0]).toMatchObject({
          path: journalFile(),
          problem: expect.stringMatching(problem),
          moved_to: `${stateFile()}.untrusted`,
          journal_moved_to: `${journalFile()}.untrusted`,
        });
        expect(warnings[0].msg).toContain(journalFile());
        expect(b.trackedFlows('conntrack')).toBe(0);
        // The kernel's counters now: flow 1 at 1800 (1000 when the agent first saw it), flow 4's new
        // connection at 70. What the lost journal held was passed on already: nothing is emitted.
        expect(
          await run(
            b,
            snap(T0 + 2 * S, [
              { port: 1, tx: 1800 },
              { port: 4, tx: 70 },
            ]),
          ),
        ).toBeNull();
        expect(b.counts.rebaselined).toBe(2);
        add(
          tx(
            await run(
              b,
              snap(T0 + 3 * S, [
                { port: 1, tx: 1900 },
                { port: 4, tx: 80 },
              ]),
            ),
          ),
        );
        // One interval lost, nothing twice: flow 1 passed on 900 of its 900 bytes less the lost 100.
        expect(passed).toEqual({ 1: 800, 2: 300, 4: 15, 5: 9 });
        const { resourceMetrics } = await reader.collect();
        const point = resourceMetrics.scopeMetrics
          .flatMap((sm) => sm.metrics)
          .find((m) => m.descriptor.name === 'netmon_delta_flows_rebaselined')?.dataPoints[0];
        expect(point?.value).toBe(2);
        expect(point?.attributes).toEqual({
          origin: 'conntrack',
          reason: expect.stringMatching(/^journal_(damaged|version)$/),
        });
        await b.shutdown();
        await a.shutdown();
        await provider.shutdown();
      },
    );

    it('after a journal it did not trust, a second kill -9 before any write does not bring the old state back', async () => {
      const { a, b } = await restartAfter((j) => {
        flip(j, frameAt(1) + 70);
        return j;
      });
      // kill -9 of b before it wrote anything.
      const c = processor(config, dir);
      await c.start();
      expect(c.trackedFlows('conntrack')).toBe(0);
      expect(await run(c, snap(T0 + 2 * S, [{ port: 1, tx: 1800 }]))).toBeNull();
      await c.shutdown();
      await b.shutdown();
      await a.shutdown();
    });

    it.each([
      ['cut in its last frame', (j: Buffer) => j.subarray(0, j.length - 5)],
      ['cut in the header of its last frame', (j: Buffer) => j.subarray(0, frameAt(5) + 3)],
      ['cut right after the header of its last frame', (j: Buffer) => j.subarray(0, frameAt(5) + 8 + 20)],
      [
        'zeros where its last frame was (a power cut before the data reached the disk)',
        (j: Buffer) => Buffer.concat([j.subarray(0, frameAt(5)), Buffer.alloc(4096)]),
      ],
    ])(
      'with a journal %s (a crash while appending), uses every frame before it, exactly',
      async (_name, cut) => {
        const { a, b, logs, passed, add } = await restartAfter(cut);
        expect(problems(logs)).toEqual([]);
        expect(logs.find((l) => l.msg === 'part of the state file journal is not used')?.frames_used).toBe(4);
        expect(b.trackedFlows('conntrack')).toBe(3);
        // The batch being appended (flow 5's DESTROY) was never passed on: it counts when it comes again.
        passed[5] = 0;
        add(tx(await run(b, events(T0 + S + 40, [closed(5, 9)]))));
        add(
          tx(
            await run(
              b,
              snap(T0 + 2 * S, [
                { port: 1, tx: 1800 },
                { port: 4, tx: 70 },
              ]),
            ),
          ),
        );
        expect(passed).toEqual({ 1: 800, 2: 300, 4: 75, 5: 9 });
        expect(b.counts.rebaselined).toBe(0);
        await b.shutdown();
        await a.shutdown();
      },
    );

    it('does not trust a journal newer than its state file (the state file replaced by an older copy)', async () => {
      const a = processor(config, dir);
      await a.start();
      await run(a, snap(T0, [{ port: 1, tx: 1000 }]));
      const older = await readFile(stateFile());
      expect(tx(await run(a, snap(T0 + S, [{ port: 1, tx: 1500 }])))).toEqual({ 1: 500 });
      expect(tx(await run(a, events(T0 + S + 5, [{ port: 1, tx: 1700 }])))).toEqual({ 1: 200 });
      // kill -9, and the state file of one snapshot earlier is put back (a restored backup).
      await writeFile(stateFile(), older);
      const logs: LogLine[] = [];
      const b = processor(config, dir, { logs });
      await b.start();
      expect(problems(logs)).toMatchObject([
        { path: journalFile(), problem: expect.stringMatching(/newer state file/) },
      ]);
      expect(await run(b, snap(T0 + 2 * S, [{ port: 1, tx: 1800 }]))).toBeNull();
      expect(b.counts.rebaselined).toBe(1);
      await b.shutdown();
      await a.shutdown();
    });

    it('does not trust the journal of another state file', async () => {
      const a = processor(config, dir);
      await a.start();
      await run(a, snap(T0, [{ port: 1, tx: 1000 }]));
      expect(tx(await run(a, snap(T0 + S, [{ port: 1, tx: 1500 }])))).toEqual({ 1: 500 });
      expect(tx(await run(a, events(T0 + S + 5, [{ port: 1, tx: 1700 }])))).toEqual({ 1: 200 });
      // kill -9; the journal is swapped for one naming a state file far from this one's line of writes.
      const own = checkpointId(await readFile(stateFile()));
      const journal = await readFile(journalFile());
      journal.writeUInt32LE((own + 2 ** 31) >>> 0 || 1, 12);
      await writeFile(journalFile(), journal);
      const logs: LogLine[] = [];
      const b = processor(config, dir, { logs });
      await b.start();
      expect(problems(logs)).toMatchObject([
        { path: journalFile(), problem: expect.stringMatching(/another state file/) },
      ]);
      expect(await run(b, snap(T0 + 2 * S, [{ port: 1, tx: 1800 }]))).toBeNull();
      await b.shutdown();
      await a.shutdown();
    });

    it('does not trust a journal whose state file is gone, and counts what the state file lost', async () => {
      const a = processor(config, dir);
      await a.start();
      await beforeKill(a);
      await rm(stateFile());
      const logs: LogLine[] = [];
      const b = processor(config, dir, { logs });
      await b.start();
      expect(problems(logs)).toMatchObject([
        { path: journalFile(), journal_moved_to: `${journalFile()}.untrusted` },
      ]);
      expect(await run(b, snap(T0 + 2 * S, [{ port: 1, tx: 1800 }]))).toBeNull();
      expect(b.counts.rebaselined).toBe(1);
      await b.shutdown();
      await a.shutdown();
    });
  });
});

class TestReader extends MetricReader {
  protected async onShutdown(): Promise<void> {}
  protected async onForceFlush(): Promise<void> {}
}

it('reports its self-metrics per origin', async () => {
  const reader = new TestReader();
  const provider = new MeterProvider({ readers: [reader] });
  const p = processor({}, undefined, { meter: provider });
  await run(p, events(T0 - 1, [closed(9, 5)]));
  await run(
    p,
    snap(T0, [
      { port: 1, tx: 1000 },
      { port: 2, tx: 1 },
    ]),
  );
  await run(p, snap(T0, [{ port: 1, tx: 1000 }], 'conntrack/b'));
  await run(p, snap(T0 + S, [{ port: 1, tx: 10 }]));
  await run(p, snap(T0 + 2 * S, [{ port: 1, tx: 10 }]));
  const { resourceMetrics } = await reader.collect();
  const metrics = resourceMetrics.scopeMetrics.flatMap((sm) => sm.metrics);
  const value = (name: string, origin?: string) =>
    metrics
      .find((m) => m.descriptor.name === name)
      ?.dataPoints.find((d) => origin === undefined || d.attributes.origin === origin)?.value;
  // Flow 1; flow 2 vanished (missing from two snapshots), and the tombstone of flow 9 is old enough to go.
  expect(value('netmon_delta_flows_tracked', 'conntrack')).toBe(1);
  expect(value('netmon_delta_flows_tracked', 'conntrack/b')).toBe(1);
  expect(value('netmon_delta_flows_vanished', 'conntrack')).toBe(1);
  expect(value('netmon_delta_flows_reset', 'conntrack')).toBe(1);
  expect(value('netmon_delta_preexisting_closed', 'conntrack')).toBe(1);
  expect(value('netmon_delta_checkpoint_failures')).toBe(0);
  expect(value('netmon_delta_state_bytes')).toBe(p.stateBytes);
  await p.shutdown();
  await provider.shutdown();
});
