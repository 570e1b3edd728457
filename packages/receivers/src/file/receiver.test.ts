import { execFileSync } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { appendFile, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Batch, type BatchSink, encodeFlowRecords, FlowBatch, type FlowInit } from '@netmon/core';
import { CollectingSink, testSettings } from '@netmon/core/testkit';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type FileReceiverConfig, fileReceiverConfig } from './config.js';
import { fileReceiverFactory } from './factory.js';
import { FileReceiver } from './receiver.js';
import { logText, recordingSettings as recording } from './testdata/helpers.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const SAMPLE = join(here, 'testdata', 'sample-flows.jsonl');
const T0 = Date.parse('2026-01-01T00:00:00.000Z');

/** Recording settings (see testdata/helpers.ts) with a reader for one metric's value. */
function recordingSettings(configDir = here) {
  const { settings, logs, meter } = recording(configDir);
  const observe = (name: string, attributes?: Record<string, string>): number | undefined =>
    meter.value(name, attributes);
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
      max_line_bytes: 1_048_576,
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
    expect(fileReceiverConfig.safeParse({ path: 'x', max_line_bytes: 1023 }).success).toBe(false);
    expect(fileReceiverConfig.safeParse({ path: 'x', max_line_bytes: 64 * 1024 * 1024 + 1 }).success).toBe(
      false,
    );
    expect(fileReceiverConfig.safeParse({ path: 'x', max_line_bytes: 1024 }).success).toBe(true);
    expect(fileReceiverConfig.safeParse({ path: 'x', checkpoint_file: '' }).success).toBe(false);
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
    const malformed = (reason: string) => observe('netmon_file_receiver_malformed_records', { reason });
    expect([malformed('not_json'), malformed('invalid'), malformed('too_long')]).toEqual([1, 6, 0]);
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
    expect(warned.map((l) => l.msg)).toEqual([
      `${file}:2: malformed flow record skipped: not JSON`,
      `${file}:4: malformed flow record skipped: unknown field: key 9 of the object is not a flow record field`,
      `${file}:5: malformed flow record skipped: family: expected 4 or 6`,
      `${file}:7: malformed flow record skipped: src_ip: not an IP address`,
      `${file}:8: malformed flow record skipped: attributes: key 1 holds a string where earlier records hold a number under that key (further ones are logged every 1000th)`,
    ]);
    expect(warned.map((l) => l.fields.reason)).toEqual([
      'not_json',
      'invalid',
      'invalid',
      'invalid',
      'invalid',
    ]);
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
      `file receiver: cannot read ${dir}: it is a directory, not a regular file`,
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

describe('file receiver: bad input and faults', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'netmon-file-receiver-hard-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const sampleLines = async () => (await readFile(SAMPLE, 'utf8')).split('\n').filter((l) => l !== '');

  // Node fires a timer asked to wait more than 2^31−1 ms after 1 ms: a recorded gap of 30 days went out at once.
  it('a paced gap longer than a timer can wait is waited, not skipped', async () => {
    const path = join(dir, 'month.jsonl');
    const [first] = await sampleLines();
    const later = first.replaceAll('2026-01-01T', '2026-01-31T');
    await writeFile(path, `${first}\n${later}\n`);
    const sink = new CollectingSink();
    const r = receiver({ path, pace: 'recorded' }, sink);
    await r.start();
    await new Promise((done) => setTimeout(done, 300));
    expect(sink.items).toBe(1);
    await r.shutdown();
  });

  it('skips a line far longer than max_line_bytes (600 MiB) without holding it, and reads on', async () => {
    // A sparse file: 600 MiB of NUL bytes on one line cost no disk; a string that long would not fit in V8.
    const path = join(dir, 'huge.jsonl');
    const [first, second] = await sampleLines();
    const huge = 600 * 1024 * 1024;
    await writeFile(path, `${first}\n`);
    const handle = await open(path, 'r+');
    await handle.truncate(first.length + 1 + huge);
    await handle.close();
    await appendFile(path, `\n${second}\n`);

    const { settings, logs, observe } = recordingSettings(dir);
    const sink = new CollectingSink();
    const r = receiver({ path }, sink, settings);
    const base = process.memoryUsage();
    let peak = 0;
    const sampler = setInterval(() => {
      const m = process.memoryUsage();
      peak = Math.max(peak, m.heapUsed + m.arrayBuffers - (base.heapUsed + base.arrayBuffers));
    }, 5);
    try {
      await r.start();
      await r.finished();
    } finally {
      clearInterval(sampler);
    }
    expect(r.recordsRead).toBe(2);
    expect(encode(flowBatches(sink))).toBe(`${first}\n${second}\n`);
    expect(observe('netmon_file_receiver_malformed_records', { reason: 'too_long' })).toBe(1);
    expect(r.malformedRecords).toBe(1);
    // Bounded by max_line_bytes (1 MiB) plus a read buffer, not by the line: far below 600 MiB.
    expect(peak).toBeLessThan(64 * 1024 * 1024);
    const warned = logs.filter((l) => l.level === 'warn');
    expect(warned.map((l) => l.msg)).toEqual([
      `${path}:2: malformed flow record skipped: longer than max_line_bytes (1048576 bytes)`,
    ]);
    expect(warned[0].fields).toMatchObject({ line: 2, reason: 'too_long' });
    await r.shutdown();
  }, 60_000);

  it('with max_line_bytes, takes a line of exactly that size and skips one byte more (\\n and \\r\\n)', async () => {
    const max = 1024;
    const [line] = await sampleLines();
    const record = JSON.parse(line);
    /** The sample's first record, padded by an attribute to exactly `n` bytes. */
    const sized = (n: number) => {
      const pad = (k: number) =>
        JSON.stringify({ ...record, attributes: { ...record.attributes, 'z.pad': 'x'.repeat(k) } });
      const out = pad(n - pad(0).length);
      expect(Buffer.byteLength(out)).toBe(n);
      return out;
    };
    const path = join(dir, 'sized.jsonl');
    await writeFile(
      path,
      `${sized(max)}\n${sized(max + 1)}\n${sized(max)}\r\n${sized(max + 1)}\r\n${sized(5 * max)}\n${sized(max)}`,
    );
    const { settings, logs } = recordingSettings(dir);
    const r = receiver({ path, max_line_bytes: max }, new CollectingSink(), settings);
    await r.start();
    await r.finished();
    expect(r.recordsRead).toBe(3);
    expect(r.malformedRecords).toBe(3);
    expect(logs.filter((l) => l.level === 'warn').map((l) => l.fields.line)).toEqual([2, 4, 5]);
  });

  it('refuses to start on a FIFO at once, instead of waiting for a writer forever', async () => {
    const fifo = join(dir, 'pipe');
    execFileSync('mkfifo', [fifo]);
    const r = receiver({ path: fifo });
    await expect(r.start()).rejects.toThrow(
      `file receiver: cannot read ${fifo}: it is a FIFO (named pipe), not a regular file`,
    );
    await r.shutdown();
  }, 5_000);

  it('refuses to start on a character device', async () => {
    const r = receiver({ path: '/dev/zero' });
    await expect(r.start()).rejects.toThrow(
      'file receiver: cannot read /dev/zero: it is a character device, not a regular file',
    );
    await r.shutdown();
  }, 5_000);

  it('with pace: recorded, reads lines appended while the replay runs', async () => {
    const lines = await sampleLines();
    const intervals = await intervalsOf(SAMPLE);
    const n1 = intervals[0][1];
    const n2 = intervals[1][1];
    const path = join(dir, 'growing.jsonl');
    // The first two intervals now; the other four 30 ms after the first interval went out: by then the
    // receiver has read to the end of the file and waits for the second interval's turn (200 ms).
    await writeFile(path, `${lines.slice(0, n1 + n2).join('\n')}\n`);
    let appended = false;
    let scheduled = false;
    let readAtAppend = -1;
    const sink = new CollectingSink();
    const consume = sink.consume.bind(sink);
    const { settings, logs } = recordingSettings(dir);
    const r = receiver({ path, pace: 'recorded', speed: 50 }, sink, settings); // 10 s → 200 ms
    sink.consume = (b) => {
      consume(b);
      if (scheduled) return;
      scheduled = true;
      setTimeout(() => {
        readAtAppend = r.recordsRead;
        appendFileSync(path, `${lines.slice(n1 + n2).join('\n')}\n`);
        appended = true;
      }, 30);
    };
    await r.start();
    await r.finished();
    // The append came after the receiver had reached the end of what was there.
    expect(readAtAppend).toBe(n1 + n2);
    expect(appended).toBe(true);
    expect(flowBatches(sink).map((b) => [new Date(b.timeEnd[0]).toISOString(), b.length])).toEqual(intervals);
    expect(encode(flowBatches(sink))).toBe(await readFile(SAMPLE, 'utf8'));
    expect(logs.filter((l) => l.msg === 'replay finished')).toHaveLength(1);
  });

  it('strips a UTF-8 byte order mark', async () => {
    const path = join(dir, 'bom.jsonl');
    const text = await readFile(SAMPLE, 'utf8');
    await writeFile(path, `\uFEFF${text}`);
    const sink = new CollectingSink();
    const r = receiver({ path }, sink);
    await r.start();
    await r.finished();
    expect(r.malformedRecords).toBe(0);
    expect(r.recordsRead).toBe(113);
    expect(encode(flowBatches(sink))).toBe(text);
  });

  it('never logs what a line holds: where and what was wrong only', async () => {
    const [line] = await sampleLines();
    const record = JSON.parse(line);
    const secret = 'S3CR3T';
    const cases: [string, string][] = [
      [`root:$6$${secret}$abcdefgh:19000:0:99999:7:::`, 'not JSON'],
      [`"${secret}"`, 'not a JSON object'],
      [
        JSON.stringify({ ...record, [secret]: 1 }),
        'unknown field: key 14 of the object is not a flow record field',
      ],
      [
        JSON.stringify({ ...record, time_start: secret }),
        'time_start: not an RFC 3339 time such as 2026-01-01T00:00:00.000Z',
      ],
      [
        JSON.stringify({ ...record, time_end: `2026-01-01T00:00:99.000Z${secret}` }),
        'time_end: not an RFC 3339 time such as 2026-01-01T00:00:00.000Z',
      ],
      [JSON.stringify({ ...record, src_ip: `10.0.0.1"${secret}` }), 'src_ip: not an IP address'],
      [
        JSON.stringify({ ...record, dst_ip: 'fd00::5ec:7e7' }),
        'dst_ip: an IPv6 address in a family 4 record',
      ],
      [
        JSON.stringify({ ...record, attributes: { a: 1, [secret]: [secret] } }),
        'attributes: key 2 holds neither a string, a number nor a boolean',
      ],
      [
        JSON.stringify({ ...record, attributes: { 'dst.kind': 5 } }),
        'attributes: key 1 holds a number where earlier records hold a string under that key',
      ],
    ];
    for (const [i, [text, why]] of cases.entries()) {
      // A valid record first, so that an attribute's kind is known; one file per case, as only the first
      // five malformed lines of a file are logged one by one.
      const path = join(dir, `secrets-${i}.jsonl`);
      await writeFile(path, `${line}\n${text}\n`);
      const { settings, logs } = recordingSettings(dir);
      const r = receiver({ path }, new CollectingSink(), settings);
      await r.start();
      await r.finished();
      expect(r.malformedRecords).toBe(1);
      expect(logs.filter((l) => l.level === 'warn').map((l) => l.msg)).toEqual([
        `${path}:2: malformed flow record skipped: ${why}`,
      ]);
      for (const l of logs) {
        expect(logText(l)).not.toContain(secret);
        expect(logText(l)).not.toContain('fd00::5ec:7e7');
      }
    }
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
      {
        key: 'path',
        message: `${dir} is a directory, not a regular file; path names the JSON Lines file to replay`,
      },
    ]);
  });

  it('claims the file it reads and the checkpoint it writes, resolved against the config folder', () => {
    const claims = (config: Record<string, unknown>) =>
      fileReceiverFactory.claims?.(fileReceiverConfig.parse(config), { configDir: dir });
    expect(claims({ path: 'flows.jsonl' })).toEqual([
      { kind: 'read', key: 'path', path: join(dir, 'flows.jsonl') },
    ]);
    expect(claims({ path: '/srv/flows.jsonl', checkpoint_file: 'state/cp' })).toEqual([
      { kind: 'read', key: 'path', path: '/srv/flows.jsonl' },
      { kind: 'write', key: 'checkpoint_file', path: join(dir, 'state/cp') },
    ]);
  });

  it('refuses a FIFO, a device and a socket, saying what the path is', async () => {
    execFileSync('mkfifo', [join(dir, 'pipe')]);
    const server = createServer();
    await new Promise<void>((done) => server.listen(join(dir, 'sock'), done));
    try {
      const what = (path: string, kind: string) => [
        {
          key: 'path',
          message: `${path} is ${kind}, not a regular file; path names the JSON Lines file to replay`,
        },
      ];
      expect(await validate('pipe')).toEqual(what(join(dir, 'pipe'), 'a FIFO (named pipe)'));
      expect(await validate('/dev/null')).toEqual(what('/dev/null', 'a character device'));
      expect(await validate('sock')).toEqual(what(join(dir, 'sock'), 'a socket'));
    } finally {
      await new Promise((done) => server.close(done));
    }
  });

  it('checks checkpoint_file: not the replayed file, not a directory, somewhere it can be written', async () => {
    await writeFile(join(dir, 'flows.jsonl'), '');
    const check = (checkpoint_file: string) =>
      fileReceiverFactory.validate?.(fileReceiverConfig.parse({ path: 'flows.jsonl', checkpoint_file }), {
        configDir: dir,
      });
    expect(await check('state/flows.checkpoint')).toEqual([]);
    expect(await check('flows.jsonl')).toEqual([
      {
        key: 'checkpoint_file',
        message: `${join(dir, 'flows.jsonl')} is the file being replayed; the checkpoint needs a file of its own`,
      },
    ]);
    expect(await check('.')).toEqual([
      { key: 'checkpoint_file', message: `${dir} is a directory, not a file` },
    ]);
    execFileSync('mkfifo', [join(dir, 'pipe')]);
    expect(await check('pipe')).toEqual([
      {
        key: 'checkpoint_file',
        message: `${join(dir, 'pipe')} is a FIFO (named pipe), not a regular file`,
      },
    ]);
    expect(await check('flows.jsonl/x')).toEqual([
      {
        key: 'checkpoint_file',
        message: `cannot create ${join(dir, 'flows.jsonl/x')}: ${join(dir, 'flows.jsonl')} is not a directory`,
      },
    ]);
  });

  it.skipIf(process.getuid?.() === 0)('refuses a file it may not read', async () => {
    await writeFile(join(dir, 'secret.jsonl'), '', { mode: 0o200 });
    expect(await validate('secret.jsonl')).toEqual([
      { key: 'path', message: `cannot read ${join(dir, 'secret.jsonl')}: EACCES (permission denied)` },
    ]);
  });
});
