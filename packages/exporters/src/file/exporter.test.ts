import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DnsBatch, encodeFlowRecords, FlowBatch, type FlowInit } from '@netmon/core';
import { runExporterInService, sampleFlows, testSettings } from '@netmon/core/testkit';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type FileExporterConfig, fileExporterConfig } from './config.js';
import { FileExporter } from './exporter.js';
import { fileExporterFactory } from './factory.js';

const MIB = 1024 * 1024;

const T0 = Date.parse('2026-01-01T00:00:00.000Z');

/** Flows whose records all have the same length: only the 5-digit source port differs. */
function flow(i: number): FlowInit {
  return {
    timeStart: T0,
    timeEnd: T0 + 10_000,
    protocol: 6,
    srcIp: '10.0.1.34',
    srcPort: 40000 + i,
    dstIp: '10.0.2.19',
    dstPort: 8080,
    txBytes: 1000,
    rxBytes: 20000,
    txPackets: 10,
    rxPackets: 20,
    attributes: { 'src.k8s.namespace.name': 'shop', 'traffic.class': 'cross_zone' },
  };
}
const line = (i: number) => encodeFlowRecords(FlowBatch.from([flow(i)]))[0];
const lines = (...idx: number[]) => idx.map(line).join('');
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, k) => from + k);
const L = Buffer.byteLength(line(0));

