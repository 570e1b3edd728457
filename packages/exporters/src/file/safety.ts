// What makes a path safe to write flow records to, shared by validation and the exporter (which checks
// again each time it opens the file: validation may be long past). The threat is a user who can write in
// the output directory, or on the way to it: running as root, the exporter would write through a link they
// plant (into /etc/shadow, say) or rotate a file they put there. O_NOFOLLOW guards the file's own name only;
// the kernel follows every link before it. So the file must be a regular file of the exporter's own user
// with one name, and the way to it is walked as the kernel walks it, link by link: every link met belongs
// to root or that user, and every folder passed through belongs to root or that user and may be written by
// others only with the sticky bit; the output directory by its owner alone.
import type { Stats } from 'node:fs';
import { lstat, mkdir, readlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fileKind, pseudoFilesystemOf, systemError } from '@netmon/core';

/** Mode of the directories the exporter creates: its owner writes, its group may read. */
export const DIRECTORY_MODE = 0o750;

/** Where the messages send a user whose path is unsafe: a folder nobody else may write in. */
const SAFE_EXAMPLE = '/var/lib/netmon';

/** Links followed before giving up, as Linux does (MAXSYMLINKS, then ELOOP). */
const MAX_LINKS = 40;

const octal = (mode: number) => (mode & 0o7777).toString(8).padStart(4, '0');

/** The effective uid: what the kernel checks permissions against. */
export const euid = (): number => process.geteuid?.() ?? 0;

/** What is wrong with `file` as it is now (lstat, or fstat of the opened file), or undefined. */
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
  // A second name means the same file is also somewhere else: root's own /etc/shadow, linked in here,
  // passes every other check.
  if (st.nlink > 1) {
    return `${file} has ${st.nlink} names (hard links): it may be another file linked in under this one; the exporter appends only to a file of its own with one name: remove it`;
  }
  if (st.nlink === 0) return `${file} was removed while it was being opened`;
  return undefined;
}

/** fileProblem for the file at `file` when it exists; undefined when it (or a folder on the way) does not. */
export async function existingFileProblem(file: string): Promise<string | undefined> {
  let st: Stats;
  try {
    st = await lstat(file);
  } catch (err) {
    // ENOTDIR, ELOOP: something on the way is not a folder, or links loop; inspectOutputDirectory says what.
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP') return undefined;
    throw err;
  }
  return fileProblem(file, st);
}

function writers(mode: number): { who: string; flag: string } | undefined {
  const group = (mode & 0o020) !== 0;
  const others = (mode & 0o002) !== 0;
  if (group && others) return { who: 'group and others', flag: 'go' };
  if (group) return { who: 'group', flag: 'g' };
  if (others) return { who: 'others', flag: 'o' };
  return undefined;
}

/** The output directory's path as the walk found it. */
export interface OutputDirectory {
  /** The deepest folder of the output directory's path that exists, links resolved. */
  real: string;
  /** That folder as the path names it. */
  named: string;
  /** Folders still to create below `real`, in order; empty when the output directory exists. */
  missing: string[];
  /** Why the path is unsafe, or cannot lead to a directory; the walk stops at the first. */
  problem?: string;
}

interface Frame {
  parts: string[];
  next: number;
  /** The link these parts are the target of; undefined for the path as named. */
  link?: string;
  target?: string;
}

const partsOf = (p: string) => p.split('/').filter((s) => s.length > 0);

/**
 * Walks the output directory of `file` as the kernel resolves it, from / down, one name at a time with
 * lstat, following each link where the kernel would (its target walked the same way). A link met must
 * belong to root or the exporter's user: in a sticky folder its owner may replace it, and it is only as
 * safe as that. A folder passed through must belong to root or that user, and may be written by its group
 * or others only with the sticky bit, which stops them from renaming what is not theirs; without it they
 * could move a folder away and put a link in its place. The output directory itself may be written by its
 * owner only: anyone else could put a link or a file at the names it writes. Once the walk succeeds, the
 * path stays as checked: only root or the exporter's user can change what it passed through.
 */
