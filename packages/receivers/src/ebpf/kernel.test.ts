import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  CGROUP2_SUPER_MAGIC,
  cgroup2Mount,
  effectiveCapabilities,
  hybridCgroup2,
  isOnCgroup2,
  missingBpfCapabilities,
  parseInterfaceBytes,
  parseListening,
  parsePortRange,
} from './kernel.js';
import { nodeKernel } from './node-kernel.js';
import {
  CAP,
  CAPS_ROOT,
  capMask,
  MOUNTINFO_HYBRID,
  MOUNTINFO_PRIVATE_NS_ONLY,
  MOUNTINFO_PRIVATE_NS_THEN_HOST,
  MOUNTINFO_SUBTREE_ONLY,
  MOUNTINFO_SUBTREE_THEN_HOST,
  MOUNTINFO_UNIFIED,
  MOUNTINFO_V1_ONLY,
  mountinfoWithCgroup2,
  PROC_NET_DEV,
  PROC_NET_TCP,
  PROC_NET_TCP6,
  PROC_NET_UDP,
  PROC_NET_UDP6,
  procNet,
  procNetDev,
  procStatus,
} from './testdata/proc.js';

/** exists() of a node on which only `paths` exist. */
const only =
  (...paths: string[]) =>
  (p: string) =>
    paths.includes(p);
const none = only();

describe('cgroup2Mount', () => {
  it('finds /sys/fs/cgroup on a unified host', () => {
    expect(cgroup2Mount(MOUNTINFO_UNIFIED, none)).toBe('/sys/fs/cgroup');
  });

  it('finds /sys/fs/cgroup/unified on a hybrid host, past the v1 controllers and their tmpfs', () => {
    expect(cgroup2Mount(MOUNTINFO_HYBRID, none)).toBe('/sys/fs/cgroup/unified');
  });

  it('reads the octal escapes the kernel writes for space, tab and backslash', () => {
    expect(cgroup2Mount(mountinfoWithCgroup2('/mnt/my cgroup'), none)).toBe('/mnt/my cgroup');
    expect(cgroup2Mount('41 30 0:40 / /mnt/a\\011b\\134c rw - cgroup2 cgroup2 rw', none)).toBe(
      '/mnt/a\tb\\c',
    );
    // The escaped form really is what the line holds, not the path itself.
    expect(mountinfoWithCgroup2('/mnt/my cgroup')).toContain(' /mnt/my\\040cgroup ');
  });

  it('skips a bind mount of a subtree (a container without its own cgroup namespace) for the real root', () => {
    const subtree = only('/sys/fs/cgroup/cgroup.type');
    expect(cgroup2Mount(MOUNTINFO_SUBTREE_THEN_HOST, subtree)).toBe('/host/sys/fs/cgroup');
    expect(cgroup2Mount(MOUNTINFO_SUBTREE_ONLY, subtree)).toBeUndefined();
  });

  it("in a private cgroup namespace, skips the container's own cgroup shown as / (it has cgroup.type) for the host's shown as /../../../..", () => {
    const container = only('/sys/fs/cgroup/cgroup.type');
    expect(cgroup2Mount(MOUNTINFO_PRIVATE_NS_THEN_HOST, container)).toBe('/host/sys/fs/cgroup');
    expect(cgroup2Mount(MOUNTINFO_PRIVATE_NS_ONLY, container)).toBeUndefined();
    // Whichever a root field says: a mount without cgroup.type is the hierarchy's root, one with it is not.
    expect(cgroup2Mount(MOUNTINFO_PRIVATE_NS_THEN_HOST, none)).toBe('/sys/fs/cgroup');
    expect(cgroup2Mount(MOUNTINFO_UNIFIED, only('/sys/fs/cgroup/cgroup.type'))).toBeUndefined();
  });

  it('is undefined without a cgroup2 mount, for an empty text, and ignores a cgroup (v1) named like it', () => {
    expect(cgroup2Mount(MOUNTINFO_V1_ONLY, none)).toBeUndefined();
    expect(cgroup2Mount('', none)).toBeUndefined();
    expect(cgroup2Mount('31 30 0:28 / /sys/fs/cgroup2 rw - cgroup cgroup2 rw,cpu', none)).toBeUndefined();
  });

  it('takes the mount whatever optional fields come before the separator', () => {
    expect(
      cgroup2Mount(
        '32 22 0:28 / /sys/fs/cgroup rw,nosuid shared:9 master:1 propagate_from:2 - cgroup2 cgroup2 rw',
        none,
      ),
    ).toBe('/sys/fs/cgroup');
  });

  it("on this machine: the mount it names has no cgroup.type, and the node's exists() is the file system's", () => {
    const mount = cgroup2Mount(nodeKernel.readProc('/proc/self/mountinfo') ?? '', nodeKernel.exists);
    if (mount === undefined) return; // no cgroup2 here: nothing to compare
    expect(nodeKernel.exists(mount)).toBe(true);
    expect(nodeKernel.exists(join(mount, 'cgroup.type'))).toBe(false);
    expect(nodeKernel.exists(join(mount, 'cgroup.procs'))).toBe(true);
    expect(isOnCgroup2(mount)).toBe(true);
  });
});

