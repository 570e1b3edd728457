import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  CILIUM_DEFAULTS,
  chooseAuto,
  idleConntrack,
  type NodeFiles,
  type NodeProbes,
  nodeFiles,
  PATHS,
  probeNode,
} from './probe.js';
import { fakeNode } from './testdata/fake-node.js';

/** Root, or required to be (CI): such tests then run and fail without it instead of being skipped. */
const privileged = process.geteuid?.() === 0 || process.env.NETMON_REQUIRE_PRIVILEGED === '1';

describe('chooseAuto', () => {
  const verdicts = (ebpf: boolean, netfilter: boolean, cilium = false) => ({
    cilium: { usable: cilium, found: 'C' },
    ebpf: { usable: ebpf, found: 'E' },
    netfilter: { usable: netfilter, found: 'N' },
  });

  it('prefers cilium, then ebpf, then netfilter; the usable ones after the choice are its fallbacks, in order', () => {
    expect(chooseAuto(verdicts(true, true, true))).toEqual({
      mode: 'cilium',
      reason: 'C: reading them instead of instrumenting the node a second time',
      fallbacks: ['ebpf', 'netfilter'],
    });
    expect(chooseAuto(verdicts(false, true, true))).toEqual({
      mode: 'cilium',
      reason: 'C: reading them instead of instrumenting the node a second time',
      fallbacks: ['netfilter'],
    });
    expect(chooseAuto(verdicts(false, false, true)).fallbacks).toEqual([]);
    expect(chooseAuto(verdicts(true, true))).toEqual({
      mode: 'ebpf',
      reason: 'eBPF is usable: E. netfilter would also give the backends of Services (mode: netfilter)',
      fallbacks: ['netfilter'],
    });
    expect(chooseAuto(verdicts(true, false))).toEqual({
      mode: 'ebpf',
      reason: 'eBPF is usable: E',
      fallbacks: [],
    });
    expect(chooseAuto(verdicts(false, true))).toEqual({
      mode: 'netfilter',
      reason: 'eBPF is not usable (E); conntrack is: N',
      fallbacks: [],
    });
    expect(chooseAuto(verdicts(false, false))).toEqual({
      mode: undefined,
      reason: 'no collection mode is usable on this node. cilium: C. ebpf: E. netfilter: N',
      fallbacks: [],
    });
  });

  it('reads nothing but the fake node', () => {
    const node = fakeNode({ cilium: ['ct6'], conntrack: 0 });
    const p = probeNode(node);
    expect(p.cilium).toEqual({
      usable: true,
      found: "Cilium's conntrack maps are pinned at /sys/fs/bpf/tc/globals (cilium_ct6_global)",
    });
    expect(p.netfilter).toEqual({
      usable: true,
      found:
        "nf_conntrack loaded but holding no connection (0 entries in the agent's network namespace); CAP_NET_ADMIN",
      in_use: false,
    });
  });

  it('chooses an idle conntrack only as the last resort, and then says what it may miss and what to do', () => {
    const idle: NodeProbes = {
      cilium: { usable: false, found: 'C' },
      ebpf: { usable: false, found: 'E' },
      netfilter: { usable: true, found: 'N', in_use: false },
    };
    const advice =
      "conntrack holds no connections, so this node's traffic may bypass netfilter (Cilium's eBPF host routing, " +
      "kube-proxy replacement), or the agent is not in the node's network namespace (hostNetwork: true), and " +
      "netfilter may collect almost nothing. Give the agent what ebpf needs (the host's cgroup2 mount or " +
      'ebpf.cgroup_path naming it, and CAP_BPF with CAP_NET_ADMIN, or CAP_SYS_ADMIN) or, on a Cilium node, ' +
      "mount the host's /sys/fs/bpf where cilium.maps_dir says";
    expect(idleConntrack(idle)).toBe(advice);
    expect(chooseAuto(idle)).toEqual({
      mode: 'netfilter',
      reason: `eBPF is not usable (E); conntrack is: N. But ${advice}`,
      fallbacks: [],
    });
    // Where ebpf is usable it runs, and an idle table has no Service backends to offer.
    expect(chooseAuto({ ...idle, ebpf: { usable: true, found: 'E' } })).toEqual({
      mode: 'ebpf',
      reason: 'eBPF is usable: E',
      fallbacks: ['netfilter'],
    });
    // In use, or unknown (another namespace's table), or not usable at all: nothing to add.
    for (const netfilter of [
      { usable: true, found: 'N', in_use: true },
      { usable: true, found: 'N' },
      { usable: false, found: 'N', in_use: false },
    ]) {
      expect(idleConntrack({ ...idle, netfilter })).toBeUndefined();
    }
    expect(chooseAuto({ ...idle, netfilter: { usable: true, found: 'N', in_use: true } }).reason).toBe(
      'eBPF is not usable (E); conntrack is: N',
    );
  });
});

