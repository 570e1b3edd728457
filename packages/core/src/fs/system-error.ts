import { getSystemErrorMessage } from 'node:util';

/** A system call's error as `ENOSPC (no space left on device)`; any other error's message. */
export function systemError(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  // System call errors carry a negative errno; Node's own SystemError (ERR_FS_EISDIR from fs.rm) a
  // positive one, which getSystemErrorMessage refuses by throwing: its message says it instead.
  if (typeof e?.code === 'string' && typeof e.errno === 'number' && e.errno < 0) {
    return `${e.code} (${getSystemErrorMessage(e.errno)})`;
  }
  return err instanceof Error ? err.message : String(err);
}
