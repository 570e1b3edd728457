import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type Batch,
  type BatchSink,
  type ComponentSettings,
  encodeFlowRecords,
  FlowBatch,
  type FlowInit,
} from '@netmon/core';
import { CollectingSink, recordingMeter, testSettings } from '@netmon/core/testkit';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type FileReceiverConfig, fileReceiverConfig } from './config.js';
import { fileReceiverFactory } from './factory.js';
import { FileReceiver } from './receiver.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const SAMPLE = join(here, 'testdata', 'sample-flows.jsonl');
const T0 = Date.parse('2026-01-01T00:00:00.000Z');

interface LogEntry {
  level: string;
  fields: Record<string, unknown>;
  msg: string;
}

/** Settings whose logger records entries and whose meter hands out its observable callbacks. */
function recordingSettings(configDir = here) {
  const logs: LogEntry[] = [];
  const log =
    (level: string) =>
    (fields: Record<string, unknown>, msg = '') =>
      logs.push({ level, fields, msg });
  const logger = {
    trace: log('trace'),
    debug: log('debug'),
    info: log('info'),
    warn: log('warn'),
    error: log('error'),
    fatal: log('fatal'),
    child: () => logger,
  };
  const meter = recordingMeter();
  const settings: ComponentSettings = {
    ...testSettings('receiver', 'file', { configDir }),
    logger: logger as unknown as ComponentSettings['logger'],
    meter: meter.meter,
  };
  const observe = (name: string): number | undefined => meter.value(name);
  return { settings, logs, observe };
}

function receiver(
  config: Partial<Record<keyof FileReceiverConfig, unknown>>,
  sink: BatchSink = new CollectingSink(),
  settings = testSettings('receiver', 'file', { configDir: here }),
): FileReceiver {
  return new FileReceiver(settings, fileReceiverConfig.parse(config), sink);
}

const flowBatches = (sink: CollectingSink) => sink.batches as FlowBatch[];
const encode = (batches: FlowBatch[]) => batches.map((b) => encodeFlowRecords(b).join('')).join('');

/** Distinct time_end values in file order, with how many records each has. */
async function intervalsOf(path: string): Promise<[string, number][]> {
  const counts = new Map<string, number>();
  for (const line of (await readFile(path, 'utf8')).split('\n')) {
    if (line === '') continue;
    const end = JSON.parse(line).time_end as string;
    counts.set(end, (counts.get(end) ?? 0) + 1);
  }
  return [...counts];
}

describe('file receiver config', () => {
  it('fills defaults and requires path', () => {
    expect(fileReceiverConfig.parse({ path: 'x.jsonl' })).toEqual({
      path: 'x.jsonl',
      temporality: 'delta',
      batch_size: 4096,
      loop: false,
      pace: 'none',
      speed: 1,
      backpressure: true,
    });
    const missing = fileReceiverConfig.safeParse({});
    expect(missing.success).toBe(false);
    expect(missing.error?.issues[0].path).toEqual(['path']);
  });

  it('rejects loop with cumulative temporality, naming why', () => {
    const r = fileReceiverConfig.safeParse({ path: 'x', loop: true, temporality: 'cumulative' });
    expect(r.success).toBe(false);
    expect(r.error?.issues[0].path).toEqual(['loop']);
    expect(r.error?.issues[0].message).toMatch(/cumulative counters would go backwards/);
    expect(fileReceiverConfig.safeParse({ path: 'x', loop: true }).success).toBe(true);
    expect(fileReceiverConfig.safeParse({ path: 'x', temporality: 'cumulative' }).success).toBe(true);
  });

  it('rejects out-of-range values', () => {
    expect(fileReceiverConfig.safeParse({ path: 'x', batch_size: 0 }).success).toBe(false);
    expect(fileReceiverConfig.safeParse({ path: 'x', speed: 0 }).success).toBe(false);
    expect(fileReceiverConfig.safeParse({ path: 'x', pace: 'fast' }).success).toBe(false);
  });
});

