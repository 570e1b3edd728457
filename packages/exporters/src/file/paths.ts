// What both validation and the exporter say about a path, apart from the exporter so that the factory's
// `validate` does not load it.

/**
 * The kernel's pseudo-filesystems: no file can be created there, and Node's recursive mkdir under /proc
 * never returns, so such a path must be refused before anything tries it.
 */
export function pseudoFilesystemOf(file: string): string | undefined {
  return ['/proc', '/sys'].find((root) => file === root || file.startsWith(`${root}/`));
}
