// What each collection mode needs from the node, proven against charts/netmon/files/privileges.yaml, the
// table the chart builds its pods from. For every entry (netfilter, ebpf, cilium, dns) the real agent
// (bin/netmon, the built bundle) runs in an emulated container (privileges-container.sh: uid 0, every
// capability dropped but the entry's, no_new_privs, the runtime's read-only /proc/sys and masked /proc
// files, a cgroup namespace of its own, the entry's host mounts, the node's network namespace or one of
// its own, the runtime's seccomp rules for bpf()) against real traffic: flows arrive with their bytes
// (dns: lookups with their answers). Then once without each capability, each mount and — where the entry
// asks for it — hostNetwork, asserting what fails or goes missing; and the kernel alone
// (privileges-probe.ts: the addon without the agent's own capability checks) is asked what it refuses.
// A capability the table lists that nothing needs, or one it lacks, fails here; so does a hostNetwork
// the mode does not need or a mount whose absence costs nothing.
// Root only: skipped locally without it, a failure in CI.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { release, tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { AgentProcess, type CliResult, freePort, ROOT, runCommand, until } from '../harness/agent.js';
import { cgroup2Root, TestCgroup } from '../harness/cgroup.js';
import {
  CiliumBpffs,
  connectionKey,
  ctValue,
  monotonicSeconds,
  PROTO,
  TUPLE_F_OUT,
} from '../harness/cilium-maps.js';
import { startDnsmasq } from '../harness/dnsmasq.js';
import { NetnsPair, privileged, sh, startServers, TRAFFIC, waitForOutput } from '../harness/netns.js';

const TABLE = path.join(ROOT, 'charts/netmon/files/privileges.yaml');
const CONTAINER = path.join(import.meta.dirname, 'privileges-container.sh');
const PROBE = path.join(import.meta.dirname, 'privileges-probe.ts');
const BLOB = 200_000;

const MODES = ['netfilter', 'ebpf', 'cilium', 'dns'] as const;
type Mode = (typeof MODES)[number];

interface Entry {
  capabilities: string[];
  hostNetwork: boolean;
  mounts: string[];
  seccomp: 'RuntimeDefault' | 'Unconfined';
  init?: { mounts: string[]; sysctls: string[] };
  why: Record<string, string>;
}

/** The table as the chart reads it, checked for the shape the chart relies on. */
function readTable(): Record<Mode, Entry> {
  const table = parse(readFileSync(TABLE, 'utf8')) as Record<string, Entry>;
  expect(Object.keys(table).sort()).toEqual([...MODES].sort());
  for (const mode of MODES) {
    const e = table[mode];
    expect(
      Object.keys(e)
        .filter((k) => !['init'].includes(k))
        .sort(),
      mode,
    ).toEqual(['capabilities', 'hostNetwork', 'mounts', 'seccomp', 'why'].sort());
    expect(['RuntimeDefault', 'Unconfined'], mode).toContain(e.seccomp);
    // Every grant says what it is for.
    const granted = [
      ...e.capabilities,
      ...e.mounts,
      ...(e.init?.mounts ?? []),
      ...(e.hostNetwork ? ['hostNetwork'] : []),
    ];
    for (const g of granted) expect(e.why?.[g] ?? '', `${mode}.why.${g}`).toMatch(/\S.{40}/);
  }
  return table as Record<Mode, Entry>;
}

/** What the agent says when a mode's capability is missing: its start fails with this. */
const WITHOUT_CAPABILITY: Record<Mode, Record<string, RegExp>> = {
  netfilter: { NET_ADMIN: /conntrack receiver: reading the conntrack table needs CAP_NET_ADMIN/ },
  ebpf: {
    BPF: /ebpf receiver: loading and attaching eBPF programs needs CAP_BPF and CAP_NET_ADMIN/,
    NET_ADMIN: /ebpf receiver: loading and attaching eBPF programs needs CAP_BPF and CAP_NET_ADMIN/,
  },
  // The seccomp profile (and before Linux 6.5 the kernel) refuses bpf(): every map is unreadable.
  cilium: { BPF: /cilium receiver: no Cilium conntrack map in .* can be read: .*Operation not permitted/ },
  dns: {
    BPF: /dns receiver: loading and attaching eBPF programs needs CAP_BPF and CAP_NET_ADMIN/,
    NET_ADMIN: /dns receiver: loading and attaching eBPF programs needs CAP_BPF and CAP_NET_ADMIN/,
  },
};

