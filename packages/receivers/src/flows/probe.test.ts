import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { cgroup2Mounts, chooseAuto, type NodeFiles, nodeFiles, PATHS, probeNode } from './probe.js';
import { fakeNode } from './testdata/fake-node.js';

/** Root, or required to be (CI): such tests then run and fail without it instead of being skipped. */
const privileged = process.geteuid?.() === 0 || process.env.NETMON_REQUIRE_PRIVILEGED === '1';

describe('cgroup2Mounts', () => {
  it('finds cgroup2 mounts by file system type, after the optional fields, with escapes decoded', () => {
    const mountinfo = [
      '25 1 0:23 / /sys rw,nosuid shared:7 - sysfs sysfs rw',
      // A hybrid host: v1 controllers plus the unified hierarchy; optional fields of any number.
      '31 25 0:27 / /sys/fs/cgroup/cpu rw shared:10 - cgroup cgroup rw,cpu',
      '40 30 0:37 / /sys/fs/cgroup/unified rw,relatime shared:11 master:2 - cgroup2 cgroup2 rw',
      '41 30 0:38 / /run/my\\040cgroup rw,relatime - cgroup2 none rw',
      // A file system whose source is named cgroup2 is not one.
      '42 30 0:39 / /mnt/x rw - tmpfs cgroup2 rw',
      '',
    ].join('\n');
    expect(cgroup2Mounts(mountinfo)).toEqual(['/sys/fs/cgroup/unified', '/run/my cgroup']);
    expect(cgroup2Mounts('')).toEqual([]);
  });
});

describe('chooseAuto', () => {
  const verdicts = (ebpf: boolean, netfilter: boolean, cilium = false) => ({
    cilium: { usable: cilium, found: 'C' },
    ebpf: { usable: ebpf, found: 'E' },
    netfilter: { usable: netfilter, found: 'N' },
  });

  it('prefers ebpf, then netfilter; cilium only adds a note', () => {
    expect(chooseAuto(verdicts(true, true))).toEqual({ mode: 'ebpf', reason: 'eBPF is usable: E' });
    expect(chooseAuto(verdicts(true, false))).toEqual({ mode: 'ebpf', reason: 'eBPF is usable: E' });
    expect(chooseAuto(verdicts(false, true))).toEqual({
      mode: 'netfilter',
      reason: 'eBPF is not usable (E); conntrack is: N',
    });
    expect(chooseAuto(verdicts(false, false))).toEqual({
      mode: undefined,
      reason: 'no collection mode is usable on this node. ebpf: E. netfilter: N. cilium: C',
    });
    expect(chooseAuto(verdicts(false, true, true)).mode).toBe('netfilter');
    expect(chooseAuto(verdicts(false, true, true)).reason).toMatch(
      /^Cilium's conntrack maps are pinned on this node, which would choose cilium, but this version has no cilium receiver; /,
    );
  });

  it('reads nothing but the fake node', () => {
    const node = fakeNode({ cilium: ['ct6'], conntrack: 0 });
    const p = probeNode(node);
    expect(p.cilium).toEqual({
      usable: true,
      found: "Cilium's pinned conntrack maps: /sys/fs/bpf/tc/globals/cilium_ct6_global",
    });
    expect(p.netfilter.found).toBe(
      "nf_conntrack loaded (0 entries in the agent's network namespace); CAP_NET_ADMIN",
    );
  });
});

describe('probes of the real node', () => {
  it('the cgroup2 mount it names is the one findmnt names', () => {
    const findmnt = execFileSync('findmnt', ['-n', '-t', 'cgroup2', '-o', 'TARGET'], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean);
    const p = probeNode();
    if (findmnt.length === 0) expect(p.ebpf.found).toContain('no cgroup2 mount in /proc/self/mountinfo');
    else expect(p.ebpf.found).toContain(`cgroup2 at ${findmnt[0]}`);
    expect(p.ebpf.found.startsWith(existsSync(PATHS.btf) ? 'BTF at' : 'no kernel BTF')).toBe(true);
  });

  describe.runIf(privileged)('with capabilities taken away (setpriv, as root)', () => {
    /** The real node, but /proc/self/status as a process started with only `caps` sees it. */
    const withCaps = (caps: string): NodeFiles => {
      const status = execFileSync(
        'setpriv',
        [`--bounding-set=-all${caps}`, '--inh-caps=-all', 'cat', '/proc/self/status'],
        { encoding: 'utf8' },
      );
      return { exists: nodeFiles.exists, read: (p) => (p === PATHS.status ? status : nodeFiles.read(p)) };
    };

    it('no capability: neither ebpf nor netfilter, each saying what is missing', () => {
      const p = probeNode(withCaps(''));
      expect(p.ebpf.usable).toBe(false);
      expect(p.ebpf.found).toMatch(
        /loading BPF programs needs CAP_BPF and CAP_NET_ADMIN, or CAP_SYS_ADMIN: CAP_BPF and CAP_NET_ADMIN missing$/,
      );
      expect(p.netfilter.usable).toBe(false);
      expect(p.netfilter.found).toMatch(/reading conntrack needs CAP_NET_ADMIN: missing$/);
      expect(chooseAuto(p).mode).toBeUndefined();
    });

    it('CAP_NET_ADMIN alone: netfilter only (where nf_conntrack is loaded)', () => {
      const p = probeNode(withCaps(',+net_admin'));
      expect(p.ebpf.found).toMatch(/CAP_BPF missing$/);
      expect(p.netfilter.found).toMatch(/; CAP_NET_ADMIN$/);
      expect(p.netfilter.usable).toBe(existsSync(PATHS.conntrackCount));
    });

    it('CAP_BPF and CAP_NET_ADMIN: enough to load BPF programs', () => {
      const p = probeNode(withCaps(',+bpf,+net_admin'));
      expect(p.ebpf.found).toMatch(/; CAP_BPF and CAP_NET_ADMIN$/);
    });
  });
});