describe('the conntrack probe', () => {
  it('says whether conntrack is in use: entries at probe time, none, or not loaded', () => {
    expect(probeNode(fakeNode({ conntrack: 412 })).netfilter).toEqual({
      usable: true,
      found: "nf_conntrack in use (412 entries in the agent's network namespace); CAP_NET_ADMIN",
      in_use: true,
    });
    expect(probeNode(fakeNode({ conntrack: 0 })).netfilter).toEqual({
      usable: true,
      found:
        "nf_conntrack loaded but holding no connection (0 entries in the agent's network namespace); CAP_NET_ADMIN",
      in_use: false,
    });
    expect(probeNode(fakeNode({ conntrack: false })).netfilter).toEqual({
      usable: false,
      found:
        "cannot read /proc/sys/net/netfilter/nf_conntrack_count (ENOENT: no such file or directory, open '/proc/sys/net/netfilter/nf_conntrack_count'): nf_conntrack is not loaded, so the kernel tracks no connection; CAP_NET_ADMIN",
      in_use: false,
    });
    // Without CAP_NET_ADMIN the table is idle or not all the same; it cannot be read.
    expect(probeNode(fakeNode({ conntrack: 3, caps: ['CAP_SYS_ADMIN'] })).netfilter).toEqual({
      usable: false,
      found:
        "nf_conntrack in use (3 entries in the agent's network namespace); reading conntrack needs CAP_NET_ADMIN: missing",
      in_use: true,
    });
  });

  it('does not judge the table of a netfilter.netns it does not count', () => {
    const p = probeNode(fakeNode({ conntrack: 0 }), { netns: '/run/netns/node' });
    expect(p.netfilter).toEqual({
      usable: true,
      found:
        "nf_conntrack loaded (0 entries in the agent's network namespace; netfilter.netns names /run/netns/node, whose table the probe does not count); CAP_NET_ADMIN",
    });
    expect(idleConntrack(p)).toBeUndefined();
  });
});

