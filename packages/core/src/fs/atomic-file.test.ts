import { execFileSync } from 'node:child_process';
import {
  chmod,
  chown,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { setAside, syncDirectory, writeFileAtomic } from './atomic-file.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'netmon-atomic-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('writeFileAtomic', () => {
  it('replaces the content whole, leaves no .tmp, and makes the file its owner’s only', async () => {
    const file = join(dir, 'state.json');
    await writeFile(file, 'an older and much longer content than the next one', { mode: 0o644 });
    await writeFileAtomic(file, 'new');
    expect(await readFile(file, 'utf8')).toBe('new');
    expect(await readdir(dir)).toEqual(['state.json']);
    expect((await stat(file)).mode & 0o777).toBe(0o600);

    await writeFileAtomic(file, new Uint8Array([1, 2, 3]));
    expect([...(await readFile(file))]).toEqual([1, 2, 3]);
    expect(await readdir(dir)).toEqual(['state.json']);
  });

  it('creates missing directories', async () => {
    const file = join(dir, 'a', 'b', 'c', 'delta.state');
    await writeFileAtomic(file, 'x');
    expect(await readFile(file, 'utf8')).toBe('x');
    expect(await readdir(join(dir, 'a', 'b', 'c'))).toEqual(['delta.state']);
  });

  it('writes over a .tmp a crash left behind, with the owner-only mode all the same', async () => {
    const file = join(dir, 'state.json');
    await writeFile(`${file}.tmp`, 'half a write from before the crash, longer than the new content');
    await chmod(`${file}.tmp`, 0o644);
    await writeFileAtomic(file, 'whole');
    expect(await readFile(file, 'utf8')).toBe('whole');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(await readdir(dir)).toEqual(['state.json']);
  });

  // Root writes the state, perhaps in a folder others may write to: whatever was planted at the .tmp name
  // — a link to another file, a FIFO, a file of another user's — is replaced, never written through,
  // waited on, or kept with its owner.
  it('never writes through a link at the .tmp name', async () => {
    const file = join(dir, 'state.json');
    const victim = join(dir, 'victim');
    await writeFile(victim, 'precious');
    await symlink(victim, `${file}.tmp`);
    await writeFileAtomic(file, 'state');
    expect(await readFile(victim, 'utf8')).toBe('precious');
    expect(await readFile(file, 'utf8')).toBe('state');
    expect((await lstat(file)).isFile()).toBe(true);
  });

  it('replaces a FIFO at the .tmp name at once instead of waiting for a reader', async () => {
    const file = join(dir, 'state.json');
    execFileSync('mkfifo', [`${file}.tmp`]);
    await writeFileAtomic(file, 'state');
    expect(await readFile(file, 'utf8')).toBe('state');
  });

  it.skipIf(process.geteuid?.() !== 0 && !process.env.NETMON_REQUIRE_PRIVILEGED)(
    'a .tmp planted by another user does not make the state file theirs',
    async () => {
      const file = join(dir, 'state.json');
      await writeFile(`${file}.tmp`, 'planted');
      await chown(`${file}.tmp`, 65534, 65534);
      await writeFileAtomic(file, 'state');
      const st = await stat(file);
      expect([st.uid, st.mode & 0o777]).toEqual([process.geteuid?.(), 0o600]);
    },
  );

  it('rejects when the rename fails, and removes its .tmp', async () => {
    // A non-empty directory where the file should be: the rename over it fails.
    const file = join(dir, 'state.json');
    await mkdir(join(file, 'inside'), { recursive: true });
    await expect(writeFileAtomic(file, 'data')).rejects.toMatchObject({
      code: expect.stringMatching(/EISDIR|ENOTEMPTY|EEXIST/),
    });
    expect(await readdir(dir)).toEqual(['state.json']);
    expect(await readdir(file)).toEqual(['inside']);
  });
});

describe('syncDirectory', () => {
  it('resolves for a directory and for one that is not there (the rename is atomic all the same)', async () => {
    await expect(syncDirectory(dir)).resolves.toBeUndefined();
    await expect(syncDirectory(join(dir, 'missing'))).resolves.toBeUndefined();
  });
});

describe('setAside', () => {
  it('moves the file to <file>.<reason> and says where', async () => {
    const file = join(dir, 'delta.state');
    await writeFile(file, 'damaged');
    expect(await setAside(file, 'corrupt')).toEqual({ movedTo: `${file}.corrupt` });
    expect(await readdir(dir)).toEqual(['delta.state.corrupt']);
    expect(await readFile(`${file}.corrupt`, 'utf8')).toBe('damaged');
  });

  it('reports the error when it cannot move the file, and leaves it in place', async () => {
    const file = join(dir, 'devzero.queue.json');
    const missing = await setAside(file, 'unreadable');
    expect('error' in missing && (missing.error as NodeJS.ErrnoException).code).toBe('ENOENT');

    // The name it would take is a non-empty directory.
    await writeFile(file, 'precious');
    await mkdir(join(`${file}.unreadable`, 'taken'), { recursive: true });
    const taken = await setAside(file, 'unreadable');
    expect('error' in taken && (taken.error as NodeJS.ErrnoException).code).toMatch(
      /EISDIR|ENOTEMPTY|EEXIST/,
    );
    expect(await readFile(file, 'utf8')).toBe('precious');
  });
});
