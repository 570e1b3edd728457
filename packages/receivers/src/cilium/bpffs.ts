// Whether maps_dir is on a bpf file system. Only a bpffs holds pinned maps: a file elsewhere by a map's
// name (the host's /sys/fs/bpf not mounted into the pod, maps_dir a plain directory of the image) makes
// the kernel refuse to open it with EACCES, which reads as "Permission denied" and looks like a missing
// capability. Checked by statfs(2) instead, so the error says what is wrong. Loaded by the factory at
// validate time: node:fs only, never the addon.
import { statfsSync } from 'node:fs';

/** statfs(2) f_type of a bpf file system (BPF_FS_MAGIC, include/uapi/linux/magic.h). */
export const BPF_FS_MAGIC = 0xcafe4a11;

/** Names of the file systems a maps_dir is most often on by mistake (include/uapi/linux/magic.h). */
const KNOWN: Record<number, string> = {
  16914836: 'tmpfs',
  1650812274: 'sysfs',
  2035054128: 'overlayfs',
  61267: 'ext4',
  1481003842: 'xfs',
  2435016766: 'btrfs',
  40864: 'proc',
};

/** The file system type of `path` (statfs f_type, unsigned), or undefined when it cannot be stat'ed. */
export function fsTypeOf(path: string): number | undefined {
  try {
    return statfsSync(path).type >>> 0;
  } catch {
    return undefined;
  }
}

/** What to say about a maps_dir on a file system of `type`, which is not a bpffs. */
export function notBpfFs(dir: string, type: number): string {
  const name = KNOWN[type];
  return `${dir} is not a bpf file system (type 0x${type.toString(16)}${name ? `, ${name}` : ''}): only a bpffs holds pinned maps — mount the host's /sys/fs/bpf into the pod (hostPath) and point maps_dir at Cilium's directory in it (tc/globals)`;
}