describe('file exporter', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'netmon-file-exporter-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const exporter = (config: Partial<Record<keyof FileExporterConfig, unknown>>) =>
    new FileExporter(testSettings('exporter', 'file', { configDir: dir }), fileExporterConfig.parse(config));
  const read = (name: string) => readFile(join(dir, name), 'utf8');

  it('fills defaults and requires path', () => {
    expect(fileExporterConfig.parse({ path: 'x' })).toEqual({
      path: 'x',
      rotation: { max_megabytes: 100, max_files: 5 },
    });
    expect(fileExporterConfig.safeParse({}).success).toBe(false);
    expect(fileExporterConfig.safeParse({ path: 'x', rotation: { max_files: 0 } }).success).toBe(false);
    expect(fileExporterConfig.safeParse({ path: 'x', rotation: { keep: 1 } }).success).toBe(false);
  });

  it('writes exactly what encodeFlowRecords produces', async () => {
    const batch = FlowBatch.from([
      // A row view reads as the flow it is: FlowBatch.from takes it like a FlowInit.
      ...([...sampleFlows()] as unknown as FlowInit[]),
      {
        ...flow(1),
        attributes: { 'cost.usd': 0.000123, 'flow.initiator_known': false, 'dst.domain': 'api.stripe.com' },
      },
    ]);
    const e = exporter({ path: 'flows.jsonl' });
    await e.start();
    await e.export(batch.seal());
    await e.export(batch);
    await e.shutdown();
    const expected = encodeFlowRecords(batch).join('');
    expect(expected.split('\n')).toHaveLength(batch.length + 1);
    expect(await read('flows.jsonl')).toBe(expected + expected);
  });

  it('writes batches far larger than the stream buffer completely', async () => {
    const batch = FlowBatch.from(range(0, 20_000).map((i) => ({ ...flow(i % 50_000), txBytes: i })));
    const e = exporter({ path: 'big.jsonl' });
    await e.start();
    await e.export(batch);
    await e.shutdown();
    expect(await read('big.jsonl')).toBe(encodeFlowRecords(batch).join(''));
  });

  it('creates missing parent directories and appends to an existing file', async () => {
    const first = exporter({ path: 'a/b/c/flows.jsonl' });
    await first.start();
    await first.export(FlowBatch.from([flow(1)]));
    await first.shutdown();
    const second = exporter({ path: join(dir, 'a/b/c/flows.jsonl') });
    await second.start();
    await second.export(FlowBatch.from([flow(2)]));
    await second.shutdown();
    expect(await read('a/b/c/flows.jsonl')).toBe(lines(1, 2));
  });

  it('rotates before a write would pass max_megabytes and keeps max_files rotated files', async () => {
    const e = exporter({ path: 'flows.jsonl', rotation: { max_megabytes: (3 * L) / MIB, max_files: 2 } });
    await e.start();
    for (let i = 0; i < 14; i++) await e.export(FlowBatch.from([flow(i)]));
    await e.shutdown();
    expect((await readdir(dir)).sort()).toEqual(['flows.jsonl', 'flows.jsonl.1', 'flows.jsonl.2']);
    expect(await read('flows.jsonl')).toBe(lines(12, 13));
    expect(await read('flows.jsonl.1')).toBe(lines(9, 10, 11));
    expect(await read('flows.jsonl.2')).toBe(lines(6, 7, 8));
  });

  it('splits a large batch across files at line boundaries', async () => {
    const e = exporter({ path: 'flows.jsonl', rotation: { max_megabytes: (3 * L) / MIB } });
    await e.start();
    await e.export(FlowBatch.from(range(0, 8).map(flow)));
    await e.shutdown();
    expect((await readdir(dir)).sort()).toEqual(['flows.jsonl', 'flows.jsonl.1', 'flows.jsonl.2']);
    expect(await read('flows.jsonl.2')).toBe(lines(0, 1, 2));
    expect(await read('flows.jsonl.1')).toBe(lines(3, 4, 5));
    expect(await read('flows.jsonl')).toBe(lines(6, 7));
  });

  it('gives a line longer than the limit a file of its own, never an empty file', async () => {
    const e = exporter({ path: 'flows.jsonl', rotation: { max_megabytes: L / 2 / MIB } });
    await e.start();
    await e.export(FlowBatch.from([flow(0), flow(1)]));
    await e.export(FlowBatch.from([flow(2)]));
    await e.shutdown();
    expect((await readdir(dir)).sort()).toEqual(['flows.jsonl', 'flows.jsonl.1', 'flows.jsonl.2']);
    expect(await read('flows.jsonl.2')).toBe(lines(0));
    expect(await read('flows.jsonl.1')).toBe(lines(1));
    expect(await read('flows.jsonl')).toBe(lines(2));
  });

  it('counts an existing file towards the limit', async () => {
    await writeFile(join(dir, 'flows.jsonl'), lines(0, 1));
    const e = exporter({ path: 'flows.jsonl', rotation: { max_megabytes: (3 * L) / MIB } });
    await e.start();
    await e.export(FlowBatch.from([flow(2), flow(3)]));
    await e.shutdown();
    expect(await read('flows.jsonl.1')).toBe(lines(0, 1, 2));
    expect(await read('flows.jsonl')).toBe(lines(3));
  });

  it('keeps concurrent exports in call order across rotations', async () => {
    const e = exporter({ path: 'flows.jsonl', rotation: { max_megabytes: (5 * L) / MIB, max_files: 10 } });
    await e.start();
    await Promise.all(range(0, 20).map((i) => e.export(FlowBatch.from([flow(2 * i), flow(2 * i + 1)]))));
    await e.shutdown();
    let all = '';
    for (let k = 10; k >= 1; k--) all += await read(`flows.jsonl.${k}`).catch(() => '');
    all += await read('flows.jsonl');
    expect(all).toBe(lines(...range(0, 40)));
    // Files are filled up to the limit (5 lines); batches of 2 straddle files where they must.
    expect(await read('flows.jsonl.1')).toBe(lines(30, 31, 32, 33, 34));
    expect(await read('flows.jsonl')).toBe(lines(35, 36, 37, 38, 39));
  });

  it('refuses to start when the file cannot be opened', async () => {
    await expect(exporter({ path: dir }).start()).rejects.toThrow(
      `file exporter: cannot open ${dir}: EISDIR (illegal operation on a directory)`,
    );
    await writeFile(join(dir, 'plain'), '');
    await expect(exporter({ path: 'plain/flows.jsonl' }).start()).rejects.toThrow(
      `file exporter: cannot create the directory of ${join(dir, 'plain/flows.jsonl')}: EEXIST`,
    );
  });

  it('rejects the batch whose write fails, and tries the file again with the next one', async () => {
    const e = exporter({ path: '/dev/full' });
    await e.start();
    const batch = FlowBatch.from([flow(0)]);
    await expect(e.export(batch)).rejects.toThrow(
      'file exporter: writing /dev/full failed: ENOSPC (no space left on device)',
    );
    await expect(e.export(batch)).rejects.toThrow('ENOSPC');
    await e.shutdown();
  });

  it('shuts down without start, twice, and refuses exports afterwards', async () => {
    const e = exporter({ path: 'flows.jsonl' });
    await e.shutdown();
    await e.shutdown();
    await expect(e.export(FlowBatch.from([flow(0)]))).rejects.toThrow('export after shutdown');
    expect(await readdir(dir)).toEqual([]);
  });
});