describe('isOnCgroup2', () => {
  it('is false for a directory of another file system and for a path that does not exist', () => {
    const dir = mkdtempSync(join(tmpdir(), 'netmon-not-cgroup-'));
    try {
      expect(isOnCgroup2(dir)).toBe(false);
      expect(isOnCgroup2(join(dir, 'missing'))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(CGROUP2_SUPER_MAGIC).toBe(0x63677270);
  });
});

describe('hybridCgroup2', () => {
  const cgroup2 = new Set(['/sys/fs/cgroup/unified', '/host/cgroup', '/host/hybrid/unified']);
  const isCgroup2 = (p: string) => cgroup2.has(p);
  it('a cgroup2 directory is itself; a hybrid root stands for its unified child; anything else stays as given', () => {
    expect(hybridCgroup2('/host/cgroup', isCgroup2)).toBe('/host/cgroup');
    expect(hybridCgroup2('/sys/fs/cgroup', isCgroup2)).toBe('/sys/fs/cgroup/unified');
    expect(hybridCgroup2('/host/hybrid/', isCgroup2)).toBe('/host/hybrid/unified');
    expect(hybridCgroup2('/srv/v1', isCgroup2)).toBe('/srv/v1');
  });
});

describe('parsePortRange', () => {
  it('reads the two numbers of ip_local_port_range, tab or spaces between them', () => {
    expect(parsePortRange('32768\t60999\n')).toEqual({ low: 32768, high: 60999 });
    expect(parsePortRange('1024 65535')).toEqual({ low: 1024, high: 65535 });
  });

  it("falls back to the kernel's default range for a missing or nonsensical text", () => {
    for (const text of [undefined, '', 'junk', '60999 32768', '0 100', '1000 70000']) {
      expect(parsePortRange(text)).toEqual({ low: 32768, high: 60999 });
    }
  });
});

describe('parseListening', () => {
  it('takes TCP sockets in LISTEN (0A) and nothing else: established and TIME_WAIT ports are not servers', () => {
    const tcp = new Set<number>();
    parseListening(PROC_NET_TCP, 'tcp', tcp);
    // sshd on 22 and mysqld on 127.0.0.1:3306; 22 is also an established connection's, 42434 TIME_WAIT's.
    expect([...tcp].sort((a, b) => a - b)).toEqual([22, 3306]);
  });

  it('reads tcp6 lines (32 hex digits of address) into the same set', () => {
    const tcp = new Set<number>();
    parseListening(PROC_NET_TCP, 'tcp', tcp);
    parseListening(PROC_NET_TCP6, 'tcp', tcp);
    // 41000 is the client end of a connection to 8080.
    expect([...tcp].sort((a, b) => a - b)).toEqual([22, 3306, 8080]);
  });

  it('takes UDP sockets bound and unconnected (07, zero remote end); a connected one (01) is a client', () => {
    const udp = new Set<number>();
    parseListening(PROC_NET_UDP, 'udp', udp);
    parseListening(PROC_NET_UDP6, 'udp', udp);
    expect([...udp].sort((a, b) => a - b)).toEqual([53, 323]);
  });

  it('a UDP socket in state 07 with a remote end is not listening; TCP state 07 is not LISTEN', () => {
    const udp = new Set<number>();
    parseListening(procNet('udp', [{ port: 5000, state: '07', remotePort: 53 }]), 'udp', udp);
    parseListening(procNet('udp6', [{ port: 5001, state: '07', remotePort: 53 }]), 'udp', udp);
    expect([...udp]).toEqual([]);
    const tcp = new Set<number>();
    parseListening(procNet('tcp', [{ port: 80, state: '07' }]), 'tcp', tcp);
    expect([...tcp]).toEqual([]);
  });

  it('skips the header, blank and short lines, and port 0', () => {
    const tcp = new Set<number>();
    parseListening(
      `${procNet('tcp', [
        { port: 0, state: '0A' },
        { port: 65535, state: '0A' },
      ])}\n   9: junk\n`,
      'tcp',
      tcp,
    );
    expect([...tcp]).toEqual([65535]);
  });

  it('reads a header-only file (no sockets) as none', () => {
    const tcp = new Set<number>([7]);
    parseListening(procNet('tcp6', []), 'tcp', tcp);
    expect([...tcp]).toEqual([7]);
  });
});

describe('parseInterfaceBytes', () => {
  it('sums received and sent bytes per interface of a real /proc/net/dev, past its two header lines', () => {
    const m = parseInterfaceBytes(PROC_NET_DEV);
    expect([...m]).toEqual([
      ['lo', 2 * 12815807034],
      ['eth0', 4421375747 + 19248431],
      ['docker0', 3466],
      ['veth3f2a1c9', 1398 + 4812],
    ]);
  });

  it('reads a line with no space after the colon (wide counters) and skips short lines', () => {
    const text = `${procNetDev({ eth1: [10, 20] })}ens5:98765432109 5 0 0 0 0 0 0 123 1 0 0 0 0 0 0\nbad: 1 2 3\n`;
    const m = parseInterfaceBytes(text);
    expect(m.get('eth1')).toBe(30);
    expect(m.get('ens5')).toBe(98765432109 + 123);
    expect(m.has('bad')).toBe(false);
    expect(m.size).toBe(2);
  });

  it('is empty for an empty text', () => {
    expect(parseInterfaceBytes('').size).toBe(0);
  });
});

describe('effectiveCapabilities and missingBpfCapabilities', () => {
  it('reads CapEff, not the other sets, as a bigint', () => {
    expect(effectiveCapabilities(procStatus(CAPS_ROOT))).toBe(CAPS_ROOT);
    expect(effectiveCapabilities(procStatus(capMask(CAP.BPF, CAP.NET_ADMIN)))).toBe(0x80_0000_1000n);
    const mixed = procStatus(0n).replace(/^CapBnd:.*$/m, 'CapBnd:\t000001ffffffffff');
    expect(effectiveCapabilities(mixed)).toBe(0n);
  });

  it('is undefined where /proc/self/status has no CapEff (or could not be read)', () => {
    expect(effectiveCapabilities('')).toBeUndefined();
    expect(effectiveCapabilities('Name:\tnode\nPid:\t1\n')).toBeUndefined();
  });

  it('root, CAP_BPF with CAP_NET_ADMIN, and CAP_SYS_ADMIN alone may load and attach', () => {
    expect(missingBpfCapabilities(CAPS_ROOT)).toBeUndefined();
    expect(missingBpfCapabilities(capMask(CAP.BPF, CAP.NET_ADMIN))).toBeUndefined();
    expect(missingBpfCapabilities(capMask(CAP.BPF, CAP.NET_ADMIN, CAP.PERFMON))).toBeUndefined();
    expect(missingBpfCapabilities(capMask(CAP.SYS_ADMIN))).toBeUndefined();
  });

  it('none, or only one of CAP_BPF and CAP_NET_ADMIN, is refused with what is needed', () => {
    const why = 'loading and attaching eBPF programs needs CAP_BPF and CAP_NET_ADMIN (or CAP_SYS_ADMIN)';
    expect(missingBpfCapabilities(0n)).toBe(why);
    expect(missingBpfCapabilities(capMask(CAP.BPF))).toBe(why);
    expect(missingBpfCapabilities(capMask(CAP.NET_ADMIN, CAP.PERFMON))).toBe(why);
    // A container's default set (Docker): CAP_NET_RAW and friends, none of the three.
    expect(missingBpfCapabilities(effectiveCapabilities(procStatus(0xa80425fbn)))).toBe(why);
  });

  it('lets the kernel decide where the capabilities are unknown', () => {
    expect(missingBpfCapabilities(undefined)).toBeUndefined();
  });
});
