import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { ConfigIssue } from '@netmon/core';
import { fileKind, pseudoFilesystemOf, systemError } from '@netmon/core';
import type { FileReceiverConfig } from './config.js';

/**
 * `netmon validate` promises that a valid config starts, so the file must be a regular file that can be
 * read now, not only when `start` opens it. Checked with stat and access rather than by opening: opening
 * a FIFO waits for a writer. A FIFO, a device or a socket is refused even though it could be read: a
 * replay needs an end, a size and a position to resume from, which none of them has.
 */
export async function checkReadable(config: FileReceiverConfig, configDir: string): Promise<ConfigIssue[]> {
  const file = resolve(configDir, config.path);
  try {
    const s = await stat(file);
    if (!s.isFile()) {
      return [
        {
          key: 'path',
          message: `${file} is ${fileKind(s)}, not a regular file; path names the JSON Lines file to replay`,
        },
      ];
    }
    await access(file, constants.R_OK);
  } catch (err) {
    return [{ key: 'path', message: `cannot read ${file}: ${systemError(err)}` }];
  }
  if (config.checkpoint_file === undefined) return [];
  const problem = await checkCheckpointPath(resolve(configDir, config.checkpoint_file), file);
  return problem === null ? [] : [{ key: 'checkpoint_file', message: problem }];
}

/**
 * Why the checkpoint could not be kept at `file`, or null: it is not the replayed file, it is a regular
 * file this process may read and write when it exists, and otherwise the nearest existing folder on its
 * way is a directory it may write in (missing folders are created).
 */
export async function checkCheckpointPath(file: string, replayed: string): Promise<string | null> {
  const same = `${file} is the file being replayed; the checkpoint needs a file of its own`;
  if (file === replayed) return same;
  const pseudo = pseudoFilesystemOf(file);
  if (pseudo !== undefined) {
    return `${file} is under ${pseudo}, a kernel pseudo-filesystem where no file can be created; keep the checkpoint on a real filesystem (e.g. /var/lib/netmon/replay.checkpoint)`;
  }
  try {
    const s = await stat(file);
    if (s.isDirectory()) return `${file} is a directory, not a file`;
    if (!s.isFile()) return `${file} is ${fileKind(s)}, not a regular file`;
    const r = await stat(replayed).catch(() => undefined);
    if (r !== undefined && r.dev === s.dev && r.ino === s.ino) return same;
    await access(file, constants.R_OK | constants.W_OK);
    return null;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    // ENOTDIR: a part of the path is a file; the walk below says which.
    if (e.code !== 'ENOENT' && e.code !== 'ENOTDIR') return `cannot use ${file}: ${systemError(err)}`;
  }
  for (let dir = dirname(file); ; dir = dirname(dir)) {
    try {
      const s = await stat(dir);
      if (!s.isDirectory()) return `cannot create ${file}: ${dir} is not a directory`;
      await access(dir, constants.W_OK | constants.X_OK);
      return null;
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if ((e.code === 'ENOENT' || e.code === 'ENOTDIR') && dirname(dir) !== dir) continue;
      return `cannot create ${file} in ${dir}: ${systemError(err)}`;
    }
  }
}
