// What the exporter does when its output path is not the plain file it expects: a link planted where it
// writes, a directory others may write in, a FIFO or a device, a file that belongs to someone else, and
// the modes it gives what it creates. Real files, links, FIFOs and directories throughout.
import { spawnSync } from 'node:child_process';
import { constants } from 'node:fs';
import {
  chmod,
  chown,
  lstat,
  mkdir,
  mkdtemp,
  open,
  readdir,
  readFile,
  readlink,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { encodeFlowRecords, FlowBatch, type FlowInit } from '@netmon/core';
import { testSettings } from '@netmon/core/testkit';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fileExporterConfig } from './config.js';
import { FileExporter } from './exporter.js';
import { fileExporterFactory } from './factory.js';

const T0 = Date.parse('2026-01-01T00:00:00.000Z');
const MIB = 1024 * 1024;
/** Root, or required to be (CI): such tests then run and fail without it instead of being skipped. */
const privileged = process.geteuid?.() === 0 || process.env.NETMON_REQUIRE_PRIVILEGED === '1';

function flow(i: number, domain = 'api.example.com'): FlowInit {
  return {
    timeStart: T0,
    timeEnd: T0 + 10_000,
    protocol: 6,
    srcIp: '10.0.1.34',
    srcPort: 40000 + i,
    dstIp: '10.0.2.19',
    dstPort: 443,
    txBytes: 1000,
    rxBytes: 20000,
    txPackets: 10,
    rxPackets: 20,
    attributes: { 'dst.domain': domain },
  };
}
const mode = async (p: string) => (await stat(p)).mode & 0o7777;

let dir: string;
let outside: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'netmon-file-exporter-sec-'));
  outside = await mkdtemp(join(tmpdir(), 'netmon-file-exporter-victim-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
  await rm(outside, { recursive: true, force: true });
});

const exporter = (config: Record<string, unknown>) =>
  new FileExporter(testSettings('exporter', 'file', { configDir: dir }), fileExporterConfig.parse(config));
const validate = (config: Record<string, unknown>) =>
  fileExporterFactory.validate?.(fileExporterConfig.parse(config), { configDir: dir });

/** A file only its owner may read, outside the output directory: what a planted link would aim at. */
async function victim(name = 'shadow'): Promise<string> {
  const file = join(outside, name);
  await writeFile(file, 'root:only:secret\n', { mode: 0o600 });
  await chmod(file, 0o600);
  return file;
}

describe('file exporter: links at the names it writes', () => {
  it('does not follow a link planted at its path: start fails and the target is untouched', async () => {
    const target = await victim();
    await mkdir(join(dir, 'out'), { mode: 0o750 });
    await symlink(target, join(dir, 'out/flows.jsonl'));
    const e = exporter({ path: 'out/flows.jsonl' });
    await expect(e.start()).rejects.toThrow(
      `file exporter: cannot open ${join(dir, 'out/flows.jsonl')}: ${join(dir, 'out/flows.jsonl')} is a symbolic link; the exporter does not follow links: remove it, or name the file it points to`,
    );
    await expect(e.export(FlowBatch.from([flow(1)]))).rejects.toThrow('symbolic link');
    await e.shutdown();
    expect(await readFile(target, 'utf8')).toBe('root:only:secret\n');
    expect(await mode(target)).toBe(0o600);
    expect(await readlink(join(dir, 'out/flows.jsonl'))).toBe(target);
  });

  it('validate refuses a link at the path', async () => {
    await symlink(await victim(), join(dir, 'flows.jsonl'));
    expect(await validate({ path: 'flows.jsonl' })).toEqual([
      {
        key: 'path',
        message: `${join(dir, 'flows.jsonl')} is a symbolic link; the exporter does not follow links: remove it, or name the file it points to`,
      },
    ]);
  });

  it('rotation replaces links planted at the rotated names, never writing through them', async () => {
    const one = await victim('one');
    const two = await victim('two');
    await symlink(one, join(dir, 'flows.jsonl.1'));
    await symlink(two, join(dir, 'flows.jsonl.2'));
    const pad = 'x'.repeat(400_000);
    const e = exporter({ path: 'flows.jsonl', rotation: { max_megabytes: 1, max_files: 2 } });
    await e.start();
    // 400 kB records, two per file: five exports rotate twice.
    for (let i = 0; i < 5; i++) await e.export(FlowBatch.from([flow(i, pad)]));
    await e.shutdown();
    expect(await readFile(one, 'utf8')).toBe('root:only:secret\n');
    expect(await readFile(two, 'utf8')).toBe('root:only:secret\n');
    for (const name of ['flows.jsonl', 'flows.jsonl.1', 'flows.jsonl.2']) {
      expect((await lstat(join(dir, name))).isFile()).toBe(true);
    }
    const line = (i: number) => encodeFlowRecords(FlowBatch.from([flow(i, pad)]))[0];
    expect(await readFile(join(dir, 'flows.jsonl.2'), 'utf8')).toBe(line(0) + line(1));
    expect(await readFile(join(dir, 'flows.jsonl.1'), 'utf8')).toBe(line(2) + line(3));
    expect(await readFile(join(dir, 'flows.jsonl'), 'utf8')).toBe(line(4));
  });
});

