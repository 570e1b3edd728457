import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createLogger,
  DnsBatch,
  decodeFlowRecord,
  encodeFlowRecords,
  FlowBatch,
  type FlowInit,
} from '@netmon/core';
import { recordingMeter, runExporterInService, sampleFlows, testSettings } from '@netmon/core/testkit';
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

// Rotation is by the MiB (max_megabytes ≥ 1), so its tests write records padded to a known size: `big`
// records, three to a 1 MiB file, and `medium` ones, ten to a file.
const padded = (pad: string) => (i: number) => ({
  ...flow(i),
  attributes: { ...flow(i).attributes, 'dst.domain': pad },
});
const big = padded('b'.repeat(300_000));
const medium = padded('m'.repeat(100_000));
const bigLines = (...idx: number[]) => encodeFlowRecords(FlowBatch.from(idx.map(big))).join('');
const mediumLines = (...idx: number[]) => encodeFlowRecords(FlowBatch.from(idx.map(medium))).join('');
const B = Buffer.byteLength(bigLines(0));
const M = Buffer.byteLength(mediumLines(0));

/** Root, or required to be (CI): such tests then run and fail without it instead of being skipped. */
const privileged = process.geteuid?.() === 0 || process.env.NETMON_REQUIRE_PRIVILEGED === '1';