export async function inspectOutputDirectory(file: string): Promise<OutputDirectory> {
  const output = dirname(file);
  const uid = euid();
  const trusted = (st: Stats) => st.uid === 0 || st.uid === uid;
  const frames: Frame[] = [{ parts: partsOf(output), next: 0 }];
  let real = '/';
  let links = 0;
  const at = (problem?: string): OutputDirectory => {
    const named = join('/', ...frames[0].parts.slice(0, frames[0].next));
    return { real, named, missing: [], problem };
  };
  const where = (d: string) =>
    output === d || output.startsWith(d === '/' ? d : `${d}/`) ? 'above' : 'on the way to';
  const onTheWay = (d: string, st: Stats): string | undefined => {
    if (!trusted(st)) {
      return `${d}, a folder ${where(d)} ${output}, belongs to uid ${st.uid}, not to root or the user the exporter runs as (uid ${uid}): its owner could put another folder or a link in its place; choose another directory`;
    }
    const w = writers(st.mode);
    if (w && (st.mode & 0o1000) === 0) {
      return `${d}, a folder ${where(d)} ${output}, is writable by ${w.who} without the sticky bit (mode ${octal(st.mode)}): whoever can write there could rename a folder in it away and put another, or a link, in its place; chmod ${w.flag}-w ${d}, or choose a folder of the exporter's own such as ${SAFE_EXAMPLE}`;
    }
    return undefined;
  };
  const drop = () => {
    while (frames.length > 1 && frames[frames.length - 1].next === frames[frames.length - 1].parts.length) {
      frames.pop();
    }
  };
  const done = () => frames.length === 1 && frames[0].next === frames[0].parts.length;

  if (!done()) {
    const problem = onTheWay('/', await lstat('/'));
    if (problem) return at(problem);
  }
  while (!done()) {
    const frame = frames[frames.length - 1];
    const name = frame.parts[frame.next++];
    drop();
    // '..' climbs to a folder the walk has passed already (every prefix of real was checked); whether it
    // is the output directory is checked after the loop.
    if (name === '.') continue;
    if (name === '..') {
      real = dirname(real);
      continue;
    }
    const path = join(real, name);
    let st: Stats;
    try {
      st = await lstat(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      // mkdir would not make a folder behind a link either (ENOTDIR): say where it leads instead.
      if (frame.link) {
        return at(
          `cannot create ${output}: ${frame.link} is a symbolic link to ${frame.target}, and ${path} does not exist; create it, or name a folder that exists`,
        );
      }
      const named = join('/', ...frame.parts.slice(0, frame.next - 1));
      return { real, named, missing: frame.parts.slice(frame.next - 1) };
    }
    if (st.isSymbolicLink()) {
      if (!trusted(st)) {
        const onWay = path === output && frames.length === 1 && done() ? '' : ` on the way to ${output}`;
        return at(
          `${path} is a symbolic link${onWay} that belongs to uid ${st.uid}, not to root or the user the exporter runs as (uid ${uid}): its owner could replace it with a link to any folder; remove it and name the real folder, or choose another directory`,
        );
      }
      if (++links > MAX_LINKS) {
        return at(
          `cannot use ${output}: more than ${MAX_LINKS} symbolic links on the way (a loop?); name the real folder`,
        );
      }
      const target = await readlink(path);
      // A link's own folder was checked when the walk entered it; its target is walked from / or from there.
      if (target.startsWith('/')) real = '/';
      frames.push({ parts: partsOf(target), next: 0, link: path, target });
      drop();
      continue;
    }
    if (!st.isDirectory()) {
      return at(
        `cannot create ${output}: ${path} is ${st.isFile() ? 'a file' : fileKind(st)}, not a directory`,
      );
    }
    real = path;
    // The output directory gets the stricter check below.
    if (!done()) {
      const problem = onTheWay(real, st);
      if (problem) return at(problem);
    }
  }
  const st = await lstat(real);
  const shown = real === output ? output : `${output} (really ${real})`;
  if (!trusted(st)) {
    return at(
      `${shown} belongs to uid ${st.uid}, not to the user the exporter runs as (uid ${uid}): its owner could put a link or a file in the exporter's place; chown it, or choose another directory`,
    );
  }
  const w = writers(st.mode);
  if (w) {
    // Shared like /tmp: no chmod makes it the exporter's own.
    const advice =
      (st.mode & 0o1002) === 0o1002
        ? `choose a folder only the exporter's user may write in, such as ${join(SAFE_EXAMPLE, basename(file))} (the exporter creates it, mode 0750)`
        : `chmod go-w ${real}, or choose another directory`;
    return at(
      `${shown} is writable by ${w.who} (mode ${octal(st.mode)}): whoever can write there could put a link or a file in the exporter's place; ${advice}`,
    );
  }
  return at();
}

/**
 * The output directory, made ready to open the file in: checked, its missing folders created (mode 0750),
 * and checked again. Returns what is wrong, or undefined. The folders are made one at a time in the real
 * folder the walk found, so a link planted on the way (a race in a sticky folder) is never followed to make
 * one; a name taken meanwhile is found by the second walk.
 */
export async function prepareOutputDirectory(file: string): Promise<string | undefined> {
  const found = await inspectOutputDirectory(file);
  if (found.problem) return found.problem;
  if (found.missing.length === 0) return undefined;
  // Node's mkdir under /proc never returns; a link can lead there (/dev/fd is /proc/self/fd).
  const pseudo = pseudoFilesystemOf(found.real);
  if (pseudo) return `cannot create ${dirname(file)}: ${found.named} is ${found.real}, under ${pseudo}`;
  let d = found.real;
  for (const name of found.missing) {
    d = join(d, name);
    try {
      // 0750 is only narrowed by the umask, never widened: new folders are the exporter's own.
      await mkdir(d, DIRECTORY_MODE);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') return `cannot create ${d}: ${systemError(err)}`;
    }
  }
  const made = await inspectOutputDirectory(file);
  if (made.problem) return made.problem;
  if (made.missing.length > 0)
    return `cannot create ${dirname(file)}: ${join(made.real, made.missing[0])} vanished`;
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