/** What the agent says when a mount of the agent's container is missing. */
const WITHOUT_MOUNT: Record<string, RegExp> = {
  cgroup: /the cgroup2 mount at \/sys\/fs\/cgroup is not the hierarchy's root but a cgroup below it/,
  bpffs: /cilium receiver: .* does not exist: Cilium pins its maps there on a Cilium node/,
};

/** Linux 6.5 moved kernel.unprivileged_bpf_disabled's check to map and program creation. */
function kernelAtLeast(major: number, minor: number): boolean {
  const [a, b] = release().split('.').map(Number);
  return a > major || (a === major && b >= minor);
}

const unprivilegedBpfDisabled = () =>
  Number(readFileSync('/proc/sys/kernel/unprivileged_bpf_disabled', 'utf8').trim()) !== 0;

// ---------------------------------------------------------------------------------------------------
// The emulated container and the agent in it.

interface Container {
  /** Network namespace path: the "node's" with hostNetwork, else a pod's own. */
  netns: string;
  /** The container's own cgroup (a cgroup namespace is rooted there). */
  cgroup?: string;
  /** hostPath volumes: SRC:DST[:ro]. */
  mounts: string[];
  caps: string[];
  seccomp: string;
  env?: Record<string, string>;
}

function containerArgs(c: Container, cmd: string[]): string[] {
  const args = ['--netns', c.netns, '--caps', c.caps.join(','), '--seccomp', c.seccomp];
  if (c.cgroup) args.push('--cgroup', c.cgroup);
  for (const m of c.mounts) args.push('--mount', m);
  return [...args, '--', ...cmd];
}

/** A command run to its end in the container. */
function runIn(c: Container, cmd: string[]): Promise<CliResult> {
  return runCommand(CONTAINER, containerArgs(c, cmd), { env: c.env });
}

/** The kernel's own answer to one operation in the container (the addon, without the agent's checks). */
async function probe(c: Container, op: string[]): Promise<{ ok: boolean; error?: string; capEff: string }> {
  const r = await runIn(c, [process.execPath, PROBE, ...op]);
  const line = r.stdout.trim().split('\n').at(-1) ?? '';
  try {
    return JSON.parse(line) as { ok: boolean; error?: string; capEff: string };
  } catch {
    throw new Error(`probe ${op.join(' ')} printed no result (exit ${r.code}): ${r.stdout}${r.stderr}`);
  }
}

/** CapEff as /proc/<pid>/status prints it, for a list of Kubernetes capability names. */
function capEff(caps: string[]): string {
  const bits: Record<string, number> = { NET_ADMIN: 12, SYS_ADMIN: 21, PERFMON: 38, BPF: 39 };
  let v = 0n;
  for (const c of caps) {
    if (bits[c] === undefined) throw new Error(`no capability number for ${c}`);
    v |= 1n << BigInt(bits[c]);
  }
  return v.toString(16).padStart(16, '0');
}

/** bin/netmon in the container; its JSON log lines and stdout collected. */
function containedAgent(c: Container, config: string): AgentProcess {
  return new AgentProcess(['run', '--config', config], {
    env: c.env,
    via: [CONTAINER, ...containerArgs(c, [])],
  });
}

/** Runs an agent that must fail to start: its exit code and the log line that says why. */
async function failedStart(c: Container, config: string): Promise<{ code: number | null; error: string }> {
  const agent = containedAgent(c, config);
  try {
    const code = await agent.exit();
    const fatal = agent.logs.find((l) => l.msg === 'netmon could not start');
    return { code, error: String(fatal?.err ?? agent.text()) };
  } finally {
    agent.kill();
  }
}

interface FlowRecord {
  src_ip: string;
  src_port: number;
  dst_ip: string;
  dst_port: number;
  tx_bytes: number;
  rx_bytes: number;
  attributes: Record<string, unknown>;
}

