import { getSystemErrorMessage } from 'node:util';

/** A system call's error as `ENOSPC (no space left on device)`; any other error's message. */
export function systemError(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (typeof e?.code === 'string' && typeof e.errno === 'number') {
    return `${e.code} (${getSystemErrorMessage(e.errno)})`;
  }
  return err instanceof Error ? err.message : String(err);
}
