// What a path is, in the words every component's messages use, and where no file can be: shared so that
// the file receiver, the file exporter, delta's state file and the config loader say the same thing.
import type { Stats } from 'node:fs';

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