function records(file: string): FlowRecord[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as FlowRecord);
}

/** /status of an agent whose health endpoint listens on 127.0.0.1:port in another network namespace. */
async function statusIn(netns: string, port: number): Promise<{ components: Record<string, unknown>[] }> {
  return JSON.parse(
    await sh('nsenter', [`--net=${netns}`, 'curl', '-sf', `http://127.0.0.1:${port}/status`]),
  );
}

/** A network namespace of a pod's own (not the node's), with loopback only. */
async function podNetns(name: string): Promise<{ path: string; destroy(): Promise<void> }> {
  await sh('ip', ['netns', 'add', name]);
  await sh('ip', ['netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up']);
  return {
    path: `/run/netns/${name}`,
    destroy: () => sh('ip', ['netns', 'del', name]).then(() => undefined),
  };
}

const without = <T>(list: T[], item: T) => list.filter((x) => x !== item);

// ---------------------------------------------------------------------------------------------------

describe.runIf(privileged())('what each collection mode needs (charts/netmon/files/privileges.yaml)', () => {
  let table: Record<Mode, Entry>;
  let work: string;
  const cleanups: Array<() => Promise<void> | void> = [];

  beforeAll(() => {
    table = readTable();
    work = mkdtempSync(path.join(tmpdir(), 'netmon-privileges-'));
    writeFileSync(path.join(work, 'blob.bin'), Buffer.alloc(BLOB, 7));
  });

  afterAll(async () => {
    // Every step even when one before it throws: namespaces, cgroups and mounts must not outlive the run.
    for (const c of cleanups.reverse()) {
      try {
        await c();
      } catch (err) {
        console.error(err);
      }
    }
    if (work) rmSync(work, { recursive: true, force: true });
  });

  /** Where a mode's container sees a chart mount, and the host path it comes from. */
  function mountDir(mode: Mode, containerPath: string): string {
    const dir = path.join(work, mode, 'container', containerPath);
    mkdirSync(dir, { recursive: true });
    return dir;
  }

  function config(mode: Mode, name: string, yaml: string): string {
    const file = path.join(work, mode, `${name}.yaml`);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, yaml);
    return file;
  }

  describe.concurrent('each mode', () => {
    it('netfilter: conntrack with its capabilities, the node network, and an init container for the sysctls', async () => {
      const e = table.netfilter;
      const net = await NetnsPair.create('pvn');
      cleanups.push(() => net.destroy());
      await startServers(net, work);
      const pod = await podNetns(`pvnpod${process.pid.toString(36)}`);
      cleanups.push(() => pod.destroy());
      // A node as the kernel leaves it: no byte counters, DESTROY events only for connections that began
      // while someone listened, no timestamps.
      await net.sysctl(net.b, {
        'net.netfilter.nf_conntrack_acct': '0',
        'net.netfilter.nf_conntrack_events': '2',
        'net.netfilter.nf_conntrack_timestamp': '0',
      });
      const node = { netns: net.path(net.b), mounts: [], caps: e.capabilities, seccomp: e.seccomp };
      const get = () => net.exec(net.b, 'python3', [TRAFFIC, 'get', `http://${net.ipA}:8080/blob.bin`]);
      const flowsOf = (rs: FlowRecord[]) => rs.filter((r) => r.dst_port === 8080 && r.dst_ip === net.ipA);

      /**
       * The agent in `c`, one GET from the node while it runs: its records of that GET and its log.
       * `bytes`: wait for the GET's bytes to be written; otherwise give it a few reads to show what it sees.
       */
      async function run(c: Container, name: string, bytes: boolean) {
        const out = path.join(work, 'netfilter', `${name}.jsonl`);
        const file = config(
          'netfilter',
          name,
          `receivers: { flows: { mode: netfilter, netfilter: { read_interval: 250ms } } }
exporters: { file: { path: ${out} } }
service: { pipelines: { flows: { receivers: [flows], exporters: [file] } } }
`,
        );
        const agent = containedAgent(c, file);
        try {
          await agent.running();
          expect(await get()).toBe(`${BLOB}\n`);
          if (bytes) {
            await until(
              () => flowsOf(records(out)).some((r) => r.rx_bytes > 0),
              5000,
              () => `no bytes of the GET:\n${agent.text()}`,
            );
          } else {
            await new Promise((r) => setTimeout(r, 1000));
          }
          expect(await agent.stop()).toBe(0);
        } finally {
          agent.kill();
        }
        return { flows: flowsOf(records(out)), log: agent.text() };
      }

      // The kernel itself: ctnetlink's dump and event subscription need exactly the listed capabilities.
      for (const op of ['conntrack-dump', 'conntrack-events']) {
        const full = await probe({ ...node, seccomp: 'Unconfined' }, [op]);
        expect(full, op).toMatchObject({ ok: true, capEff: capEff(e.capabilities) });
        for (const cap of e.capabilities) {
          const r = await probe({ ...node, caps: without(e.capabilities, cap), seccomp: 'Unconfined' }, [op]);
          expect(r.ok, `${op} without ${cap}`).toBe(false);
          expect(r.error).toMatch(/Operation not permitted/);
        }
      }

      // Without the init container: the agent cannot switch accounting on (/proc/sys is read-only in a
      // container) and every connection comes with 0 bytes.
      const bare = await run(node, 'no-sysctls', false);
      expect(bare.log).toMatch(
        /cannot set net\.netfilter\.nf_conntrack_acct in the agent's network namespace \(cannot write \/proc\/sys\/net\/netfilter\/nf_conntrack_acct: Read-only file system\)/,
      );
      expect(bare.flows.length).toBeGreaterThan(0);
      for (const f of bare.flows) expect([f.tx_bytes, f.rx_bytes]).toEqual([0, 0]);
      expect((await net.exec(net.b, 'sysctl', ['-n', 'net.netfilter.nf_conntrack_acct'])).trim()).toBe('0');

      // The init container: no capability at all, the conntrack_sysctl mount writable; it writes 1 into
      // each sysctl the table lists, through the mount (its own /proc/sys is read-only too).
      expect(e.init?.mounts).toEqual(['conntrack_sysctl']);
      const sysctlDir = mountDir('netfilter', '/host/proc/sys/net/netfilter');
      const init = await runIn({ ...node, caps: [], mounts: [`/proc/sys/net/netfilter:${sysctlDir}`] }, [
        'sh',
        '-c',
        'echo 1 > /proc/sys/net/netfilter/nf_conntrack_acct && exit 9; for s; do echo 1 > "$0/$s" || exit 1; done',
        sysctlDir,
        ...(e.init?.sysctls ?? []),
      ]);
      expect(init.stderr).toMatch(/Read-only file system/);
      expect(init.code).toBe(0);
      for (const s of e.init?.sysctls ?? []) {
        expect((await net.exec(net.b, 'sysctl', ['-n', `net.netfilter.${s}`])).trim(), s).toBe('1');
      }
      // The node's namespace only: the other namespace's accounting stayed off.
      expect((await net.exec(net.a, 'sysctl', ['-n', 'net.netfilter.nf_conntrack_acct'])).trim()).toBe('0');

      // Everything the table grants: the GET's bytes, as the kernel counted them.
      const full = await run(node, 'full', true);
      expect(full.log).not.toMatch(/cannot set net\.netfilter/);
      // Cumulative counters (no delta processor): each connection's last reading is its total.
      const last = new Map(full.flows.map((f) => [f.src_port, f.rx_bytes]));
      const counted = [...last.values()].filter((rx) => rx > 0);
      expect(counted).toHaveLength(1);
      expect(counted[0]).toBeGreaterThanOrEqual(BLOB);
      expect(counted[0]).toBeLessThan(BLOB * 1.1);

      // Each capability is needed: without it the agent refuses to start and names it.
      for (const cap of e.capabilities) {
        const expected = WITHOUT_CAPABILITY.netfilter[cap];
        expect(expected, `no measurement of netfilter without ${cap}`).toBeDefined();
        const { code, error } = await failedStart(
          { ...node, caps: without(e.capabilities, cap) },
          config(
            'netfilter',
            `no-${cap}`,
            'receivers: { flows: { mode: netfilter } }\nexporters: { debug: {} }\nservice: { pipelines: { flows: { receivers: [flows], exporters: [debug] } } }\n',
          ),
        );
        expect(code).toBe(1);
        expect(error).toMatch(expected);
      }

      // hostNetwork: from a pod's own namespace the node's connections are not in the table read.
      expect(e.hostNetwork).toBe(true);
      const inPod = await run({ ...node, netns: pod.path }, 'pod-network', false);
      expect(inPod.log).toMatch(/the conntrack table of the agent's network namespace is empty/);
      expect(inPod.flows).toEqual([]);
    }, 60_000);

    it('ebpf: cgroup programs with their capabilities, the host cgroup2 root, and the node network for coverage', async () => {
      const e = table.ebpf;
      const net = await NetnsPair.create('pve');
      cleanups.push(() => net.destroy());
      await startServers(net, work);
      const pod = await podNetns(`pvepod${process.pid.toString(36)}`);
      cleanups.push(() => pod.destroy());
      const watched = new TestCgroup('netmon-priv-ebpf');
      cleanups.push(() => watched.destroy());
      const client = watched.child('client');
      const own = new TestCgroup('netmon-priv-ebpf-agent');
      cleanups.push(() => own.destroy());
      // The node's interface toward the server: what coverage compares with on this "node".
      const links = await net.exec(net.b, 'ip', ['-o', 'link', 'show']);
      const veth = /^\d+: ([^:@]+)[@:]/m.exec(
        links
          .split('\n')
          .filter((l) => !/: lo:/.test(l))
          .join('\n'),
      )?.[1];
      expect(veth).toBeTruthy();

      // The chart mounts the host's cgroup2 root at /host/sys/fs/cgroup and points NETMON_CGROUP_PATH
      // there; the test points it at its own cgroup below the root, so the programs count its traffic only.
      const cgroupDir = mountDir('ebpf', '/host/sys/fs/cgroup');
      const cgroupMount = `${cgroup2Root()}:${cgroupDir}:ro`;
      const seen = path.join(cgroupDir, path.relative(cgroup2Root(), watched.path));
      const node: Container = {
        netns: net.path(net.b),
        cgroup: own.path,
        mounts: e.mounts.includes('cgroup') ? [cgroupMount] : [],
        caps: e.capabilities,
        seccomp: e.seccomp,
        env: { NETMON_CGROUP_PATH: seen },
      };
      const yaml = (out: string, health: number) => `receivers:
  flows:
    mode: ebpf
    ebpf: { cgroup_path: "\${env:NETMON_CGROUP_PATH:-}", read_interval: 250ms, coverage_interfaces: [${veth}] }
exporters: { file: { path: ${out} } }
extensions: { health_check: { endpoint: 127.0.0.1:${health} } }
service:
  extensions: [health_check]
  pipelines: { flows: { receivers: [flows], exporters: [file] } }
`;

      async function run(c: Container, name: string) {
        const out = path.join(work, 'ebpf', `${name}.jsonl`);
        const health = await freePort();
        const agent = containedAgent(c, config('ebpf', name, yaml(out, health)));
        try {
          await agent.running();
          expect(
            await watched.run(client, 'python3', [TRAFFIC, 'get', `http://${net.ipA}:8080/blob.bin`], net.b),
          ).toBe(`${BLOB}\n`);
          await until(
            () => records(out).some((r) => r.dst_port === 8080 && r.rx_bytes > 0),
            5000,
            () => `no flow of the GET:\n${agent.text()}`,
          );
          // A read after the GET's has compared the interval's bytes with the interface's.
          await new Promise((r) => setTimeout(r, 600));
          const receiver = (await statusIn(c.netns, health)).components.find(
            (x) => x.kind === 'receiver',
          ) as {
            details: { coverage: string };
          };
          const coverage = receiver.details.coverage;
          expect(await agent.stop()).toBe(0);
          return { flows: records(out).filter((r) => r.dst_port === 8080), coverage, log: agent.text() };
        } finally {
          agent.kill();
        }
      }

      // The kernel itself: without CAP_BPF it loads nothing; without CAP_NET_ADMIN it attaches nothing.
      const kernel = { ...node, seccomp: 'Unconfined' };
      expect(await probe(kernel, ['flows-attach', seen])).toMatchObject({
        ok: true,
        capEff: capEff(e.capabilities),
      });
      for (const cap of e.capabilities) {
        const r = await probe({ ...kernel, caps: without(e.capabilities, cap) }, ['flows-attach', seen]);
        if (cap === 'BPF' && !unprivilegedBpfDisabled()) continue;
        expect(r.ok, `flows-attach without ${cap}`).toBe(false);
        expect(r.error).toMatch(
          cap === 'NET_ADMIN'
            ? /failed to attach to cgroup: Operation not permitted/
            : /Operation not permitted/,
        );
      }

      // Everything the table grants: the GET counted from the client's socket, named by its cgroup.
      const full = await run(node, 'full');
      const rx = full.flows.reduce((s, f) => s + f.rx_bytes, 0);
      expect(rx).toBeGreaterThan(BLOB);
      expect(rx).toBeLessThan(BLOB * 1.1);
      expect(full.flows.every((f) => f.attributes['src.cgroup.id'] === TestCgroup.id(client))).toBe(true);
      expect(full.coverage).toMatch(/^\d+(\.\d+)?% of the bytes of /);

      for (const cap of e.capabilities) {
        const expected = WITHOUT_CAPABILITY.ebpf[cap];
        expect(expected, `no measurement of ebpf without ${cap}`).toBeDefined();
        const { code, error } = await failedStart(
          { ...node, caps: without(e.capabilities, cap) },
          config('ebpf', `no-${cap}`, yaml(path.join(work, 'ebpf', 'none.jsonl'), await freePort())),
        );
        expect(code).toBe(1);
        expect(error).toMatch(expected);
      }

      // Without the host's cgroup2 root the container's /sys/fs/cgroup is its own cgroup: refused.
      expect(e.mounts).toEqual(['cgroup']);
      const noMount = await failedStart(
        { ...node, mounts: [], env: { NETMON_CGROUP_PATH: '' } },
        config('ebpf', 'no-cgroup', yaml(path.join(work, 'ebpf', 'none.jsonl'), await freePort())),
      );
      expect(noMount.code).toBe(1);
      expect(noMount.error).toMatch(WITHOUT_MOUNT.cgroup);

      // hostNetwork: from a pod's own namespace the bytes are still counted, but coverage compares with
      // the pod's interfaces, which the node's traffic never crosses.
      expect(e.hostNetwork).toBe(true);
      const inPod = await run({ ...node, netns: pod.path }, 'pod-network');
      expect(inPod.flows.reduce((s, f) => s + f.rx_bytes, 0)).toBeGreaterThan(BLOB);
      expect(inPod.coverage).toMatch(/^unknown/);
      expect(inPod.log).toMatch(
        new RegExp(`coverage_interfaces names ${veth}, which is not in /proc/net/dev`),
      );
    }, 60_000);

    it("cilium: Cilium's pinned maps through the bpffs mount with CAP_BPF, from a pod's own network", async () => {
      const e = table.cilium;
      const fs = CiliumBpffs.create();
      cleanups.push(() => fs.destroy());
      const n = fs.node('node-1');
      n.create('tcp4');
      // One connection, 1,500 bytes out and 30,000 back (Cilium ≤ 1.15's layout: both directions).
      n.put('tcp4', [
        {
          key: connectionKey({
            proto: PROTO.tcp,
            opener: '10.0.1.5',
            openerPort: 40000,
            responder: '10.0.2.7',
            responderPort: 443,
            flags: TUPLE_F_OUT,
          }),
          value: ctValue({
            layout: 'split',
            txPackets: 10,
            txBytes: 1500,
            rxPackets: 20,
            rxBytes: 30000,
            lifetime: monotonicSeconds() + 3600,
          }),
        },
      ]);
      const pod = await podNetns(`pvcpod${process.pid.toString(36)}`);
      cleanups.push(() => pod.destroy());
      const own = new TestCgroup('netmon-priv-cilium-agent');
      cleanups.push(() => own.destroy());
      // The chart mounts the host's /sys/fs/bpf at /sys/fs/bpf; here the test's own bpffs stands in.
      const bpffsDir = mountDir('cilium', '/sys/fs/bpf');
      const mapsDir = path.join(bpffsDir, path.relative(fs.mount, n.dir));
      expect(e.hostNetwork).toBe(false);
      const podContainer: Container = {
        netns: pod.path,
        cgroup: own.path,
        mounts: e.mounts.includes('bpffs') ? [`${fs.mount}:${bpffsDir}:ro`] : [],
        caps: e.capabilities,
        seccomp: e.seccomp,
        env: { NETMON_CILIUM_MAPS_DIR: mapsDir },
      };
      const out = path.join(work, 'cilium', 'full.jsonl');
      const yaml = (file: string) => `receivers:
  flows:
    mode: cilium
    cilium: { maps_dir: "\${env:NETMON_CILIUM_MAPS_DIR}", read_interval: 250ms, value_layout: split }
exporters: { file: { path: ${file} } }
service: { pipelines: { flows: { receivers: [flows], exporters: [file] } } }
`;

      // The kernel alone: since Linux 6.5 it lets uid 0 open root's pins without CAP_BPF; the runtime's
      // seccomp profile does not.
      const pin = path.join(mapsDir, 'cilium_ct4_global');
      const read = ['pinned-read', pin, '14', '56'];
      expect(await probe(podContainer, read)).toMatchObject({ ok: true, capEff: capEff(e.capabilities) });
      const bare = await probe({ ...podContainer, caps: [], seccomp: 'Unconfined' }, read);
      expect(bare.ok).toBe(kernelAtLeast(6, 5) || !unprivilegedBpfDisabled());
      expect(await probe({ ...podContainer, caps: [], seccomp: 'RuntimeDefault' }, read)).toMatchObject({
        ok: false,
        error: expect.stringMatching(/Operation not permitted/),
      });

      // Everything the table grants, in a pod's own network namespace: the entry's counters.
      const agent = containedAgent(podContainer, config('cilium', 'full', yaml(out)));
      try {
        await agent.running();
        await until(
          () => records(out).length > 0,
          5000,
          () => `no flow:\n${agent.text()}`,
        );
        expect(await agent.stop()).toBe(0);
      } finally {
        agent.kill();
      }
      expect(records(out)[0]).toMatchObject({
        src_ip: '10.0.1.5',
        src_port: 40000,
        dst_ip: '10.0.2.7',
        dst_port: 443,
        tx_bytes: 1500,
        rx_bytes: 30000,
      });
      // /proc: HZ from /proc/schedstat, which the runtime leaves readable; a kernel without it falls back
      // to /proc/timer_list, which the runtime masks.
      const started = agent.logs.find((l) => String(l.msg).startsWith("reading Cilium's conntrack maps"));
      if (existsSync('/proc/schedstat')) expect([100, 250, 300, 1000]).toContain(started?.kernel_hz);
      else expect(started?.kernel_hz).toBeUndefined();

      for (const cap of e.capabilities) {
        const expected = WITHOUT_CAPABILITY.cilium[cap];
        expect(expected, `no measurement of cilium without ${cap}`).toBeDefined();
        const { code, error } = await failedStart(
          { ...podContainer, caps: without(e.capabilities, cap) },
          config('cilium', `no-${cap}`, yaml(path.join(work, 'cilium', 'none.jsonl'))),
        );
        expect(code).toBe(1);
        expect(error).toMatch(expected);
      }

      expect(e.mounts).toEqual(['bpffs']);
      const noMount = await failedStart(
        { ...podContainer, mounts: [] },
        config('cilium', 'no-bpffs', yaml(path.join(work, 'cilium', 'none.jsonl'))),
      );
      expect(noMount.code).toBe(1);
      expect(noMount.error).toMatch(WITHOUT_MOUNT.bpffs);
    }, 60_000);

    it("dns: the tracer with its capabilities and the host cgroup2 root, from a pod's own network", async () => {
      const e = table.dns;
      const net = await NetnsPair.create('pvd');
      cleanups.push(() => net.destroy());
      const dnsmasq = startDnsmasq(net);
      await waitForOutput(dnsmasq, /started, version/);
      const pod = await podNetns(`pvdpod${process.pid.toString(36)}`);
      cleanups.push(() => pod.destroy());
      const watched = new TestCgroup('netmon-priv-dns');
      cleanups.push(() => watched.destroy());
      const client = watched.child('client');
      const own = new TestCgroup('netmon-priv-dns-agent');
      cleanups.push(() => own.destroy());
      const cgroupDir = mountDir('dns', '/host/sys/fs/cgroup');
      const seen = path.join(cgroupDir, path.relative(cgroup2Root(), watched.path));
      expect(e.hostNetwork).toBe(false);
      const podContainer: Container = {
        netns: pod.path,
        cgroup: own.path,
        mounts: e.mounts.includes('cgroup') ? [`${cgroup2Root()}:${cgroupDir}:ro`] : [],
        caps: e.capabilities,
        seccomp: e.seccomp,
        env: { NETMON_CGROUP_PATH: seen },
      };
      // optional: false, so a tracer that cannot run fails the start (the chart's pipeline says optional:
      // true, where the same cause is a warning and the agent runs without DNS).
      const yaml = `receivers:
  dns: { cgroup_path: "\${env:NETMON_CGROUP_PATH:-}", read_interval: 250ms, optional: false }
exporters: { debug: { interval: 250ms, verbosity: detailed } }
service: { pipelines: { dns: { receivers: [dns], exporters: [debug] } } }
`;

      const kernel = { ...podContainer, seccomp: 'Unconfined' };
      expect(await probe(kernel, ['dns-attach', seen])).toMatchObject({
        ok: true,
        capEff: capEff(e.capabilities),
      });
      for (const cap of e.capabilities) {
        if (cap === 'BPF' && !unprivilegedBpfDisabled()) continue;
        const r = await probe({ ...kernel, caps: without(e.capabilities, cap) }, ['dns-attach', seen]);
        expect(r.ok, `dns-attach without ${cap}`).toBe(false);
        expect(r.error).toMatch(
          cap === 'NET_ADMIN'
            ? /failed to attach to cgroup: Operation not permitted/
            : /Operation not permitted/,
        );
      }

      // Everything the table grants: the client's lookup (in the node's namespace, the agent in a pod's).
      const agent = containedAgent(podContainer, config('dns', 'full', yaml));
      try {
        await agent.running();
        const dig = await watched.run(
          client,
          'dig',
          ['+time=2', '+tries=1', '+short', `@${net.ipA}`, 'www.shop.test'],
          net.b,
        );
        expect(dig.trim()).toBe(net.ipA);
        await until(
          () => /www\.shop\.test A: NOERROR/.test(agent.stdout),
          5000,
          () => `no lookup printed:\n${agent.stdout}\n${agent.text()}`,
        );
        expect(await agent.stop()).toBe(0);
      } finally {
        agent.kill();
      }
      const line = agent.stdout.split('\n').find((l) => /www\.shop\.test A: NOERROR/.test(l)) ?? '';
      expect(line).toContain(`A ${net.ipA} (ttl 120s)`);
      expect(line).toContain(`cgroup=${TestCgroup.id(client)}`);

      for (const cap of e.capabilities) {
        const expected = WITHOUT_CAPABILITY.dns[cap];
        expect(expected, `no measurement of dns without ${cap}`).toBeDefined();
        const { code, error } = await failedStart(
          { ...podContainer, caps: without(e.capabilities, cap) },
          config('dns', `no-${cap}`, yaml),
        );
        expect(code).toBe(1);
        expect(error).toMatch(expected);
      }

      expect(e.mounts).toEqual(['cgroup']);
      const noMount = await failedStart(
        { ...podContainer, mounts: [], env: { NETMON_CGROUP_PATH: '' } },
        config('dns', 'no-cgroup', yaml),
      );
      expect(noMount.code).toBe(1);
      expect(noMount.error).toMatch(WITHOUT_MOUNT.cgroup);
    }, 60_000);
  });
});