describe('the cilium probe', () => {
  it('looks where cilium.maps_dir and cilium.map_names say, for the TCP maps', () => {
    const node = fakeNode({ cilium: ['ct4', 'ct6'], ciliumDir: '/host/bpf/tc/globals' });
    // Cilium's own place is empty on this node: its bpffs is mounted elsewhere in the agent.
    const atDefault = probeNode(node).cilium;
    expect(atDefault).toEqual({
      usable: false,
      found:
        "no Cilium conntrack map pinned at /sys/fs/bpf/tc/globals (cilium_ct4_global or cilium_ct6_global): not a Cilium node, or its bpffs is not mounted into the agent there (mount the host's /sys/fs/bpf; cilium.maps_dir)",
    });
    const maps = {
      maps_dir: '/host/bpf/tc/globals',
      map_names: { ...CILIUM_DEFAULTS.map_names },
    };
    expect(probeNode(node, { cilium: maps }).cilium).toEqual({
      usable: true,
      found:
        "Cilium's conntrack maps are pinned at /host/bpf/tc/globals (cilium_ct4_global, cilium_ct6_global)",
    });
    // A renamed map is looked for by its name; one left out ("") is not looked for.
    node.files.set('/host/bpf/tc/globals/ct4_renamed', '');
    node.files.delete('/host/bpf/tc/globals/cilium_ct6_global');
    expect(
      probeNode(node, {
        cilium: { ...maps, map_names: { ...maps.map_names, tcp4: 'ct4_renamed', tcp6: '' } },
      }).cilium.found,
    ).toBe("Cilium's conntrack maps are pinned at /host/bpf/tc/globals (ct4_renamed)");
    expect(
      probeNode(node, { cilium: { ...maps, map_names: { ...maps.map_names, tcp4: '' } } }).cilium,
    ).toMatchObject({
      usable: false,
      found: expect.stringMatching(
        /^no Cilium conntrack map pinned at \/host\/bpf\/tc\/globals \(cilium_ct6_global\)/,
      ),
    });
  });

  it('the other-protocol maps alone do not make a Cilium node, unless the config leaves both TCP maps out', () => {
    const node = fakeNode({ cilium: ['any4'] });
    expect(probeNode(node).cilium.usable).toBe(false);
    const anyOnly = { ...CILIUM_DEFAULTS, map_names: { ...CILIUM_DEFAULTS.map_names, tcp4: '', tcp6: '' } };
    expect(probeNode(node, { cilium: anyOnly }).cilium).toEqual({
      usable: true,
      found: "Cilium's conntrack maps are pinned at /sys/fs/bpf/tc/globals (cilium_ct_any4_global)",
    });
    const none = { ...CILIUM_DEFAULTS, map_names: { tcp4: '', tcp6: '', any4: '', any6: '' } };
    expect(probeNode(node, { cilium: none }).cilium).toEqual({
      usable: false,
      found: 'cilium.map_names leaves every conntrack map out',
    });
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
    // A hybrid host's /sys/fs/cgroup (a tmpfs of v1 controllers) stands for its unified child: the host's
    // /sys/fs/cgroup mounted into a pod names the hierarchy's root on unified and hybrid nodes alike.
    const hybrid = fakeNode({ cgroup2: '/sys/fs/cgroup/unified' });
    hybrid.files.set('/sys/fs/cgroup', '');
    hybrid.files.set('/sys/fs/cgroup/unified', '');
    expect(probeNode(hybrid, { cgroupPath: '/sys/fs/cgroup' }).ebpf).toEqual({
      usable: true,
      found: expect.stringContaining('cgroup2 directory /sys/fs/cgroup/unified (ebpf.cgroup_path)'),
    });
    // Another file system with no cgroup2 below it is not usable, and auto moves on.
    hybrid.files.set('/srv/v1', '');
    const v1 = probeNode(hybrid, { cgroupPath: '/srv/v1' }).ebpf;
    expect(v1.usable).toBe(false);
    expect(v1.found).toContain(
      'ebpf.cgroup_path /srv/v1 is not on a cgroup2 file system (cgroup2 is mounted at /sys/fs/cgroup/unified)',
    );
    expect(chooseAuto(probeNode(hybrid, { cgroupPath: '/srv/v1' })).mode).toBe('netfilter');
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

  describe.runIf(privileged)('conntrack in use or not, in a new network namespace (unshare, as root)', () => {
    // A rule that makes the kernel track new connections (and loads nf_conntrack where it is not yet).
    const TRACK =
      'ip link set lo up && nft add table inet t && ' +
      "nft add chain inet t o '{ type filter hook output priority 0; }' && nft add rule inet t o ct state new counter";
    // A UDP datagram to the discard port: a conntrack entry for 30 s, no listener needed.
    const SEND = `'${process.execPath}' -e "require('node:dgram').createSocket('udp4').send('x', 9, '127.0.0.1', () => process.exit())"`;

    /**
     * The real node, but nf_conntrack_count as a process in a new network namespace reads it after `setup`
     * ran there; `conntrack -C` (the oracle) counts the same table.
     */
    const inNetns = (setup: string): { files: NodeFiles; oracle: number } => {
      const [count, oracle] = execFileSync(
        'unshare',
        ['-n', 'sh', '-ec', `${setup}; cat ${PATHS.conntrackCount}; conntrack -C`],
        { encoding: 'utf8' },
      ).split('\n');
      return {
        files: { ...nodeFiles, read: (p) => (p === PATHS.conntrackCount ? count : nodeFiles.read(p)) },
        oracle: Number(oracle),
      };
    };

    it('nothing went through the rule: loaded, holding no connection, and auto says so when it picks netfilter', () => {
      const { files, oracle } = inNetns(TRACK);
      expect(oracle).toBe(0);
      const p = probeNode(files);
      expect(p.netfilter.in_use).toBe(false);
      expect(p.netfilter.found).toMatch(
        /^nf_conntrack loaded but holding no connection \(0 entries in the agent's network namespace\)/,
      );
      const reason = chooseAuto({
        ...p,
        cilium: { usable: false, found: 'C' },
        ebpf: { usable: false, found: 'E' },
      }).reason;
      expect(reason).toMatch(
        /\. But conntrack holds no connections, so this node's traffic may bypass netfilter/,
      );
    });

    it('a datagram went through it: in use, with the count conntrack -C gives', () => {
      const { files, oracle } = inNetns(`${TRACK} && ${SEND}`);
      expect(oracle).toBeGreaterThan(0);
      const p = probeNode(files);
      expect(p.netfilter.in_use).toBe(true);
      expect(p.netfilter.found).toMatch(
        new RegExp(`^nf_conntrack in use \\(${oracle} entries in the agent's network namespace\\)`),
      );
      expect(idleConntrack(p)).toBeUndefined();
    });
  });
});