describe('file exporter validation', () => {
  // The factory's validate hook: `netmon validate` must refuse what `start` would fail or hang on.
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'netmon-file-exporter-validate-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const validate = (path: string) =>
    fileExporterFactory.validate?.(fileExporterConfig.parse({ path }), { configDir: dir });

  it('accepts an existing file, and a path whose missing folders can be created', async () => {
    await writeFile(join(dir, 'flows.jsonl'), '');
    expect(await validate('flows.jsonl')).toEqual([]);
    expect(await validate('a/b/c/flows.jsonl')).toEqual([]);
    expect(await validate('/dev/stdout')).toEqual([]);
  });

  it.each([
    ['/proc/netmon/flows.jsonl', '/proc'],
    ['/proc', '/proc'],
    ['/sys/fs/netmon.jsonl', '/sys'],
  ])('refuses %s, under a kernel pseudo-filesystem', async (path, root) => {
    expect(await validate(path)).toEqual([
      {
        key: 'path',
        message: `${path} is under ${root}, a kernel pseudo-filesystem where no file can be created; write to a real filesystem (e.g. /var/lib/netmon/flows.jsonl)`,
      },
    ]);
  });

  it('refuses a folder to create behind a link into /proc', async () => {
    const [problem] = (await validate('/dev/fd/netmon/flows.jsonl')) ?? [];
    expect(problem?.message).toMatch(
      /^\/dev\/fd\/netmon\/flows\.jsonl \(\/dev\/fd is \/proc\/.*\) is under \/proc/,
    );
  });

  it('refuses a directory, and a path below a file', async () => {
    expect(await validate('.')).toEqual([
      { key: 'path', message: `${dir} is a directory; path names the file to append records to` },
    ]);
    await writeFile(join(dir, 'plain'), '');
    expect(await validate('plain/sub/flows.jsonl')).toEqual([
      {
        key: 'path',
        message: `cannot create ${join(dir, 'plain/sub')}: ${join(dir, 'plain')} is a file, not a directory`,
      },
    ]);
  });

  it.skipIf(process.getuid?.() === 0)('refuses a folder it may not write in', async () => {
    await mkdir(join(dir, 'ro'), { mode: 0o555 });
    expect(await validate('ro/logs/flows.jsonl')).toEqual([
      {
        key: 'path',
        message: `cannot create ${join(dir, 'ro/logs')}: ${join(dir, 'ro')} is not writable: EACCES (permission denied)`,
      },
    ]);
  });

  it('start refuses a path under /proc instead of hanging in mkdir', async () => {
    const e = new FileExporter(
      testSettings('exporter', 'file', { configDir: dir }),
      fileExporterConfig.parse({ path: '/proc/netmon/flows.jsonl' }),
    );
    await expect(e.start()).rejects.toThrow(
      'file exporter: cannot write /proc/netmon/flows.jsonl: it is under /proc',
    );
    await e.shutdown();
  });
});

describe('file exporter: one instance for every flows pipeline that lists it', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'netmon-file-exporter-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('is made, started and shut down once, and writes the batches of both pipelines whole', async () => {
    // Each pipeline's source sends two batches at start: 0..99 and 100..199 to `a`, 1000.. to `b`.
    const two = (from: number) => () =>
      [from, from + 100].map((f) => FlowBatch.from(range(f, f + 100).map(flow)));
    const { service, life } = await runExporterInService(
      fileExporterFactory,
      { path: join(dir, 'flows.jsonl') },
      { 'flows/a': two(0), 'flows/b': two(1000) },
    );
    await service.shutdown();
    expect(life).toEqual({ created: [['flows']], starts: 1, shutdowns: 1 });
    expect(
      service
        .components()
        .filter((c) => c.id === 'file')
        .map((c) => [c.signal, c.items.in, c.items.failed]),
    ).toEqual([['flows', 400, 0]]);
    // Every batch whole and in its pipeline's order; the two pipelines' batches in whatever order they came.
    const written = (await readFile(join(dir, 'flows.jsonl'), 'utf8')).match(/.*\n/g) ?? [];
    const batchesOf = (from: number) => [
      lines(...range(from, from + 100)),
      lines(...range(from + 100, from + 200)),
    ];
    const chunks = Array.from({ length: 4 }, (_, k) => written.slice(k * 100, k * 100 + 100).join(''));
    expect(chunks.filter((c) => batchesOf(0).includes(c))).toEqual(batchesOf(0));
    expect(chunks.filter((c) => batchesOf(1000).includes(c))).toEqual(batchesOf(1000));
  });

  it('refuses a dns batch', async () => {
    const e = new FileExporter(
      testSettings('exporter', 'file', { configDir: dir }),
      fileExporterConfig.parse({ path: 'flows.jsonl' }),
    );
    await e.start();
    await expect(
      e.export(DnsBatch.from([{ time: T0, clientIp: '10.0.0.1', question: 'a.example', answers: [] }])),
    ).rejects.toThrow('file exporter: writes flows only; a dns batch was refused');
    await e.shutdown();
  });
});