/** A tmpfs of `kib` KiB, mode 0750, mounted for `fn` and removed afterwards: a disk that fills up. */
async function withTmpfs(kib: number, fn: (mnt: string) => Promise<void>): Promise<void> {
  const mnt = await mkdtemp(join(tmpdir(), 'netmon-file-exporter-tmpfs-'));
  try {
    const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${kib}k,mode=0750`, 'tmpfs', mnt], {
      encoding: 'utf8',
    });
    if (r.status !== 0) throw new Error(`mount -t tmpfs failed: ${r.stderr || r.error?.message}`);
    try {
      await fn(mnt);
    } finally {
      // Busy when a file on it is still open (a test that failed before closing its exporter): detach it
      // anyway, so no mount outlives the test.
      if (spawnSync('umount', [mnt]).status !== 0) spawnSync('umount', ['-l', mnt]);
    }
  } finally {
    await rm(mnt, { recursive: true, force: true });
  }
}

/** The source ports of every record in the files named, in file order: which flows are on disk. */
async function recordsIn(files: string[]): Promise<number[]> {
  const ports: number[] = [];
  for (const f of files) {
    const text = await readFile(f, 'utf8').catch(() => '');
    for (const l of text.split('\n')) {
      if (l === '') continue;
      const r = decodeFlowRecord(l);
      if (!r.ok) throw new Error(`${f}: ${r.error}`);
      ports.push((r.flow.srcPort as number) - 40000);
    }
  }
  return ports;
}

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
      file_mode: '0640',
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

  it('writes a batch of 20,000 records completely', async () => {
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

  it('the sizes the rotation tests rely on', () => {
    expect(3 * B).toBeLessThanOrEqual(MIB);
    expect(4 * B).toBeGreaterThan(MIB);
    expect(10 * M).toBeLessThanOrEqual(MIB);
    expect(11 * M).toBeGreaterThan(MIB);
  });

  it('rotates before a write would pass max_megabytes and keeps max_files rotated files', async () => {
    const e = exporter({ path: 'flows.jsonl', rotation: { max_megabytes: 1, max_files: 2 } });
    await e.start();
    for (let i = 0; i < 14; i++) await e.export(FlowBatch.from([big(i)]));
    await e.shutdown();
    expect((await readdir(dir)).sort()).toEqual(['flows.jsonl', 'flows.jsonl.1', 'flows.jsonl.2']);
    expect(await read('flows.jsonl')).toBe(bigLines(12, 13));
    expect(await read('flows.jsonl.1')).toBe(bigLines(9, 10, 11));
    expect(await read('flows.jsonl.2')).toBe(bigLines(6, 7, 8));
  });

  it('never splits a batch: it rotates first, and a batch larger than the limit gets a file of its own', async () => {
    await writeFile(join(dir, 'flows.jsonl'), bigLines(0));
    const e = exporter({ path: 'flows.jsonl', rotation: { max_megabytes: 1, max_files: 5 } });
    await e.start();
    await e.export(FlowBatch.from(range(1, 5).map(big))); // 4 records: more than 1 MiB
    await e.export(FlowBatch.from([big(5)]));
    await e.shutdown();
    expect((await readdir(dir)).sort()).toEqual(['flows.jsonl', 'flows.jsonl.1', 'flows.jsonl.2']);
    expect(await read('flows.jsonl.2')).toBe(bigLines(0));
    expect(await read('flows.jsonl.1')).toBe(bigLines(1, 2, 3, 4));
    expect(await read('flows.jsonl')).toBe(bigLines(5));
  });

  it('gives a line longer than the limit a file of its own, never an empty file', async () => {
    const huge = padded('h'.repeat(MIB + 1000));
    const e = exporter({ path: 'flows.jsonl', rotation: { max_megabytes: 1 } });
    await e.start();
    await e.export(FlowBatch.from([huge(0)]));
    await e.export(FlowBatch.from([huge(1)]));
    await e.export(FlowBatch.from([flow(2)]));
    await e.shutdown();
    const text = (...idx: number[]) => encodeFlowRecords(FlowBatch.from(idx.map(huge))).join('');
    expect((await readdir(dir)).sort()).toEqual(['flows.jsonl', 'flows.jsonl.1', 'flows.jsonl.2']);
    expect(await read('flows.jsonl.2')).toBe(text(0));
    expect(await read('flows.jsonl.1')).toBe(text(1));
    expect(await read('flows.jsonl')).toBe(lines(2));
  });

  it('counts an existing file towards the limit', async () => {
    await writeFile(join(dir, 'flows.jsonl'), bigLines(0, 1));
    const e = exporter({ path: 'flows.jsonl', rotation: { max_megabytes: 1 } });
    await e.start();
    await e.export(FlowBatch.from([big(2)]));
    await e.export(FlowBatch.from([big(3)]));
    await e.shutdown();
    expect(await read('flows.jsonl.1')).toBe(bigLines(0, 1, 2));
    expect(await read('flows.jsonl')).toBe(bigLines(3));
  });

  it('keeps concurrent exports in call order across rotations', async () => {
    const e = exporter({ path: 'flows.jsonl', rotation: { max_megabytes: 1, max_files: 10 } });
    await e.start();
    await Promise.all(range(0, 20).map((i) => e.export(FlowBatch.from([medium(2 * i), medium(2 * i + 1)]))));
    await e.shutdown();
    let all = '';
    for (let k = 10; k >= 1; k--) all += await read(`flows.jsonl.${k}`).catch(() => '');
    all += await read('flows.jsonl');
    expect(all).toBe(mediumLines(...range(0, 40)));
    // Files are filled up to the limit (10 records), five batches of 2 each.
    expect((await readdir(dir)).sort()).toEqual([
      'flows.jsonl',
      'flows.jsonl.1',
      'flows.jsonl.2',
      'flows.jsonl.3',
    ]);
    expect(await read('flows.jsonl.1')).toBe(mediumLines(...range(20, 30)));
    expect(await read('flows.jsonl')).toBe(mediumLines(...range(30, 40)));
  });

  it('refuses to start when the file cannot be opened', async () => {
    await expect(exporter({ path: dir }).start()).rejects.toThrow(
      `file exporter: cannot open ${dir}: ${dir} is a directory; path names the file to append records to`,
    );
    await writeFile(join(dir, 'plain'), '');
    await expect(exporter({ path: 'plain/flows.jsonl' }).start()).rejects.toThrow(
      `file exporter: cannot open ${join(dir, 'plain/flows.jsonl')}: cannot create ${join(dir, 'plain')}: ${join(dir, 'plain')} is a file, not a directory`,
    );
  });

  it.skipIf(!privileged)(
    'a batch whose write fails leaves nothing behind, and the next one is written (root: a full tmpfs)',
    async () => {
      await withTmpfs(1024, async (mnt) => {
        const e = exporter({ path: join(mnt, 'flows.jsonl') });
        await e.start();
        await e.export(FlowBatch.from(range(0, 3).map(big)));
        // A fourth 300 kB record does not fit in 1 MiB: the write fails part way through.
        await expect(e.export(FlowBatch.from([big(3)]))).rejects.toThrow(
          `file exporter: writing ${join(mnt, 'flows.jsonl')} failed: ENOSPC (no space left on device)`,
        );
        expect(await readFile(join(mnt, 'flows.jsonl'), 'utf8')).toBe(bigLines(0, 1, 2));
        await e.export(FlowBatch.from([flow(4), flow(5)]));
        await e.shutdown();
        expect(await readFile(join(mnt, 'flows.jsonl'), 'utf8')).toBe(bigLines(0, 1, 2) + lines(4, 5));
      });
    },
  );

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

describe('file exporter: what it is handed is on disk, or counted', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'netmon-file-exporter-keep-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const file = (name = 'flows.jsonl') => join(dir, name);

  it('refuses max_megabytes below 1 MiB (1e-9 kept 3 of 113 records) and above 1 TiB, saying why', () => {
    const problem = (max_megabytes: unknown) => {
      const r = fileExporterConfig.safeParse({ path: 'x', rotation: { max_megabytes, max_files: 2 } });
      return r.success ? undefined : r.error.issues.map((i) => i.message).join('; ');
    };
    expect(problem(1e-9)).toBe(
      'must be at least 1 (MiB), got 1e-9: a smaller file holds a few thousand records at most, and rotating that often only churns through max_files',
    );
    expect(problem(0.5)).toMatch(/^must be at least 1 \(MiB\), got 0\.5:/);
    expect(problem(1_048_577)).toBe('must be at most 1048576 (1 TiB), got 1048577');
    expect(problem(1)).toBeUndefined();
    expect(problem(2.5)).toBeUndefined();
    expect(problem(1_048_576)).toBeUndefined();
  });

  it('keeps every record of 113, each export whole, at the smallest limit with one rotated file', async () => {
    // 113 records of about 20 kB: 2.2 MiB for the smallest limit, 1 MiB. Split across files, as it once was,
    // the batch's own rotations deleted its first records.
    const rec = padded('r'.repeat(20_000));
    const e = new FileExporter(
      testSettings('exporter', 'file', { configDir: dir }),
      fileExporterConfig.parse({ path: 'flows.jsonl', rotation: { max_megabytes: 1, max_files: 1 } }),
    );
    await e.start();
    const onDisk = () => recordsIn([file('flows.jsonl.1'), file()]);
    await e.export(FlowBatch.from(range(0, 113).map(rec)));
    expect(await onDisk()).toEqual(range(0, 113));
    await e.export(FlowBatch.from(range(113, 226).map(rec)));
    expect(await onDisk()).toEqual(range(0, 226));
    // Retention deletes an earlier export's file, never the records of the export that rotates.
    await e.export(FlowBatch.from(range(226, 339).map(rec)));
    expect(await onDisk()).toEqual(range(113, 339));
    await e.shutdown();
    expect((await readdir(dir)).sort()).toEqual(['flows.jsonl', 'flows.jsonl.1']);
  });

  it('counts rotations and the bytes deleted to keep max_files', async () => {
    const meter = recordingMeter();
    const e = new FileExporter(
      { ...testSettings('exporter', 'file', { configDir: dir }), meter: meter.meter },
      fileExporterConfig.parse({ path: 'flows.jsonl', rotation: { max_megabytes: 1, max_files: 1 } }),
    );
    await e.start();
    expect(meter.value('netmon_file_exporter_rotations')).toBe(0);
    for (let i = 0; i < 4; i++) await e.export(FlowBatch.from([big(i)]));
    expect(meter.value('netmon_file_exporter_rotations')).toBe(1);
    expect(meter.value('netmon_file_exporter_deleted_bytes')).toBe(0);
    for (let i = 4; i < 7; i++) await e.export(FlowBatch.from([big(i)]));
    expect(meter.value('netmon_file_exporter_rotations')).toBe(2);
    // The second rotation replaced flows.jsonl.1, records 0-2.
    expect(meter.value('netmon_file_exporter_deleted_bytes')).toBe(3 * B);
    await e.shutdown();
    expect(await recordsIn([file('flows.jsonl.1'), file()])).toEqual(range(3, 7));
  });

  it('ends a partial line left by a crash before appending, and counts it', async () => {
    const torn = bigLines(0) + lines(1).slice(0, 100);
    await writeFile(file(), torn);
    const meter = recordingMeter();
    const e = new FileExporter(
      { ...testSettings('exporter', 'file', { configDir: dir }), meter: meter.meter },
      fileExporterConfig.parse({ path: 'flows.jsonl', rotation: { max_megabytes: 1 } }),
    );
    await e.start();
    expect(meter.value('netmon_file_exporter_partial_lines')).toBe(1);
    await e.export(FlowBatch.from([flow(2), flow(3)]));
    await e.shutdown();
    expect(await readFile(file(), 'utf8')).toBe(`${torn}\n${lines(2, 3)}`);
    // Every whole record reads back; the torn one is a single malformed line of its own.
    const decoded = (await readFile(file(), 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((l) => decodeFlowRecord(l).ok);
    expect(decoded).toEqual([true, false, true, true]);
  });

  it('a batch that cannot be written is counted failed by the framework, whole, and logs say where, not what', async () => {
    // flows.jsonl.1 is a folder with something in it: the rotation's rename onto it fails.
    await mkdir(join(dir, 'flows.jsonl.1', 'kept'), { recursive: true, mode: 0o750 });
    const canary = 'canary-7f3a.secret.example';
    const withCanary = (i: number) => ({
      ...big(i),
      attributes: { ...big(i).attributes, 'src.k8s.pod.name': canary },
    });
    const { service } = await runExporterInService(
      fileExporterFactory,
      { path: file(), rotation: { max_megabytes: 1, max_files: 1 } },
      { flows: () => [FlowBatch.from(range(0, 3).map(big)), FlowBatch.from(range(3, 5).map(withCanary))] },
    );
    await service.shutdown();
    const [state] = service.components().filter((c) => c.id === 'file');
    expect([state.items.in, state.items.out, state.items.failed]).toEqual([5, 3, 2]);
    expect(state.lastError).toBe(
      `file exporter: cannot rotate ${file()}: renaming ${file()} to ${file('flows.jsonl.1')} failed: EISDIR (illegal operation on a directory)`,
    );
    expect(state.lastError).not.toContain('canary');
    // All or nothing: the file holds the first batch, not a record of the second.
    expect(await readFile(file(), 'utf8')).toBe(bigLines(0, 1, 2));

    // The exporter's own logs, at debug, through a failed and a good rotation: paths and counts only.
    const logged: string[] = [];
    const logger = createLogger({
      level: 'debug',
      pretty: false,
      destination: { write: (l: string) => logged.push(l) },
    });
    const e = new FileExporter(
      { ...testSettings('exporter', 'file', { configDir: dir }), logger },
      fileExporterConfig.parse({ path: 'flows.jsonl', rotation: { max_megabytes: 1, max_files: 1 } }),
    );
    await e.start();
    const failed = await e.export(FlowBatch.from(range(3, 5).map(withCanary))).catch((err: Error) => err);
    expect(failed).toBeInstanceOf(Error);
    expect((failed as Error).message).not.toContain('canary');
    await rm(join(dir, 'flows.jsonl.1'), { recursive: true });
    await e.export(FlowBatch.from(range(3, 5).map(withCanary)));
    await e.shutdown();
    expect(logged.some((l) => l.includes('"msg":"rotated"'))).toBe(true);
    expect(logged.join('')).not.toContain('canary');
    expect(await recordsIn([file('flows.jsonl.1'), file()])).toEqual(range(0, 5));
    expect((await stat(file())).size).toBe(
      2 * Buffer.byteLength(encodeFlowRecords(FlowBatch.from([withCanary(3)]))[0]),
    );
  });
});
