// What a path is, in the words every component's messages use, where no file can be, and opening only a
// regular file: shared so that the file receiver, the file exporter, delta's state file, the devzero queue
// and the config loader say the same thing, and none of them blocks on a FIFO.
import { constants, type Stats } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';

/** What a path that is not a regular file is, for messages: "a directory", "a FIFO (named pipe)", … */
export function fileKind(
  s: Pick<
    Stats,
    | 'isFile'
    | 'isDirectory'
    | 'isFIFO'
    | 'isCharacterDevice'
    | 'isBlockDevice'
    | 'isSocket'
    | 'isSymbolicLink'
  >,
): string {
  if (s.isFile()) return 'a regular file';
  if (s.isDirectory()) return 'a directory';
  if (s.isFIFO()) return 'a FIFO (named pipe)';
  if (s.isCharacterDevice()) return 'a character device';
  if (s.isBlockDevice()) return 'a block device';
  if (s.isSocket()) return 'a socket';
  if (s.isSymbolicLink()) return 'a symbolic link';
  return 'a special file';
}

/**
 * The kernel pseudo-filesystem `file` is under (`/proc`, `/sys`), if any: no file can be created there, and
 * Node's recursive mkdir under /proc never returns, so such a path must be refused before anything tries it.
 */
export function pseudoFilesystemOf(file: string): string | undefined {
  return ['/proc', '/sys'].find((root) => file === root || file.startsWith(`${root}/`));
}

/** A path that holds something other than a regular file; the message says what it is. */
export class NotRegularFileError extends Error {
  /** What the path is: "a FIFO (named pipe)", … */
  readonly kind: string;
  constructor(file: string, s: Stats) {
    const kind = fileKind(s);
    super(`${file} is ${kind}, not a regular file`);
    this.kind = kind;
  }
}

/**
 * Opens `file` with `flags` (and `mode` for a file it creates) and makes sure it is a regular file.
 * O_NONBLOCK: opening a FIFO must not wait for a peer forever (a FIFO then fails fstat's check); on a
 * regular file it changes nothing.
 */
export async function openRegularFile(file: string, flags: number, mode?: number): Promise<FileHandle> {
  const handle = await open(file, flags | constants.O_NONBLOCK, mode);
  try {
    const s = await handle.stat();
    if (!s.isFile()) throw new NotRegularFileError(file, s);
  } catch (err) {
    await handle.close();
    throw err;
  }
  return handle;
}

/** The content of `file`, which must be a regular file (a FIFO or a device is refused, never waited on). */
export async function readRegularFile(file: string): Promise<Buffer>;
export async function readRegularFile(file: string, encoding: 'utf8'): Promise<string>;
export async function readRegularFile(file: string, encoding?: 'utf8'): Promise<Buffer | string> {
  const handle = await openRegularFile(file, constants.O_RDONLY);
  try {
    return encoding ? await handle.readFile(encoding) : await handle.readFile();
  } finally {
    await handle.close();
  }
}
