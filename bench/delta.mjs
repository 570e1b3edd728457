// delta processor: throughput over conntrack-like cumulative snapshots, state memory per tracked flow,
// and state-file write/load times, on the built packages.
//   make build && .tools/bin/node --expose-gc bench/delta.mjs
// FLOWS=100000,1000000 ROUNDS=5 by default. Prints one line per measurement; docs/PERFORMANCE.md keeps
// the figures.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { FlowBatch, FlowFlags } from '@netmon/core';
import { deltaProcessorFactory } from '@netmon/processors';
import { report, rng, settings } from './common.mjs';

const SIZES = (process.env.FLOWS ?? '100000,1000000').split(',').map(Number);
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const t0 = Date.parse('2026-01-01T00:00:00Z');

const create = (config, dir) =>
  deltaProcessorFactory.create(
    settings('processor', 'delta', { configDir: dir }),
    deltaProcessorFactory.config.parse(config),
    'flows',
  );

/** A full dump of n flows with random IPv4 tuples and conntrack ids, as the conntrack receiver fills it. */
function makeSnapshot(n, seed) {
  const next = rng(seed);
  const b = new FlowBatch(n, 'cumulative');
  b.length = n;
  b.snapshot = true;
  b.origin = 'conntrack';
  const id = b.ensureColumn('conntrack.id', 'number');
  const zone = b.ensureColumn('conntrack.zone', 'number');
  const mark = b.ensureColumn('conntrack.mark', 'number');
  for (let i = 0; i < n; i++) {
    const o = 16 * i;
    b.family[i] = 4;
    b.protocol[i] = next() & 1 ? 6 : 17;
    b.srcAddr[o + 10] = b.srcAddr[o + 11] = b.dstAddr[o + 10] = b.dstAddr[o + 11] = 0xff;
    const s = next();
    const d = next();
    b.srcAddr[o + 12] = 10;
    b.srcAddr[o + 13] = s >>> 16;
    b.srcAddr[o + 14] = s >>> 8;
    b.srcAddr[o + 15] = s;
    b.dstAddr[o + 12] = d >>> 24;
    b.dstAddr[o + 13] = d >>> 16;
    b.dstAddr[o + 14] = d >>> 8;
    b.dstAddr[o + 15] = d;
    b.srcPort[i] = 32768 + (next() % 28000);
    b.dstPort[i] = [443, 80, 53, 5432, 6379][next() % 5];
    b.txBytes[i] = next() % 100_000;
    b.rxBytes[i] = next() % 1_000_000;
    b.txPackets[i] = 1 + (next() % 100);
    b.rxPackets[i] = 1 + (next() % 1000);
    b.flags[i] = FlowFlags.InitiatorKnown;
    b.timeStart[i] = 0;
    b.timeEnd[i] = t0;
    id.values[i] = next();
    zone.values[i] = 0;
    mark.values[i] = 0;
  }
  return b;
}

/** The next reading: every flow (or a share of them) grew, 10 s later. */
function grow(b, round, share, seed) {
  const next = rng(seed + round);
  const limit = Math.floor(share * 2 ** 32);
  for (let i = 0; i < b.length; i++) {
    if (next() < limit) {
      b.txBytes[i] += 1 + (next() % 10_000);
      b.rxBytes[i] += next() % 100_000;
      b.txPackets[i] += 1;
      b.rxPackets[i] += 2;
    }
    b.timeEnd[i] = t0 + 10_000 * round;
  }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function run(n) {
  const label = `${(n / 1000).toLocaleString('en-US')}k flows`;
  const batch = makeSnapshot(n, n);
  const p = await create({}, process.cwd());
  await p.start();
  let start = performance.now();
  const first = await p.process(batch);
  const baselineMs = performance.now() - start;
  if (first !== null) throw new Error('the baseline snapshot emitted deltas');
  report(`${label}: first snapshot (baseline, all inserts)`, n / (baselineMs / 1000), 'records/s');

  for (const share of [1, 0.1]) {
    const times = [];
    let emitted = 0;
    for (let r = 1; r <= ROUNDS; r++) {
      grow(batch, r + (share === 1 ? 0 : 100), share, n);
      start = performance.now();
      const out = await p.process(batch);
      times.push(performance.now() - start);
      emitted = out?.length ?? 0;
    }
    const ms = median(times);
    report(
      `${label}: later snapshot, ${share * 100}% of flows changed`,
      n / (ms / 1000),
      'records/s',
      `${ms.toFixed(0)} ms per snapshot, ${emitted.toLocaleString('en-US')} rows out`,
    );
  }

  // DESTROY events in batches of 1024 for 10% of the flows.
  const closes = Math.floor(n / 10);
  const ev = batch.select(Array.from({ length: closes }, (_, i) => i * 10));
  ev.snapshot = false;
  for (let i = 0; i < ev.length; i++) {
    ev.flags[i] |= FlowFlags.Closed;
    ev.txBytes[i] += 5;
  }
  start = performance.now();
  for (let off = 0; off < closes; off += 1024) {
    const part = ev.select(Array.from({ length: Math.min(1024, closes - off) }, (_, k) => off + k));
    part.snapshot = false;
    await p.process(part);
  }
  const evMs = performance.now() - start;
  report(`${label}: DESTROY events (1024 per batch)`, closes / (evMs / 1000), 'records/s');

  // State memory: typed arrays of the table (records + index, with spare capacity) per tracked flow.
  report(
    `${label}: state per tracked flow`,
    p.stateBytes / p.trackedFlows('conntrack'),
    'bytes',
    `${(p.stateBytes / 2 ** 20).toFixed(1)} MiB for ${p.trackedFlows('conntrack').toLocaleString('en-US')} entries`,
  );
  await p.shutdown();

  // State file: write (encode, write, fsync, rename, fsync of the directory) and load. shutdown() writes
  // the state once and does nothing else of note; start() loads it.
  const dir = mkdtempSync(path.join(tmpdir(), 'netmon-bench-delta-'));
  try {
    const w = await create({ state_file: 'delta.state' }, dir);
    await w.start();
    await w.process(batch);
    const writes = [];
    const loads = [];
    let current = w;
    for (let r = 0; r < 3; r++) {
      start = performance.now();
      await current.shutdown();
      writes.push(performance.now() - start);
      current = await create({ state_file: 'delta.state' }, dir);
      start = performance.now();
      await current.start();
      loads.push(performance.now() - start);
      if (current.trackedFlows('conntrack') !== n) throw new Error('the loaded state differs');
    }
    await current.shutdown();
    const size = statSync(path.join(dir, 'delta.state')).size;
    report(
      `${label}: state file write (encode, write, fsync, rename)`,
      median(writes),
      'ms',
      `${(size / 2 ** 20).toFixed(1)} MiB file`,
    );
    report(`${label}: state file load (read, check, rebuild the index)`, median(loads), 'ms');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

console.log(`node ${process.version}, ${ROUNDS} rounds per measurement (median), one core`);
// Warm-up (JIT), not reported.
const log = console.log;
console.log = () => {};
await run(20_000);
console.log = log;
for (const n of SIZES) await run(n);
