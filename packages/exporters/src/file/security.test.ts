// What the exporter does when its output path is not the plain file it expects: a link planted where it
// writes, a directory others may write in, a FIFO or a device, a file that belongs to someone else, and
// the modes it gives what it creates. Real files, links, FIFOs and directories throughout.
import { spawnSync } from 'node:child_process';
import { constants } from 'node:fs';
import {
  chmod,
  chown,
  lchown,
  link,
  lstat,
  mkdir,
  mkdtemp,
  open,
  readdir,
  readFile,
  readlink,
  rename,
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

  it('refuses a file directly in a sticky shared directory such as /tmp, and accepts a folder it creates there', async () => {
    const sticky = join(dir, 'tmp');
    await mkdir(sticky);
    await chmod(sticky, 0o1777);
    const message = `${sticky} is writable by group and others (mode 1777): whoever can write there could put a link or a file in the exporter's place; choose a folder only the exporter's user may write in, such as /var/lib/netmon/flows.jsonl (the exporter creates it, mode 0750)`;
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
    const message = `${open}, a folder above ${join(open, 'netmon')}, is writable by group and others without the sticky bit (mode 0777): whoever can write there could rename a folder in it away and put another, or a link, in its place; chmod go-w ${open}, or choose a folder of the exporter's own such as /var/lib/netmon`;
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

describe('file exporter: links and shared folders on the way to its directory', () => {
  // The kernel follows every link on the way to the file; O_NOFOLLOW guards only the last name. So each
  // link met, and each folder it leads through, is checked as if it had been named.
  const linkOwnedBy65534 = (link: string, output = link) =>
    `${link} is a symbolic link${link === output ? '' : ` on the way to ${output}`} that belongs to uid 65534, not to root or the user the exporter runs as (uid 0): its owner could replace it with a link to any folder; remove it and name the real folder, or choose another directory`;

  /** A folder of root's, mode 0755, outside the test's folder: where a planted link would lead. */
  async function rootDir(): Promise<string> {
    const target = join(outside, 'rootdir');
    await mkdir(target, { mode: 0o755 });
    await chmod(target, 0o755);
    return target;
  }

  it.skipIf(!privileged)(
    "refuses another user's link at the output directory in a sticky folder, and writes nothing behind it (root only: lchown)",
    async () => {
      const sticky = join(dir, 'sticky');
      await mkdir(sticky);
      await chmod(sticky, 0o1777);
      const target = await rootDir();
      const planted = join(sticky, 'netmon');
      await symlink(target, planted);
      await lchown(planted, 65534, 65534);
      const message = linkOwnedBy65534(planted);
      expect(await validate({ path: 'sticky/netmon/flows.jsonl' })).toEqual([{ key: 'path', message }]);
      const e = exporter({ path: 'sticky/netmon/flows.jsonl' });
      await expect(e.start()).rejects.toThrow(
        `file exporter: cannot open ${join(planted, 'flows.jsonl')}: ${message}`,
      );
      await e.shutdown();
      // Above a folder still to create: refused before anything is made behind the link.
      const deeper = exporter({ path: 'sticky/netmon/sub/flows.jsonl' });
      await expect(deeper.start()).rejects.toThrow(linkOwnedBy65534(planted, join(planted, 'sub')));
      await deeper.shutdown();
      expect(await readdir(target)).toEqual([]);
    },
  );

  it.skipIf(!privileged)(
    "refuses another user's link above the output directory, even in a folder only root may write in (root only: lchown)",
    async () => {
      const target = await rootDir();
      await mkdir(join(target, 'netmon'), { mode: 0o750 });
      const planted = join(dir, 'logs');
      await symlink(target, planted);
      await lchown(planted, 65534, 65534);
      const message = linkOwnedBy65534(planted, join(planted, 'netmon'));
      expect(await validate({ path: 'logs/netmon/flows.jsonl' })).toEqual([{ key: 'path', message }]);
      await expect(exporter({ path: 'logs/netmon/flows.jsonl' }).start()).rejects.toThrow(message);
      expect(await readdir(join(target, 'netmon'))).toEqual([]);
    },
  );

  it('refuses a folder above it that its group may write in without the sticky bit, and accepts it with the bit', async () => {
    const logs = join(dir, 'log');
    await mkdir(join(logs, 'netmon'), { recursive: true, mode: 0o750 });
    await chmod(logs, 0o775);
    const message = `${logs}, a folder above ${join(logs, 'netmon')}, is writable by group without the sticky bit (mode 0775): whoever can write there could rename a folder in it away and put another, or a link, in its place; chmod g-w ${logs}, or choose a folder of the exporter's own such as /var/lib/netmon`;
    expect(await validate({ path: 'log/netmon/flows.jsonl' })).toEqual([{ key: 'path', message }]);
    const e = exporter({ path: 'log/netmon/flows.jsonl' });
    await expect(e.start()).rejects.toThrow(message);
    await e.shutdown();
    expect(await readdir(join(logs, 'netmon'))).toEqual([]);

    // The sticky bit stops a group member from renaming what is not theirs.
    await chmod(logs, 0o1775);
    expect(await validate({ path: 'log/netmon/flows.jsonl' })).toEqual([]);
    const ok = exporter({ path: 'log/netmon/flows.jsonl' });
    await ok.start();
    await ok.export(FlowBatch.from([flow(1)]));
    await ok.shutdown();
    expect(await readFile(join(logs, 'netmon/flows.jsonl'), 'utf8')).toBe(
      encodeFlowRecords(FlowBatch.from([flow(1)]))[0],
    );
  });

  it.skipIf(!privileged)(
    "refuses root:nogroup 0775 above it, where a group member put a link in the real folder's place (root only: chown)",
    async () => {
      const target = await rootDir();
      const logs = join(dir, 'log');
      await mkdir(join(logs, 'netmon'), { recursive: true, mode: 0o750 });
      await chown(logs, 0, 65534);
      await chmod(logs, 0o775);
      // What a member of the group can do there: rename the real folder away, put a link in its place.
      await rename(join(logs, 'netmon'), join(logs, 'moved'));
      await symlink(target, join(logs, 'netmon'));
      await lchown(join(logs, 'netmon'), 65534, 65534);
      const message = `${logs}, a folder above ${join(logs, 'netmon')}, is writable by group without the sticky bit (mode 0775): whoever can write there could rename a folder in it away and put another, or a link, in its place; chmod g-w ${logs}, or choose a folder of the exporter's own such as /var/lib/netmon`;
      expect(await validate({ path: 'log/netmon/flows.jsonl' })).toEqual([{ key: 'path', message }]);
      await expect(exporter({ path: 'log/netmon/flows.jsonl' }).start()).rejects.toThrow(message);
      expect(await readdir(target)).toEqual([]);
      // With the sticky bit the folder is fine, and the planted link is still refused.
      await chmod(logs, 0o1775);
      expect(await validate({ path: 'log/netmon/flows.jsonl' })).toEqual([
        { key: 'path', message: linkOwnedBy65534(join(logs, 'netmon')) },
      ]);
      expect(await readdir(target)).toEqual([]);
    },
  );

  it("follows a link of its own user's, absolute or relative, and writes where it leads", async () => {
    const real = join(outside, 'real');
    await mkdir(real, { mode: 0o750 });
    await symlink(real, join(dir, 'out'));
    await mkdir(join(dir, 'a'), { mode: 0o750 });
    await symlink('../out', join(dir, 'a/rel'));
    expect(await validate({ path: 'out/flows.jsonl' })).toEqual([]);
    expect(await validate({ path: 'a/rel/flows.jsonl' })).toEqual([]);
    const e = exporter({ path: 'a/rel/flows.jsonl' });
    await e.start();
    await e.export(FlowBatch.from([flow(1)]));
    await e.shutdown();
    expect(await readFile(join(real, 'flows.jsonl'), 'utf8')).toBe(
      encodeFlowRecords(FlowBatch.from([flow(1)]))[0],
    );
    // A folder to create behind the link is made in the real folder, mode 0750.
    const sub = exporter({ path: 'out/sub/flows.jsonl' });
    await sub.start();
    await sub.shutdown();
    expect((await lstat(join(real, 'sub'))).isDirectory()).toBe(true);
    expect(await mode(join(real, 'sub'))).toBe(0o750);
  });

  it("accepts its own user's link in a sticky folder: nobody else may replace it", async () => {
    const sticky = join(dir, 'sticky');
    await mkdir(sticky);
    await chmod(sticky, 0o1777);
    const real = join(outside, 'real');
    await mkdir(real, { mode: 0o750 });
    await symlink(real, join(sticky, 'netmon'));
    expect(await validate({ path: 'sticky/netmon/flows.jsonl' })).toEqual([]);
  });

  it('checks the folders a link leads through as if they had been named', async () => {
    const open = join(outside, 'open');
    await mkdir(join(open, 'real'), { recursive: true, mode: 0o750 });
    await chmod(open, 0o777);
    await symlink(join(open, 'real'), join(dir, 'out'));
    const message = `${open}, a folder on the way to ${join(dir, 'out')}, is writable by group and others without the sticky bit (mode 0777): whoever can write there could rename a folder in it away and put another, or a link, in its place; chmod go-w ${open}, or choose a folder of the exporter's own such as /var/lib/netmon`;
    expect(await validate({ path: 'out/flows.jsonl' })).toEqual([{ key: 'path', message }]);
    await expect(exporter({ path: 'out/flows.jsonl' }).start()).rejects.toThrow(message);
    expect(await readdir(join(open, 'real'))).toEqual([]);
  });

  it('holds the real output directory behind a link to the output directory rule: its owner writes, nobody else', async () => {
    const real = join(outside, 'shared');
    await mkdir(real);
    await chmod(real, 0o770);
    await symlink(real, join(dir, 'out'));
    const message = `${join(dir, 'out')} (really ${real}) is writable by group (mode 0770): whoever can write there could put a link or a file in the exporter's place; chmod go-w ${real}, or choose another directory`;
    expect(await validate({ path: 'out/flows.jsonl' })).toEqual([{ key: 'path', message }]);
    await expect(exporter({ path: 'out/flows.jsonl' }).start()).rejects.toThrow(message);
    // Reached by a relative link that ends in '..': the folder it lands on is the output directory, held
    // to that rule although the way through it to x passes (sticky).
    const sticky = join(outside, 'sticky');
    await mkdir(join(sticky, 'x'), { recursive: true, mode: 0o750 });
    await chmod(sticky, 0o1770);
    await symlink(join(sticky, 'x'), join(dir, 'x'));
    await symlink('x/..', join(dir, 'up'));
    expect(await validate({ path: 'up/flows.jsonl' })).toEqual([
      {
        key: 'path',
        message: `${join(dir, 'up')} (really ${sticky}) is writable by group (mode 1770): whoever can write there could put a link or a file in the exporter's place; chmod go-w ${sticky}, or choose another directory`,
      },
    ]);
    expect(await readdir(sticky)).toEqual(['x']);
    expect(await readdir(real)).toEqual([]);
  });

  it('refuses a link to a folder that does not exist, and creates nothing behind it', async () => {
    const missing = join(outside, 'missing');
    await symlink(missing, join(dir, 'out'));
    const message = `cannot create ${join(dir, 'out/sub')}: ${join(dir, 'out')} is a symbolic link to ${missing}, and ${missing} does not exist; create it, or name a folder that exists`;
    expect(await validate({ path: 'out/sub/flows.jsonl' })).toEqual([{ key: 'path', message }]);
    await expect(exporter({ path: 'out/sub/flows.jsonl' }).start()).rejects.toThrow(message);
    expect(await readdir(outside)).toEqual([]);
  });

  it('refuses a loop of links', async () => {
    await symlink('b', join(dir, 'a'));
    await symlink('a', join(dir, 'b'));
    expect(await validate({ path: 'a/flows.jsonl' })).toEqual([
      {
        key: 'path',
        message: `cannot use ${join(dir, 'a')}: more than 40 symbolic links on the way (a loop?); name the real folder`,
      },
    ]);
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

  it('refuses a file with a second name (a hard link): it may be another file linked in', async () => {
    const target = await victim();
    const file = join(dir, 'flows.jsonl');
    await link(target, file);
    const message = `${file} has 2 names (hard links): it may be another file linked in under this one; the exporter appends only to a file of its own with one name: remove it`;
    expect(await validate({ path: 'flows.jsonl' })).toEqual([{ key: 'path', message }]);
    const e = exporter({ path: 'flows.jsonl' });
    await expect(e.start()).rejects.toThrow(`file exporter: cannot open ${file}: ${message}`);
    await expect(e.export(FlowBatch.from([flow(1)]))).rejects.toThrow('has 2 names');
    await e.shutdown();
    expect(await readFile(target, 'utf8')).toBe('root:only:secret\n');
    expect(await mode(target)).toBe(0o600);
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
