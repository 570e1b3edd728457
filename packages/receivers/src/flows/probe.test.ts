import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { chooseAuto, type NodeFiles, nodeFiles, PATHS, probeNode } from './probe.js';
import { fakeNode } from './testdata/fake-node.js';

/** Root, or required to be (CI): such tests then run and fail without it instead of being skipped. */
const privileged = process.geteuid?.() === 0 || process.env.NETMON_REQUIRE_PRIVILEGED === '1';

describe('chooseAuto', () => {
  const verdicts = (ebpf: boolean, netfilter: boolean, cilium = false) => ({
    cilium: { usable: cilium, found: 'C' },
    ebpf: { usable: ebpf, found: 'E' },
    netfilter: { usable: netfilter, found: 'N' },
  });

  it('prefers ebpf, then netfilter; cilium only adds a note', () => {
    expect(chooseAuto(verdicts(true, true))).toEqual({
      mode: 'ebpf',
      reason: 'eBPF is usable: E. netfilter would also give the backends of Services (mode: netfilter)',
    });
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

describe('the eBPF probe and the cgroup it would attach to', () => {
  it("a mount showing only a container's own cgroup subtree does not make eBPF usable, and says what to do", () => {
    const node = fakeNode();
    node.files.set(
      PATHS.mountinfo,
      '700 650 0:28 /kubepods.slice/pod-x.slice /sys/fs/cgroup ro,nosuid - cgroup2 cgroup ro\n',
    );
    node.files.set('/sys/fs/cgroup/cgroup.type', 'domain\n');
    const p = probeNode(node);
    expect(p.ebpf.usable).toBe(false);
    expect(p.ebpf.found).toContain(
      "only the cgroup2 subtree /kubepods.slice/pod-x.slice is mounted (at /sys/fs/cgroup: a container's own cgroup, whose programs would see its own sockets alone); mount the host's cgroup2 and set ebpf.cgroup_path",
    );
  });

  it("in a private cgroup namespace the container's own cgroup shows as / but has cgroup.type: not usable, and auto does not choose ebpf", () => {
    const node = fakeNode();
    node.files.set(
      PATHS.mountinfo,
      '1063 1054 0:28 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup ro,nsdelegate\n',
    );
    node.files.set('/sys/fs/cgroup/cgroup.type', 'domain\n');
    const p = probeNode(node);
    expect(p.ebpf.usable).toBe(false);
    expect(p.ebpf.found).toContain(
      "the cgroup2 mount at /sys/fs/cgroup is not the hierarchy's root (it has a cgroup.type file: a container's own cgroup, whose programs would see its own sockets alone); mount the host's cgroup2 and set ebpf.cgroup_path",
    );
    expect(chooseAuto(p).mode).toBe('netfilter');
    // The host's hierarchy mounted beside it (shown as /../../../.. from the namespace) is taken.
    node.files.set(
      PATHS.mountinfo,
      `${node.files.get(PATHS.mountinfo)}1071 1054 0:28 /../../../.. /host/sys/fs/cgroup rw - cgroup2 cgroup2 rw\n`,
    );
    const q = probeNode(node);
    expect(q.ebpf.usable).toBe(true);
    expect(q.ebpf.found).toContain('cgroup2 at /host/sys/fs/cgroup');
  });

  it('ebpf.cgroup_path, when set, is what counts: usable when it is a cgroup2 directory, not when it is missing or on another file system', () => {
    const node = fakeNode({ cgroup2: false });
    node.files.set('/host/sys/fs/cgroup', '');
    node.cgroup2Dirs.add('/host/sys/fs/cgroup');
    expect(probeNode(node, { cgroupPath: '/host/sys/fs/cgroup' }).ebpf).toEqual({
      usable: true,
      found:
        'BTF at /sys/kernel/btf/vmlinux; cgroup2 directory /host/sys/fs/cgroup (ebpf.cgroup_path); CAP_SYS_ADMIN',
    });
    const missing = probeNode(node, { cgroupPath: '/nowhere' }).ebpf;
    expect(missing.usable).toBe(false);
    expect(missing.found).toContain('ebpf.cgroup_path /nowhere does not exist');
    // A hybrid host's /sys/fs/cgroup: a tmpfs of v1 controllers.
    const hybrid = fakeNode({ cgroup2: '/sys/fs/cgroup/unified' });
    hybrid.files.set('/sys/fs/cgroup', '');
    const v1 = probeNode(hybrid, { cgroupPath: '/sys/fs/cgroup' }).ebpf;
    expect(v1.usable).toBe(false);
    expect(v1.found).toContain(
      'ebpf.cgroup_path /sys/fs/cgroup is not on a cgroup2 file system (cgroup2 is mounted at /sys/fs/cgroup/unified)',
    );
    expect(chooseAuto(probeNode(hybrid, { cgroupPath: '/sys/fs/cgroup' })).mode).toBe('netfilter');
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
      return {
        ...nodeFiles,
        read: (p) => (p === PATHS.status ? status : nodeFiles.read(p)),
      };
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
