import { execFileSync } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ComponentSettings, encodeFlowRecords, type FlowBatch, StatusBoard } from '@netmon/core';
import { CollectingSink, testSettings } from '@netmon/core/testkit';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type CheckpointDocument, decodeCheckpoint, HEAD_BYTES } from './checkpoint.js';
import { type FileReceiverConfig, fileReceiverConfig } from './config.js';
import { FileReceiver } from './receiver.js';
import { logText, recordingSettings } from './testdata/helpers.js';

const SAMPLE = join(fileURLToPath(new URL('.', import.meta.url)), 'testdata', 'sample-flows.jsonl');

const encode = (sink: CollectingSink) =>
  (sink.batches as FlowBatch[]).map((b) => encodeFlowRecords(b).join('')).join('');

describe('file receiver checkpoint', () => {
  let dir: string;
  let sample: string;
  let lines: string[];
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'netmon-file-checkpoint-'));
    sample = await readFile(SAMPLE, 'utf8');
    lines = sample.split('\n').filter((l) => l !== '');
    await copyFile(SAMPLE, join(dir, 'flows.jsonl'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const path = () => join(dir, 'flows.jsonl');
  const cpFile = () => join(dir, 'state', 'replay.checkpoint');
  const readCheckpoint = async () => JSON.parse(await readFile(cpFile(), 'utf8')) as CheckpointDocument;
  /** Bytes of the first `n` lines of the sample, line endings included. */
  const bytesOf = (n: number) => Buffer.byteLength(lines.slice(0, n).join('\n')) + (n > 0 ? 1 : 0);

  function receiver(
    config: Partial<Record<keyof FileReceiverConfig, unknown>>,
    sink = new CollectingSink(),
    settings: ComponentSettings = testSettings('receiver', 'file', { configDir: dir }),
  ) {
    const r = new FileReceiver(
      settings,
      fileReceiverConfig.parse({
        path: 'flows.jsonl',
        checkpoint_file: 'state/replay.checkpoint',
        ...config,
      }),
      sink,
    );
    return { r, sink };
  }

  /** Runs a receiver to the end of the file and returns what it emitted, as JSON Lines. */
  async function replay(settings?: ComponentSettings, config: Record<string, unknown> = {}) {
    const { r, sink } = receiver(config, new CollectingSink(), settings);
    await r.start();
    await r.finished();
    await r.shutdown();
    return { r, out: encode(sink) };
  }

  it('a restart resumes after the last record handed over: the two runs together are the file', async () => {
    // Batches of 5 at 200x: an interval every 50 ms; stopped after the second interval went out.
    const first = receiver({ pace: 'recorded', speed: 200, batch_size: 5 });
    await first.r.start();
    await first.sink.waitForItems(40);
    await first.r.shutdown();
    const handed = first.sink.items;
    expect(handed).toBeGreaterThanOrEqual(40);
    expect(handed).toBeLessThan(lines.length);
    const cp = await readCheckpoint();
    const s = await stat(path());
    expect(cp).toMatchObject({
      version: 1,
      path: path(),
      loop: false,
      dev: String(s.dev),
      ino: String(s.ino),
      size: s.size,
      round: 0,
      offset: bytesOf(handed),
      line: handed,
      head_bytes: HEAD_BYTES,
    });
    expect(decodeCheckpoint(await readFile(cpFile(), 'utf8'))).toEqual(cp);

    const { settings, logs } = recordingSettings(dir);
    const second = await replay(settings);
    expect(second.r.recordsRead).toBe(lines.length - handed);
    expect(encode(first.sink) + second.out).toBe(sample);
    expect(logs.find((l) => l.msg.startsWith('resuming'))?.msg).toBe(
      `resuming after line ${handed} (byte ${bytesOf(handed)}): the last record handed over before the restart`,
    );
    expect(await readCheckpoint()).toMatchObject({ offset: s.size, line: lines.length });
  });

  it('after a finished replay, a restart reads only lines appended since', async () => {
    expect((await replay()).out).toBe(sample);
    expect((await readCheckpoint()).offset).toBe(Buffer.byteLength(sample));
    const again = await replay();
    expect(again.r.recordsRead).toBe(0);
    appendFileSync(path(), `${lines[0]}\n`);
    expect((await replay()).out).toBe(`${lines[0]}\n`);
  });

  it('starts over, saying why, when the file was replaced, truncated or rewritten', async () => {
    const cases: [string, () => Promise<void>, RegExp][] = [
      [
        'replaced',
        async () => {
          await writeFile(join(dir, 'new.jsonl'), sample);
          await rename(join(dir, 'new.jsonl'), path());
        },
        /the file was replaced \(it is not on the device and inode the checkpoint was written for\)/,
      ],
      [
        'truncated',
        async () => {
          const h = await open(path(), 'r+');
          await h.truncate(bytesOf(3));
          await h.close();
        },
        /the file is shorter than when the checkpoint was written \(\d+ < \d+ bytes\): truncated/,
      ],
      [
        'rewritten',
        async () => {
          // Same inode, same size, other first bytes: another recording written over the old one.
          const h = await open(path(), 'r+');
          await h.write(Buffer.from(lines[1].slice(0, 20)), 0, 20, 2);
          await h.close();
        },
        /its first 4096 bytes differ from when the checkpoint was written: rewritten/,
      ],
    ];
    for (const [what, change, why] of cases) {
      await copyFile(SAMPLE, path());
      await rm(cpFile(), { force: true });
      await replay();
      await change();
      const { settings, logs } = recordingSettings(dir);
      const { r } = await replay(settings);
      const warned = logs.filter((l) => l.level === 'warn' && l.msg.startsWith('checkpoint_file'));
      expect(warned, what).toHaveLength(1);
      expect(warned[0].msg, what).toMatch(why);
      expect(warned[0].msg, what).toContain(`does not match ${path()}`);
      expect(r.recordsRead + r.malformedRecords, what).toBeGreaterThan(0);
      expect((await readCheckpoint()).offset, what).toBe((await stat(path())).size);
    }
  });

  it('a damaged checkpoint is set aside, not trusted and not repeated in the log', async () => {
    await mkdir(join(dir, 'state'));
    await writeFile(cpFile(), 'root:$6$S3CR3T:19000::\n');
    const { settings, logs } = recordingSettings(dir);
    const { out } = await replay(settings);
    expect(out).toBe(sample);
    expect(await readFile(`${cpFile()}.corrupt`, 'utf8')).toBe('root:$6$S3CR3T:19000::\n');
    const warned = logs.filter((l) => l.level === 'warn');
    expect(warned.map((l) => l.msg)).toEqual([
      `checkpoint_file ${cpFile()} is damaged (not JSON); set aside as ${cpFile()}.corrupt; replaying ${path()} from the start`,
    ]);
    for (const l of logs) expect(logText(l)).not.toContain('S3CR3T');
  });

  it('refuses to start, at once, when checkpoint_file is a FIFO', async () => {
    await mkdir(join(dir, 'state'));
    execFileSync('mkfifo', [cpFile()]);
    const { r } = receiver({});
    await expect(r.start()).rejects.toThrow(
      `file receiver: checkpoint_file ${cpFile()} is a FIFO (named pipe), not a regular file`,
    );
    await r.shutdown();
  }, 5_000);

  it('with loop, resumes the round it was in, with that round’s time shift', async () => {
    const span = 60_000;
    const n = lines.length;
    const first = receiver({ loop: true, batch_size: 7 });
    let stopped = false;
    const consume = first.sink.consume.bind(first.sink);
    // Stops in the third round (round 2), part way through: nothing after the stop is handed over.
    first.sink.consume = (b) => {
      consume(b);
      if (!stopped && first.sink.items >= 2 * n + 30) {
        stopped = true;
        void first.r.shutdown();
      }
    };
    await first.r.start();
    await first.r.finished();
    const handed = first.sink.items;
    expect(handed).toBeGreaterThanOrEqual(2 * n + 30);
    expect(handed).toBeLessThan(3 * n);
    expect(await readCheckpoint()).toMatchObject({
      loop: true,
      round: 2,
      line: handed - 2 * n,
      offset: bytesOf(handed - 2 * n),
      span_ms: span,
    });

    const second = receiver({ loop: true, batch_size: 7 });
    await second.r.start();
    await second.sink.waitForItems(n);
    await second.r.shutdown();
    const resumed = encode(second.sink).split('\n');
    // The round goes on where it stopped, shifted by two spans; the next round by three.
    const shifted = (line: string, by: number) => {
      const o = JSON.parse(line);
      const move = (t: string) => new Date(Date.parse(t) + by).toISOString();
      return JSON.stringify({ ...o, time_start: move(o.time_start), time_end: move(o.time_end) });
    };
    const k = handed - 2 * n;
    for (let i = 0; i < n; i++) {
      const at = k + i;
      expect(resumed[i]).toBe(shifted(lines[at % n], (2 + Math.floor(at / n)) * span));
    }
  });

  it('reports a checkpoint it cannot write, keeps reading, and recovers once it can', async () => {
    // A file where the checkpoint's folder should be: every write fails (ENOTDIR) until it is removed.
    await writeFile(join(dir, 'state'), '');
    const board = new StatusBoard();
    const { settings, logs, meter } = recordingSettings(dir);
    const sink = new CollectingSink();
    const { r } = receiver({ pace: 'recorded', speed: 100, batch_size: 10 }, sink, {
      ...settings,
      status: testSettings('receiver', 'file', { board }).status,
    });
    const state = () => board.all()[0];
    await r.start();
    await sink.waitForItems(30);
    await new Promise((done) => setTimeout(done, 20));
    expect(state().status).toBe('recoverable_error');
    expect(state().lastError).toMatch(
      new RegExp(`^file receiver: cannot write checkpoint_file ${cpFile()}: (ENOTDIR|EEXIST)`),
    );
    const failures = meter.value('netmon_file_receiver_checkpoint_write_failures') ?? 0;
    expect(failures).toBeGreaterThan(0);
    expect(logs.filter((l) => l.level === 'error')).toHaveLength(1);
    await rm(join(dir, 'state'));
    await r.finished();
    await r.shutdown();
    expect(sink.items).toBe(lines.length);
    expect(state().status).toBe('ok');
    expect(logs.some((l) => l.msg === 'checkpoint written again')).toBe(true);
    expect((await readCheckpoint()).offset).toBe(Buffer.byteLength(sample));
  });
});