describe('file exporter: the output directory', () => {
  it.each([
    ['0777', 'group and others'],
    ['0770', 'group'],
    ['0757', 'others'],
  ])('refuses a directory of mode %s, writable by %s, in validate and at start', async (octal, who) => {
    const m = Number.parseInt(octal, 8);
    const shared = join(dir, 'shared');
    await mkdir(shared);
    await chmod(shared, m);
    const message = `${shared} is writable by ${who} (mode ${octal}): whoever can write there could put a link or a file in the exporter's place; chmod go-w ${shared}, or choose another directory`;
    expect(await validate({ path: 'shared/flows.jsonl' })).toEqual([{ key: 'path', message }]);
    const e = exporter({ path: 'shared/flows.jsonl' });
    await expect(e.start()).rejects.toThrow(
      `file exporter: cannot open ${join(shared, 'flows.jsonl')}: ${message}`,
    );
    await e.shutdown();
    expect(await readdir(shared)).toEqual([]);
  });

  it('refuses a file directly in a sticky shared directory such as /tmp, and accepts a folder of its own there', async () => {
    const sticky = join(dir, 'tmp');
    await mkdir(sticky);
    await chmod(sticky, 0o1777);
    const message = `${sticky} is writable by group and others (mode 1777): whoever can write there could put a link or a file in the exporter's place; write to a folder of the exporter's own in it (e.g. ${join(sticky, 'netmon', 'flows.jsonl')}: the exporter creates it, mode 0750), or choose another directory`;
    expect(await validate({ path: 'tmp/flows.jsonl' })).toEqual([{ key: 'path', message }]);
    await expect(exporter({ path: 'tmp/flows.jsonl' }).start()).rejects.toThrow(message);

    expect(await validate({ path: 'tmp/netmon/flows.jsonl' })).toEqual([]);
    const e = exporter({ path: 'tmp/netmon/flows.jsonl' });
    await e.start();
    await e.export(FlowBatch.from([flow(1)]));
    await e.shutdown();
    expect(await mode(join(sticky, 'netmon'))).toBe(0o750);
    expect(await readFile(join(sticky, 'netmon/flows.jsonl'), 'utf8')).toBe(
      encodeFlowRecords(FlowBatch.from([flow(1)]))[0],
    );
  });

  it('refuses a path directly in the real /tmp', async () => {
    const file = join('/tmp', `netmon-file-exporter-${process.pid}.jsonl`);
    const [problem] = (await validate({ path: file })) ?? [];
    expect(problem?.message).toMatch(/^\/tmp is writable by group and others \(mode 1777\)/);
    const e = exporter({ path: file });
    await expect(e.start()).rejects.toThrow('/tmp is writable by group and others');
    await e.shutdown();
    await expect(stat(file)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('refuses a folder above it that others may write in without the sticky bit', async () => {
    const open = join(dir, 'open');
    await mkdir(join(open, 'netmon'), { recursive: true, mode: 0o750 });
    await chmod(open, 0o777);
    const message = `${open}, a folder above ${join(open, 'netmon')}, is writable by others without the sticky bit (mode 0777): anyone could put another folder in its place; chmod o-w ${open} (or +t), or choose another directory`;
    expect(await validate({ path: 'open/netmon/flows.jsonl' })).toEqual([{ key: 'path', message }]);
    // A folder still to create there: the same folder above it.
    expect(await validate({ path: 'open/new/flows.jsonl' })).toEqual([
      {
        key: 'path',
        message: message.replace(`above ${join(open, 'netmon')}`, `above ${join(open, 'new')}`),
      },
    ]);
    await expect(exporter({ path: 'open/netmon/flows.jsonl' }).start()).rejects.toThrow(message);
  });

  it.skipIf(!privileged)('refuses a directory that belongs to another user (root only: chown)', async () => {
    const theirs = join(dir, 'theirs');
    await mkdir(theirs, { mode: 0o755 });
    await chown(theirs, 65534, 65534);
    const message = `${theirs} belongs to uid 65534, not to the user the exporter runs as (uid 0): its owner could put a link or a file in the exporter's place; chown it, or choose another directory`;
    expect(await validate({ path: 'theirs/flows.jsonl' })).toEqual([{ key: 'path', message }]);
    await expect(exporter({ path: 'theirs/flows.jsonl' }).start()).rejects.toThrow(message);
    expect(await readdir(theirs)).toEqual([]);
  });

  it('creates missing directories 0750 even under umask 000', async () => {
    const old = process.umask(0);
    try {
      const e = exporter({ path: 'a/b/flows.jsonl' });
      await e.start();
      await e.shutdown();
    } finally {
      process.umask(old);
    }
    expect(await mode(join(dir, 'a'))).toBe(0o750);
    expect(await mode(join(dir, 'a/b'))).toBe(0o750);
  });
});

describe('file exporter: what it writes to', () => {
  it('refuses a FIFO without blocking on it, in validate and at start', async () => {
    const fifo = join(dir, 'flows.fifo');
    expect(spawnSync('mkfifo', ['-m', '0600', fifo]).status).toBe(0);
    const message = `${fifo} is a FIFO (named pipe), not a regular file; the exporter appends to and rotates regular files only`;
    expect(await validate({ path: 'flows.fifo' })).toEqual([{ key: 'path', message }]);
    const e = exporter({ path: 'flows.fifo' });
    const started = e.start().then(
      () => 'opened',
      (err: Error) => err.message,
    );
    const outcome = await Promise.race([started, sleep(2000).then(() => 'blocked')]);
    if (outcome === 'blocked') {
      // An open for writing waits for a reader: give it one, so the test ends.
      const reader = await open(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
      await started;
      await reader.close();
    }
    expect(outcome).toBe(`file exporter: cannot open ${fifo}: ${message}`);
    await e.shutdown();
  });

  it('refuses a device: /dev/null is never written or renamed', async () => {
    const before = await stat('/dev/null');
    const message =
      '/dev/null is a character device, not a regular file; the exporter appends to and rotates regular files only';
    expect(await validate({ path: '/dev/null' })).toEqual([{ key: 'path', message }]);
    const e = exporter({ path: '/dev/null', rotation: { max_megabytes: 1, max_files: 1 } });
    await expect(e.start()).rejects.toThrow(message);
    await expect(e.export(FlowBatch.from([flow(1, 'x'.repeat(2 * MIB))]))).rejects.toThrow(message);
    await e.shutdown();
    const after = await stat('/dev/null');
    expect([after.ino, after.mode, after.uid]).toEqual([before.ino, before.mode, before.uid]);
    await expect(stat('/dev/null.1')).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it.skipIf(!privileged)('refuses a file that belongs to another user (root only: chown)', async () => {
    const file = join(dir, 'flows.jsonl');
    await writeFile(file, '', { mode: 0o640 });
    await chown(file, 65534, 65534);
    const message = `${file} belongs to uid 65534, not to the user the exporter runs as (uid 0); the exporter appends only to its own files: remove it, or chown it`;
    expect(await validate({ path: 'flows.jsonl' })).toEqual([{ key: 'path', message }]);
    await expect(exporter({ path: 'flows.jsonl' }).start()).rejects.toThrow(message);
    expect(await readFile(file, 'utf8')).toBe('');
  });
});

describe('file exporter: file_mode', () => {
  it('writes 0640 by default, whatever the umask, the rotated files too', async () => {
    const old = process.umask(0);
    try {
      const e = exporter({ path: 'flows.jsonl', rotation: { max_megabytes: 1, max_files: 2 } });
      await e.start();
      await e.export(FlowBatch.from([flow(1, 'x'.repeat(600_000))]));
      await e.export(FlowBatch.from([flow(2, 'x'.repeat(600_000))]));
      await e.shutdown();
    } finally {
      process.umask(old);
    }
    expect(await mode(join(dir, 'flows.jsonl'))).toBe(0o640);
    expect(await mode(join(dir, 'flows.jsonl.1'))).toBe(0o640);
  });

  it('applies file_mode to a new file, an existing one, and each file rotation starts', async () => {
    await writeFile(join(dir, 'flows.jsonl'), '', { mode: 0o666 });
    await chmod(join(dir, 'flows.jsonl'), 0o666);
    const e = exporter({ path: 'flows.jsonl', file_mode: '0600', rotation: { max_megabytes: 1 } });
    await e.start();
    expect(await mode(join(dir, 'flows.jsonl'))).toBe(0o600);
    await e.export(FlowBatch.from([flow(1, 'x'.repeat(600_000))]));
    await e.export(FlowBatch.from([flow(2, 'x'.repeat(600_000))]));
    await e.shutdown();
    expect(await mode(join(dir, 'flows.jsonl'))).toBe(0o600);
    expect(await mode(join(dir, 'flows.jsonl.1'))).toBe(0o600);

    const other = exporter({ path: 'other.jsonl', file_mode: '0660' });
    await other.start();
    await other.shutdown();
    expect(await mode(join(dir, 'other.jsonl'))).toBe(0o660);
  });

  it.each([
    ['0640', true],
    ['0600', true],
    ['0644', true],
    ['0660', true],
    ['640', true],
    ['0755', false],
    ['0641', false],
    ['0646', false],
    ['0666', false],
    ['0440', false],
    ['0240', false],
    ['04640', false],
    ['0o640', false],
    ['rw-r-----', false],
    ['', false],
  ])('file_mode %s is accepted: %s', (value, ok) => {
    expect(fileExporterConfig.safeParse({ path: 'x', file_mode: value }).success).toBe(ok);
  });

  it('says what it expects, and why an unquoted 0640 is a number', () => {
    const message = (value: unknown) => {
      const r = fileExporterConfig.safeParse({ path: 'x', file_mode: value });
      return r.success ? undefined : r.error.issues.map((i) => i.message).join('; ');
    };
    expect(message(640)).toBe(
      'expected an octal string in quotes, e.g. "0640" (unquoted, YAML reads 0640 as the decimal number 640)',
    );
    expect(message('0755')).toBe('"0755" sets execute bits (0111); flow records are data: use e.g. "0640"');
    expect(message('0666')).toBe(
      '"0666" lets others write the file (0002); use e.g. "0640", or "0660" for a group that may',
    );
    expect(message('0440')).toBe(
      '"0440" must let the owner read and write (6 as its owner digit), e.g. "0640"',
    );
    expect(message('u=rw')).toBe(
      'must be an octal mode of 3 or 4 digits without special bits, e.g. "0640"; got "u=rw"',
    );
  });
});
