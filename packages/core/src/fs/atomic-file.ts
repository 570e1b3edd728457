// Files that must survive a crash or a power cut whole: the state of delta and of the devzero exporter.
import { constants } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import path from 'node:path';

const WRITE_FLAGS =
  constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/**
 * Writes `data` to `file` atomically: `file.tmp`, fsync, rename over `file`, fsync of the directory (so
 * the rename itself is on disk). A crash at any point leaves the old file or the new one, never a mix.
 * Creates missing directories; the file is readable by its owner only. One writer per file at a time:
 * two would share the `.tmp` name.
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${file}.tmp`;
  await mkdir(path.dirname(file), { recursive: true, mode: 0o750 });
  // The `.tmp` is made afresh (O_EXCL): whatever is there — a crash's leftover, or a file, link or FIFO
  // another user planted in a folder they may write to — is removed first, so the file that becomes `file`
  // is always this process's own (a planted one would keep its owner, who could then rewrite the state).
  await rm(tmp, { force: true });
  const handle = await open(tmp, WRITE_FLAGS, 0o600);
  try {
    try {
      // The mode given to open is narrowed by the umask; the file is its owner's only whatever the umask.
      await handle.chmod(0o600);
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, file);
  } catch (err) {
    // A partial copy (a full disk) must not keep holding the space the next write needs.
    await rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
  await syncDirectory(path.dirname(file));
}

/** Makes a directory's entries (a new or renamed file's name) durable. */
export async function syncDirectory(dir: string): Promise<void> {
  try {
    const handle = await open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // Some file systems refuse fsync on a directory; the rename is still atomic.
  }
}

/**
 * Renames a file that cannot be used (`reason`: `corrupt`, `unreadable`) to `file.<reason>`, kept for a
 * human and out of the way of the next write. Returns the new path, or the rename's error.
 */
export async function setAside(
  file: string,
  reason: string,
): Promise<{ movedTo: string } | { error: Error }> {
  const movedTo = `${file}.${reason}`;
  try {
    await rename(file, movedTo);
    return { movedTo };
  } catch (err) {
    return { error: err as Error };
  }
}
