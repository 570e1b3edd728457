import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemError } from './system-error.js';

describe('systemError', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'netmon-syserr-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('names a system call error by code and meaning', async () => {
    const err = await writeFile(path.join(dir, 'absent', 'x'), '').catch((e: unknown) => e);
    expect(systemError(err)).toBe('ENOENT (no such file or directory)');
  });

  // fs.rm on a directory throws Node's own ERR_FS_EISDIR with errno +21, which getSystemErrorMessage
  // refuses by throwing 'The value of "err" is out of range': every batch of the delta processor failed so.
  it("gives Node's own SystemError by its message, without throwing", async () => {
    const folder = path.join(dir, 'a-directory');
    await mkdir(folder);
    const err = await rm(folder).catch((e: unknown) => e);
    expect((err as NodeJS.ErrnoException).errno).toBeGreaterThan(0);
    expect(systemError(err)).toMatch(/is a directory/);
  });
});