describe('file receiver', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'netmon-file-receiver-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('replays the sample so that encoding the batches reproduces the file byte for byte', async () => {
    const sink = new CollectingSink();
    const r = receiver({ path: 'testdata/sample-flows.jsonl' }, sink);
    await r.start();
    await r.finished();
    await r.shutdown();
    const text = await readFile(SAMPLE, 'utf8');
    const lines = text.split('\n').filter((l) => l !== '').length;
    expect(r.recordsRead).toBe(lines);
    expect(r.malformedRecords).toBe(0);
    expect(sink.items).toBe(lines);
    expect(encode(flowBatches(sink))).toBe(text);
  });

  it('emits one batch per interval, in file order, marked with the configured temporality', async () => {
    const sink = new CollectingSink();
    const r = receiver({ path: SAMPLE, temporality: 'cumulative' }, sink);
    await r.start();
    await r.finished();
    const intervals = await intervalsOf(SAMPLE);
    expect(intervals.map(([end]) => end)).toEqual(
      [10, 20, 30, 40, 50, 60].map((s) => new Date(T0 + s * 1000).toISOString()),
    );
    const batches = flowBatches(sink);
    expect(batches.map((b) => [new Date(b.timeEnd[0]).toISOString(), b.length])).toEqual(intervals);
    for (const b of batches) expect(b.temporality).toBe('cumulative');
  });

  it('never mixes intervals in a batch and never exceeds batch_size', async () => {
    const sink = new CollectingSink();
    const r = receiver({ path: SAMPLE, batch_size: 4 }, sink);
    await r.start();
    await r.finished();
    const intervals = await intervalsOf(SAMPLE);
    const expectedBatches = intervals.reduce((n, [, count]) => n + Math.ceil(count / 4), 0);
    const batches = flowBatches(sink);
    expect(batches.length).toBe(expectedBatches);
    for (const b of batches) {
      expect(b.length).toBeGreaterThan(0);
      expect(b.length).toBeLessThanOrEqual(4);
      for (let i = 1; i < b.length; i++) expect(b.timeEnd[i]).toBe(b.timeEnd[0]);
    }
    expect(encode(batches)).toBe(await readFile(SAMPLE, 'utf8'));
  });

  it('splits a large interval into full batches of batch_size', async () => {
    const path = join(dir, 'big.jsonl');
    const flows: FlowInit[] = [];
    for (let i = 0; i < 10_000; i++) {
      flows.push({
        timeStart: T0,
        timeEnd: T0 + 10_000,
        protocol: 6,
        srcIp: `10.1.${i >> 8}.${i & 255}`,
        srcPort: 30000 + (i % 30000),
        dstIp: '10.2.0.1',
        dstPort: 443,
        txBytes: i,
        rxBytes: 2 * i,
      });
    }
    const text = encodeFlowRecords(FlowBatch.from(flows)).join('');
    await writeFile(path, text);
    const sink = new CollectingSink();
    const r = receiver({ path, batch_size: 4096 }, sink);
    await r.start();
    await r.finished();
    expect(flowBatches(sink).map((b) => b.length)).toEqual([4096, 4096, 1808]);
    expect(encode(flowBatches(sink))).toBe(text);
  });

  it('skips malformed lines, counts them, logs file:line, and keeps the good ones', async () => {
    const { settings, logs, observe } = recordingSettings();
    const sink = new CollectingSink();
    const r = receiver({ path: 'testdata/malformed.jsonl' }, sink, settings);
    await r.start();
    await r.finished();
    // Read while running: shutdown unregisters the metric.
    expect(observe('netmon_file_receiver_malformed_records')).toBe(7);
    await r.shutdown();

    const file = join(here, 'testdata', 'malformed.jsonl');
    const lines = (await readFile(file, 'utf8')).split('\n');
    expect(r.recordsRead).toBe(3);
    expect(r.malformedRecords).toBe(7);
    expect(encode(flowBatches(sink))).toBe(`${[lines[0], lines[2], lines[9]].join('\n')}\n`);
    // The malformed attribute kind did not become part of the batch either.
    expect(flowBatches(sink)[0].column('cost.usd')?.kind).toBe('number');

    const warned = logs.filter((l) => l.level === 'warn');
    // Only the first five are logged one by one; the rest are counted.
    expect(warned.map((l) => l.fields.line)).toEqual([2, 4, 5, 7, 8]);
    expect(warned[0].msg).toContain(`${file}:2: malformed flow record skipped: not JSON`);
    expect(warned[1].msg).toContain('unknown field "bytes"');
    expect(warned[2].msg).toContain('family: expected 4 or 6');
    expect(warned[3].msg).toContain('not an IP address');
    expect(warned[4].msg).toMatch(
      /attributes\.cost\.usd: a string value where earlier records hold number values/,
    );
    const finished = logs.filter((l) => l.msg === 'replay finished');
    expect(finished).toHaveLength(1);
    expect(finished[0].fields).toMatchObject({ records: 3, malformed: 7 });
  });

  it('logs malformed lines rate-limited: the first five, then every 1000th', async () => {
    const path = join(dir, 'junk.jsonl');
    await writeFile(path, 'x\n'.repeat(2500));
    const { settings, logs } = recordingSettings(dir);
    const r = receiver({ path }, new CollectingSink(), settings);
    await r.start();
    await r.finished();
    expect(r.malformedRecords).toBe(2500);
    expect(logs.filter((l) => l.level === 'warn').map((l) => l.fields.line)).toEqual([
      1, 2, 3, 4, 5, 1000, 2000,
    ]);
  });

  it('refuses to start when the file is missing, naming the resolved path', async () => {
    const r = receiver(
      { path: 'no/such/flows.jsonl' },
      new CollectingSink(),
      testSettings('receiver', 'file', { configDir: dir }),
    );
    await expect(r.start()).rejects.toThrow(
      `file receiver: cannot open ${join(dir, 'no/such/flows.jsonl')}: ENOENT`,
    );
    await r.shutdown();
  });

  it('refuses to start on a directory', async () => {
    const r = receiver({ path: dir });
    await expect(r.start()).rejects.toThrow(
      `file receiver: cannot open ${dir}: it is a directory, not a file`,
    );
  });

  it('with loop, replays again with every timestamp shifted by the file span per round', async () => {
    const sink = new CollectingSink();
    const r = receiver({ path: SAMPLE, loop: true }, sink);
    await r.start();
    const text = await readFile(SAMPLE, 'utf8');
    const n = text.split('\n').filter((l) => l !== '').length;
    await sink.waitForItems(3 * n);
    await r.shutdown();
    expect(sink.items).toBe(r.recordsRead);

    const records = encode(flowBatches(sink))
      .split('\n')
      .slice(0, 3 * n)
      .map((line) => JSON.parse(line));
    const originals = text.split('\n').map((line) => (line === '' ? null : JSON.parse(line)));
    const span = 60_000; // 00:00:00 .. 00:01:00
    const shifted = (time: string, round: number) => new Date(Date.parse(time) + round * span).toISOString();
    for (let i = 0; i < 3 * n; i++) {
      const round = Math.floor(i / n);
      const original = originals[i % n];
      expect(records[i]).toEqual({
        ...original,
        time_start: shifted(original.time_start, round),
        time_end: shifted(original.time_end, round),
      });
      if (i > 0)
        expect(Date.parse(records[i].time_end)).toBeGreaterThanOrEqual(Date.parse(records[i - 1].time_end));
    }
    expect(records[3 * n - 1].time_end).toBe('2026-01-01T00:03:00.000Z');
  });

  it('with loop over a file without records, stops instead of spinning', async () => {
    const path = join(dir, 'empty.jsonl');
    await writeFile(path, '\n\n');
    const { settings, logs } = recordingSettings(dir);
    const r = receiver({ path, loop: true }, new CollectingSink(), settings);
    await r.start();
    await r.finished();
    expect(logs.some((l) => l.level === 'warn' && l.msg.startsWith('loop stopped'))).toBe(true);
  });

  it('with pace: recorded, spaces the intervals by the recorded gaps divided by speed', async () => {
    const arrivals: [number, number][] = [];
    const sink: BatchSink = {
      consume: (b: Batch) => arrivals.push([(b as FlowBatch).timeEnd[0], performance.now()]),
      ready: () => Promise.resolve(),
    };
    const r = receiver({ path: SAMPLE, pace: 'recorded', speed: 200 }, sink); // 10 s → 50 ms
    await r.start();
    await r.finished();
    expect(arrivals.map(([end]) => end)).toEqual([1, 2, 3, 4, 5, 6].map((k) => T0 + 10_000 * k));
    const first = arrivals[0][1];
    // Timers fire at most about a millisecond early (libuv rounds its clock to whole milliseconds).
    for (let k = 1; k < arrivals.length; k++)
      expect(arrivals[k][1] - first).toBeGreaterThanOrEqual(50 * k - 2);
  });

  it('shutdown during a pacing wait clears the timer and emits everything already read', async () => {
    const timers = () => process.getActiveResourcesInfo().filter((x) => x === 'Timeout').length;
    const timersBefore = timers();
    const sink = new CollectingSink();
    const r = receiver({ path: SAMPLE, pace: 'recorded' }, sink); // 10 s between intervals
    await r.start();
    const intervals = await intervalsOf(SAMPLE);
    // Interval 2 goes out once the first record of interval 3 is read, after waiting for its turn.
    while (r.recordsRead < intervals[0][1] + intervals[1][1] + 1)
      await new Promise((done) => setTimeout(done, 5));
    await new Promise((done) => setTimeout(done, 20));
    expect(sink.items).toBe(intervals[0][1]);
    await r.shutdown();
    // Interval 2 (read in full, waiting) and the first record of interval 3 (read, partial) were emitted.
    expect(flowBatches(sink).map((b) => b.length)).toEqual([intervals[0][1], intervals[1][1], 1]);
    expect(timers()).toBe(timersBefore);
  });

  it('with backpressure, waits for ready() before every batch', async () => {
    let release: () => void = () => undefined;
    let readyCalls = 0;
    const consumed: number[] = [];
    const sink: BatchSink = {
      consume: (b) => consumed.push(b.length),
      ready: () => {
        readyCalls++;
        return readyCalls === 2 ? new Promise<void>((done) => (release = done)) : Promise.resolve();
      },
    };
    const r = receiver({ path: SAMPLE }, sink);
    await r.start();
    while (readyCalls < 2) await new Promise((done) => setTimeout(done, 5));
    await new Promise((done) => setTimeout(done, 30));
    expect(consumed.length).toBe(1); // held back by the pending ready()
    release();
    await r.finished();
    expect(consumed.length).toBe(6);
    expect(readyCalls).toBe(6);
  });

  it('without backpressure, never asks ready() and emits everything', async () => {
    let readyCalls = 0;
    const sink = new CollectingSink();
    sink.ready = () => {
      readyCalls++;
      return Promise.resolve();
    };
    const r = receiver({ path: SAMPLE, backpressure: false }, sink);
    await r.start();
    await r.finished();
    expect(readyCalls).toBe(0);
    expect(sink.batches.length).toBe(6);
  });

  it('shutdown is safe before start and twice', async () => {
    const r = receiver({ path: SAMPLE });
    await r.shutdown();
    await r.shutdown();
    await r.start(); // a stopped receiver reads nothing
    await r.finished();
    expect(r.recordsRead).toBe(0);
  });
});

