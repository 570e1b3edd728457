// What makes a path safe to write flow records to, shared by validation and the exporter (which checks
// again each time it opens the file: validation may be long past). The threat is a user who can write in
// the output directory, or above it: running as root, the exporter would write through a link they plant
// (into /etc/shadow, say) or rotate a file they put there. So: the file itself is never followed (O_NOFOLLOW,
// checked here first), must be a regular file of the exporter's own user, and every folder on the way to
// it belongs to root or that user and is not open to others; the output directory itself not even to its
// group.
import type { Stats } from 'node:fs';
import { lstat, realpath, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fileKind } from '@netmon/core';

/** Mode of the directories the exporter creates: its owner writes, its group may read. */
export const DIRECTORY_MODE = 0o750;

const octal = (mode: number) => (mode & 0o7777).toString(8).padStart(4, '0');

/** The effective uid: what the kernel checks permissions against. */
export const euid = (): number => process.geteuid?.() ?? 0;

/** What is wrong with `file` as it is now (lstat: a link is not followed), or undefined. */
export function fileProblem(file: string, st: Stats): string | undefined {
  if (st.isSymbolicLink()) {
    return `${file} is a symbolic link; the exporter does not follow links: remove it, or name the file it points to`;
  }
  if (st.isDirectory()) return `${file} is a directory; path names the file to append records to`;
  // A device or a FIFO cannot be rotated (renaming /dev/null would break the node), and opening one can
  // block or have side effects.
  if (!st.isFile()) {
    return `${file} is ${fileKind(st)}, not a regular file; the exporter appends to and rotates regular files only`;
  }
  const uid = euid();
  if (st.uid !== uid) {
    return `${file} belongs to uid ${st.uid}, not to the user the exporter runs as (uid ${uid}); the exporter appends only to its own files: remove it, or chown it`;
  }
  return undefined;
}

/** fileProblem for the file at `file` when it exists; undefined when it does not. */
export async function existingFileProblem(file: string): Promise<string | undefined> {
  let st: Stats;
  try {
    st = await lstat(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  return fileProblem(file, st);
}

function writers(mode: number): string | undefined {
  const group = (mode & 0o020) !== 0;
  const others = (mode & 0o002) !== 0;
  if (group && others) return 'group and others';
  if (group) return 'group';
  if (others) return 'others';
  return undefined;
}

/**
 * What is wrong with the directories `file` is (or will be) in, or undefined. `existing` is the output
 * directory when it exists, or else its nearest existing ancestor (the exporter creates the rest, mode 0750).
 * The output directory may be written by its owner only. A folder above it may be written by its group
 * (Ubuntu's /var/log is root:syslog 0775), and by others only with the sticky bit (/tmp), which keeps them
 * from renaming what is not theirs; each belongs to root or the exporter's user.
 */
export async function directoryProblem(file: string, existing = dirname(file)): Promise<string | undefined> {
  const output = dirname(file);
  const uid = euid();
  const owner = (st: Stats) => st.uid === 0 || st.uid === uid;
  if (existing === output) {
    const st = await stat(existing);
    if (!owner(st)) {
      return `${output} belongs to uid ${st.uid}, not to the user the exporter runs as (uid ${uid}): its owner could put a link or a file in the exporter's place; chown it, or choose another directory`;
    }
    const who = writers(st.mode);
    if (who) {
      const shared = st.mode & 0o1002;
      const advice =
        shared === 0o1002
          ? `write to a folder of the exporter's own in it (e.g. ${join(output, 'netmon', basename(file))}: the exporter creates it, mode 0750), or choose another directory`
          : `chmod go-w ${output}, or choose another directory`;
      return `${output} is writable by ${who} (mode ${octal(st.mode)}): whoever can write there could put a link or a file in the exporter's place; ${advice}`;
    }
  }
  // The folders above, as named and as they really are: a link on the way is only as safe as the folder
  // it sits in, and its target only as safe as the folders above that.
  const above: string[] = [];
  const climb = (from: string) => {
    for (let d = from; ; d = dirname(d)) {
      if (!above.includes(d)) above.push(d);
      if (d === dirname(d)) break;
    }
  };
  const start = existing === output ? dirname(output) : existing;
  climb(start);
  const real = await realpath(existing);
  climb(existing === output ? dirname(real) : real);
  for (const d of above) {
    const st = await stat(d);
    if (!owner(st)) {
      return `${d}, a folder above ${output}, belongs to uid ${st.uid}, not to root or the user the exporter runs as (uid ${uid}): its owner could put another folder in its place; choose another directory`;
    }
    if ((st.mode & 0o1002) === 0o002) {
      return `${d}, a folder above ${output}, is writable by others without the sticky bit (mode ${octal(st.mode)}): anyone could put another folder in its place; chmod o-w ${d} (or +t), or choose another directory`;
    }
  }
  return undefined;
}

/** A file mode as file_mode spells it ("0640", "640"): why it is refused, or undefined. */
export function fileModeProblem(text: string): string | undefined {
  if (!/^0?[0-7]{3}$/.test(text)) {
    return `must be an octal mode of 3 or 4 digits without special bits, e.g. "0640"; got "${text}"`;
  }
  const mode = Number.parseInt(text, 8);
  if (mode & 0o111)
    return `"${text}" sets execute bits (${octal(mode & 0o111)}); flow records are data: use e.g. "0640"`;
  if (mode & 0o002) {
    return `"${text}" lets others write the file (0002); use e.g. "0640", or "0660" for a group that may`;
  }
  if ((mode & 0o600) !== 0o600) {
    return `"${text}" must let the owner read and write (6 as its owner digit), e.g. "0640"`;
  }
  return undefined;
}