describe('file receiver validation', () => {
  // The factory's validate hook: `netmon validate` must refuse what `start` would refuse.
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'netmon-file-receiver-validate-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const validate = (path: string) =>
    fileReceiverFactory.validate?.(fileReceiverConfig.parse({ path }), { configDir: dir });

  it('accepts a readable file, relative to the config folder', async () => {
    await writeFile(join(dir, 'flows.jsonl'), '');
    expect(await validate('flows.jsonl')).toEqual([]);
    expect(
      await fileReceiverFactory.validate?.(fileReceiverConfig.parse({ path: SAMPLE }), { configDir: '/' }),
    ).toEqual([]);
  });

  it('names the resolved path of a file that does not exist', async () => {
    expect(await validate('no/such/flows.jsonl')).toEqual([
      {
        key: 'path',
        message: `cannot read ${join(dir, 'no/such/flows.jsonl')}: ENOENT (no such file or directory)`,
      },
    ]);
  });

  it('refuses a directory', async () => {
    expect(await validate('.')).toEqual([
      { key: 'path', message: `${dir} is a directory; path names the JSON Lines file to replay` },
    ]);
  });

  it.skipIf(process.getuid?.() === 0)('refuses a file it may not read', async () => {
    await writeFile(join(dir, 'secret.jsonl'), '', { mode: 0o200 });
    expect(await validate('secret.jsonl')).toEqual([
      { key: 'path', message: `cannot read ${join(dir, 'secret.jsonl')}: EACCES (permission denied)` },
    ]);
  });
});
