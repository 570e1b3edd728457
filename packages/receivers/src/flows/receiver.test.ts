import { type ComponentSettings, createLogger, type FlowBatch, StatusBoard } from '@netmon/core';
import { CollectingSink, recordingMeter, testSettings } from '@netmon/core/testkit';
import { describe, expect, it } from 'vitest';
import { ciliumReceiverConfig } from '../cilium/config.js';
import { CiliumReceiver } from '../cilium/receiver.js';
import { conntrackReceiverConfig } from '../conntrack/config.js';
import { ConntrackReceiver } from '../conntrack/receiver.js';
import { dumpResult, FakeKernel } from '../conntrack/testdata/fake-kernel.js';
import { ebpfReceiverConfig } from '../ebpf/config.js';
import { flowsReceiverConfig } from './config.js';
import { flowsReceiverFactory, makeFlowsReceiverFactory } from './factory.js';
import { FlowsReceiver } from './receiver.js';
import { fakeCiliumKernel } from './testdata/fake-cilium.js';
import { type FakeNodeOptions, fakeNode } from './testdata/fake-node.js';
import { type FakeBehaviour, fakeFactories, fakeFactory } from './testdata/fake-receivers.js';

interface LogLine {
  level: number;
  msg: string;
  mode?: string;
  component?: string;
  [key: string]: unknown;
}
const INFO = 30;
const WARN = 40;

/** The wrapper on a made-up node with stand-in receivers, a status board, a real logger and a readable meter. */
function setup(
  opts: {
    config?: Record<string, unknown>;
    node?: FakeNodeOptions;
    netfilter?: FakeBehaviour;
    ebpf?: FakeBehaviour;
    cilium?: FakeBehaviour;
  } = {},
) {
  const logs: LogLine[] = [];
  const logger = createLogger({
    level: 'debug',
    pretty: false,
    destination: { write: (line: string) => void logs.push(JSON.parse(line)) },
  }).child({ component: 'flows' });
  const meter = recordingMeter();
  const board = new StatusBoard();
  const settings: ComponentSettings = {
    ...testSettings('receiver', 'flows', { board }),
    logger,
    meter: meter.meter,
  };
  const state = board.all()[0];
  const sink = new CollectingSink<FlowBatch>();
  const factories = fakeFactories({ netfilter: opts.netfilter, ebpf: opts.ebpf, cilium: opts.cilium });
  const config = flowsReceiverConfig.parse(opts.config ?? {});
  const receiver = new FlowsReceiver(settings, config, sink, { files: fakeNode(opts.node), factories });
  return {
    receiver,
    config,
    settings,
    state,
    sink,
    meter,
    logs,
    netfilter: factories.netfilter.made,
    ebpf: factories.ebpf.made,
    cilium: factories.cilium.made,
    details: () => state.details?.() ?? {},
  };
}

const EBPF_ERROR = new Error('loading the BPF program failed: Operation not permitted (EPERM)');
const NETFILTER_ERROR = new Error('conntrack receiver: reading the conntrack table needs CAP_NET_ADMIN');
const CILIUM_ERROR = new Error(
  'cilium receiver: no Cilium conntrack map in /sys/fs/bpf/tc/globals (cilium_ct4_global, …): not a Cilium node, or maps_dir is not where its bpffs is mounted',
);
const NO_CILIUM =
  "no Cilium conntrack map pinned at /sys/fs/bpf/tc/globals (cilium_ct4_global or cilium_ct6_global): not a Cilium node, or its bpffs is not mounted into the agent there (mount the host's /sys/fs/bpf; cilium.maps_dir)";

describe('flows receiver: mode auto', () => {
  it('chooses ebpf when BTF, cgroup2 and the capabilities are there, and says why in the log and /status', async () => {
    const t = setup();
    await t.receiver.start();
    expect(t.receiver.mode).toBe('ebpf');
    expect(t.ebpf).toHaveLength(1);
    expect(t.netfilter).toHaveLength(0);
    expect(t.ebpf[0].started).toBe(true);

    // conntrack is usable too: the reason says what netfilter would have given that ebpf does not.
    const reason =
      'eBPF is usable: BTF at /sys/kernel/btf/vmlinux; cgroup2 at /sys/fs/cgroup; CAP_SYS_ADMIN. ' +
      'netfilter would also give the backends of Services (mode: netfilter)';
    const details = t.details();
    expect(details).toEqual({
      mode: 'ebpf',
      reason,
      probes: {
        cilium: { usable: false, found: NO_CILIUM },
        ebpf: {
          usable: true,
          found: 'BTF at /sys/kernel/btf/vmlinux; cgroup2 at /sys/fs/cgroup; CAP_SYS_ADMIN',
        },
        netfilter: {
          usable: true,
          found: "nf_conntrack in use (12 entries in the agent's network namespace); CAP_NET_ADMIN",
          in_use: true,
        },
      },
      // The wrapped receiver's own facts, beside the wrapper's.
      receiver_fact: 'ebpf is here',
    });

    // Exactly one info line from the wrapper says what it chose and why, with the probes.
    const own = t.logs.filter((l) => l.level === INFO && !l.msg.endsWith('receiver started'));
    expect(own).toHaveLength(1);
    expect(own[0].msg).toBe(`mode auto chose ebpf: ${reason}`);
    expect(own[0].probes).toEqual(details.probes);
    expect(t.logs.filter((l) => l.level >= WARN)).toEqual([]);
    await t.receiver.shutdown();
  });

  it('runs the chosen receiver with its own settings: same id, meter, status and logger scope, its config block', async () => {
    const t = setup({ config: { ebpf: { max_flows: 1024 }, netfilter: { events: false } } });
    await t.receiver.start();
    const inner = t.ebpf[0];
    expect(inner.config).toEqual(ebpfReceiverConfig.parse({ max_flows: 1024 }));
    expect(inner.settings.id).toBe('flows');
    expect(inner.settings.meter).toBe(t.settings.meter);
    expect(inner.settings.signals).toEqual(['flows']);
    // Its self-metric is read on the wrapper's meter.
    expect(t.meter.value('netmon_ebpf_reads')).toBe(7);
    expect(t.meter.value('netmon_flows_collection_mode', { mode: 'ebpf', chosen_by: 'auto' })).toBe(1);
    // Its log line carries the wrapper's component id, and the mode.
    expect(t.logs.find((l) => l.msg === 'ebpf receiver started')).toMatchObject({
      component: 'flows',
      mode: 'ebpf',
    });
    // Its batches reach the wrapper's sink, with the wrapper's id as origin.
    expect(t.sink.batches.map((b) => b.origin)).toEqual(['flows']);
    expect(t.sink.items).toBe(2);
    await t.receiver.shutdown();
    expect(inner.shutdowns).toBe(1);
    expect(t.meter.value('netmon_ebpf_reads')).toBeUndefined();
  });

  it("chooses cilium where Cilium's conntrack maps are pinned, and says why", async () => {
    const t = setup({ node: { cilium: ['ct4', 'ct6'] } });
    await t.receiver.start();
    expect(t.receiver.mode).toBe('cilium');
    expect(t.cilium).toHaveLength(1);
    expect(t.ebpf).toHaveLength(0);
    expect(t.netfilter).toHaveLength(0);
    // auto asks the cilium receiver to refuse maps without counters (Cilium's accounting off).
    expect(t.cilium[0].config).toEqual({ ...ciliumReceiverConfig.parse({}), require_counters: true });
    const found =
      "Cilium's conntrack maps are pinned at /sys/fs/bpf/tc/globals (cilium_ct4_global, cilium_ct6_global)";
    const reason = `${found}: reading them instead of instrumenting the node a second time`;
    const details = t.details();
    expect(details).toMatchObject({
      mode: 'cilium',
      reason,
      probes: { cilium: { usable: true, found }, ebpf: { usable: true }, netfilter: { usable: true } },
      receiver_fact: 'cilium is here',
    });
    const own = t.logs.filter((l) => l.level === INFO && !l.msg.endsWith('receiver started'));
    expect(own.map((l) => l.msg)).toEqual([`mode auto chose cilium: ${reason}`]);
    expect(t.logs.find((l) => l.msg === 'cilium receiver started')).toMatchObject({ mode: 'cilium' });
    expect(t.meter.value('netmon_cilium_reads')).toBe(7);
    expect(t.meter.value('netmon_flows_collection_mode', { mode: 'cilium', chosen_by: 'auto' })).toBe(1);
    expect(t.meter.value('netmon_flows_collection_mode', { mode: 'ebpf' })).toBeUndefined();
    expect(t.sink.batches.map((b) => b.origin)).toEqual(['flows']);
    await t.receiver.shutdown();
    expect(t.cilium[0].shutdowns).toBe(1);
    expect(t.meter.value('netmon_flows_collection_mode')).toBeUndefined();
  });

  it('looks for the maps where the cilium block says, with the names it gives', async () => {
    const node = { cilium: ['ct4'] as const, ciliumDir: '/host/sys/fs/bpf/tc/globals' };
    // Cilium's own directory is empty in this agent: auto goes on to ebpf.
    const atDefault = setup({ node });
    await atDefault.receiver.start();
    expect(atDefault.receiver.mode).toBe('ebpf');
    await atDefault.receiver.shutdown();

    const config = { cilium: { maps_dir: '/host/sys/fs/bpf/tc/globals', read_interval: '10s' } };
    const t = setup({ node, config });
    await t.receiver.start();
    expect(t.receiver.mode).toBe('cilium');
    expect(t.details().reason).toBe(
      "Cilium's conntrack maps are pinned at /host/sys/fs/bpf/tc/globals (cilium_ct4_global): reading them instead of instrumenting the node a second time",
    );
    // The block the probe read is the one the receiver gets (auto: refusing maps without counters).
    expect(t.cilium[0].config).toEqual({
      ...ciliumReceiverConfig.parse(config.cilium),
      require_counters: true,
    });
    await t.receiver.shutdown();
  });

  it('chooses ebpf on a kernel without BTF too (the flow counter needs none), and says so', async () => {
    // Without nf_conntrack: nothing netfilter would add is worth a word.
    const t = setup({ node: { btf: false, conntrack: false } });
    await t.receiver.start();
    expect(t.receiver.mode).toBe('ebpf');
    expect(t.netfilter).toHaveLength(0);
    expect(t.details().reason).toBe(
      'eBPF is usable: no kernel BTF at /sys/kernel/btf/vmlinux (not needed: the flow counter uses no CO-RE); ' +
        'cgroup2 at /sys/fs/cgroup; CAP_SYS_ADMIN',
    );
    await t.receiver.shutdown();
  });

  it('chooses netfilter on a cgroup v1 only host', async () => {
    const t = setup({ node: { cgroup2: false } });
    await t.receiver.start();
    expect(t.receiver.mode).toBe('netfilter');
    expect(t.details().probes).toMatchObject({
      ebpf: {
        usable: false,
        found:
          'BTF at /sys/kernel/btf/vmlinux; no cgroup2 mount in /proc/self/mountinfo (the programs attach to a cgroup2 directory); CAP_SYS_ADMIN',
      },
    });
    await t.receiver.shutdown();
  });

  it('chooses netfilter when the agent may not load BPF programs (CAP_NET_ADMIN alone)', async () => {
    const t = setup({ node: { caps: ['CAP_NET_ADMIN'] } });
    await t.receiver.start();
    expect(t.receiver.mode).toBe('netfilter');
    expect(t.details().probes).toMatchObject({
      ebpf: {
        usable: false,
        found:
          'BTF at /sys/kernel/btf/vmlinux; cgroup2 at /sys/fs/cgroup; loading BPF programs needs CAP_BPF and CAP_NET_ADMIN, or CAP_SYS_ADMIN: CAP_BPF missing',
      },
    });
    await t.receiver.shutdown();
  });

  it('chooses an idle conntrack as the last resort, with a warning and /status saying it holds no connections and what to do', async () => {
    // A Cilium node with eBPF host routing, seen from an agent that may not load BPF programs and has not
    // mounted Cilium's bpffs: the conntrack table is empty though the node is busy.
    const t = setup({ node: { caps: ['CAP_NET_ADMIN'], conntrack: 0 } });
    await t.receiver.start();
    expect(t.receiver.mode).toBe('netfilter');
    expect(t.netfilter[0].started).toBe(true);
    const advice =
      "conntrack holds no connections, so this node's traffic may bypass netfilter (Cilium's eBPF host routing, " +
      "kube-proxy replacement), or the agent is not in the node's network namespace (hostNetwork: true), and " +
      "netfilter may collect almost nothing. Give the agent what ebpf needs (the host's cgroup2 mount or " +
      'ebpf.cgroup_path naming it, and CAP_BPF with CAP_NET_ADMIN, or CAP_SYS_ADMIN) or, on a Cilium node, ' +
      "mount the host's /sys/fs/bpf where cilium.maps_dir says";
    const reason =
      'eBPF is not usable (BTF at /sys/kernel/btf/vmlinux; cgroup2 at /sys/fs/cgroup; loading BPF programs needs ' +
      'CAP_BPF and CAP_NET_ADMIN, or CAP_SYS_ADMIN: CAP_BPF missing); conntrack is: nf_conntrack loaded but ' +
      `holding no connection (0 entries in the agent's network namespace); CAP_NET_ADMIN. But ${advice}`;
    const details = t.details();
    expect(details).toMatchObject({
      mode: 'netfilter',
      reason,
      probes: {
        netfilter: {
          usable: true,
          found:
            "nf_conntrack loaded but holding no connection (0 entries in the agent's network namespace); CAP_NET_ADMIN",
          in_use: false,
        },
      },
    });
    // Said as a warning, not an info line: the agent runs, but may see next to nothing.
    const own = t.logs.filter((l) => l.level >= INFO && !l.msg.endsWith('receiver started'));
    expect(own.map((l) => [l.level, l.msg])).toEqual([[WARN, `mode auto chose netfilter: ${reason}`]]);
    expect(own[0].probes).toEqual(details.probes);
    await t.receiver.shutdown();

    // The same node with conntrack in use: an info line, no advice.
    const busy = setup({ node: { caps: ['CAP_NET_ADMIN'], conntrack: 412 } });
    await busy.receiver.start();
    expect(busy.details().reason).toMatch(
      /conntrack is: nf_conntrack in use \(412 entries .*; CAP_NET_ADMIN$/,
    );
    expect(busy.logs.filter((l) => l.level >= WARN)).toEqual([]);
    await busy.receiver.shutdown();
  });

  it('prefers ebpf over an idle conntrack without claiming netfilter would add anything', async () => {
    const t = setup({ node: { conntrack: 0 } });
    await t.receiver.start();
    expect(t.receiver.mode).toBe('ebpf');
    expect(t.details().reason).toBe(
      'eBPF is usable: BTF at /sys/kernel/btf/vmlinux; cgroup2 at /sys/fs/cgroup; CAP_SYS_ADMIN',
    );
    expect(t.details().probes).toMatchObject({ netfilter: { usable: true, in_use: false } });
    expect(t.logs.filter((l) => l.level >= WARN)).toEqual([]);
    await t.receiver.shutdown();
  });

  it('does not call the table idle when netfilter.netns names another namespace than the one it counted', async () => {
    const t = setup({
      node: { caps: ['CAP_NET_ADMIN'], conntrack: 0 },
      config: { netfilter: { netns: '/proc/1/ns/net' } },
    });
    await t.receiver.start();
    expect(t.receiver.mode).toBe('netfilter');
    expect(t.details().probes).toMatchObject({
      netfilter: {
        usable: true,
        found:
          "nf_conntrack loaded (0 entries in the agent's network namespace; netfilter.netns names /proc/1/ns/net, whose table the probe does not count); CAP_NET_ADMIN",
      },
    });
    expect((t.details().probes as { netfilter: object }).netfilter).not.toHaveProperty('in_use');
    expect(t.details().reason).not.toContain('holds no connections');
    expect(t.logs.filter((l) => l.level >= WARN)).toEqual([]);
    await t.receiver.shutdown();
  });

  it('takes CAP_BPF with CAP_NET_ADMIN as enough for ebpf, and CAP_SYS_ADMIN alone too', async () => {
    const bpf = setup({ node: { caps: ['CAP_BPF', 'CAP_NET_ADMIN'] } });
    await bpf.receiver.start();
    expect(bpf.receiver.mode).toBe('ebpf');
    expect((bpf.details().probes as { ebpf: { found: string } }).ebpf.found).toMatch(
      /CAP_BPF and CAP_NET_ADMIN$/,
    );
    await bpf.receiver.shutdown();

    // SYS_ADMIN without NET_ADMIN: ebpf yes, conntrack no.
    const sys = setup({ node: { caps: ['CAP_SYS_ADMIN'] } });
    await sys.receiver.start();
    expect(sys.receiver.mode).toBe('ebpf');
    expect(sys.details().probes).toMatchObject({
      netfilter: {
        usable: false,
        found:
          "nf_conntrack in use (12 entries in the agent's network namespace); reading conntrack needs CAP_NET_ADMIN: missing",
      },
    });
    await sys.receiver.shutdown();
  });

  it('fails with every probe’s finding and what to do when no mode is usable', async () => {
    const t = setup({ node: { caps: [], conntrack: false } });
    const err = await t.receiver.start().then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toBe(
      'mode: auto: no collection mode is usable on this node. ' +
        `cilium: ${NO_CILIUM}. ` +
        'ebpf: BTF at /sys/kernel/btf/vmlinux; cgroup2 at /sys/fs/cgroup; loading BPF programs needs CAP_BPF and CAP_NET_ADMIN, or CAP_SYS_ADMIN: CAP_BPF and CAP_NET_ADMIN missing. ' +
        "netfilter: cannot read /proc/sys/net/netfilter/nf_conntrack_count (ENOENT: no such file or directory, open '/proc/sys/net/netfilter/nf_conntrack_count'): nf_conntrack is not loaded, so the kernel tracks no connection; reading conntrack needs CAP_NET_ADMIN: missing. " +
        'Give the agent what one mode needs — cilium: the host’s /sys/fs/bpf mounted where cilium.maps_dir says, on a node whose CNI is Cilium; ' +
        'ebpf: the host’s cgroup2 mount (or ebpf.cgroup_path naming it), and CAP_BPF with CAP_NET_ADMIN (or CAP_SYS_ADMIN); ' +
        'netfilter: CAP_NET_ADMIN and nf_conntrack loaded (modprobe nf_conntrack), with hostNetwork: true in Kubernetes. ' +
        'Without kernel access, replay recorded flows with the file receiver (configs/examples/replay.yaml)',
    );
    expect(t.ebpf).toHaveLength(0);
    expect(t.netfilter).toHaveLength(0);
    expect(t.cilium).toHaveLength(0);
    expect(t.details()).toMatchObject({ mode: 'none' });
    expect(t.receiver.mode).toBeUndefined();
    await t.receiver.shutdown();
  });

  it('capabilities it cannot read count as missing, and say so', async () => {
    const t = setup({ node: { caps: 'unreadable' } });
    await expect(t.receiver.start()).rejects.toThrow(
      "capabilities unknown: cannot read /proc/self/status: ENOENT: no such file or directory, open '/proc/self/status'",
    );
  });

  it('falls back to netfilter when the ebpf receiver fails to start, with a warning and a /status detail', async () => {
    const t = setup({ ebpf: { startError: EBPF_ERROR, reportBeforeFailing: true } });
    await t.receiver.start();
    expect(t.receiver.mode).toBe('netfilter');
    // The failed one was shut down and its reports cut off; the new one runs.
    expect(t.ebpf[0].shutdowns).toBe(1);
    expect(t.netfilter[0].started).toBe(true);
    const details = t.details();
    expect(details).toMatchObject({
      mode: 'netfilter',
      fallback: [{ from: 'ebpf', error: EBPF_ERROR.message }],
      receiver_fact: 'conntrack is here',
    });
    expect(details.reason).toMatch(
      /^eBPF is usable: .*; but the ebpf receiver failed to start, and conntrack is usable: nf_conntrack in use/,
    );
    const warnings = t.logs.filter((l) => l.level === WARN);
    expect(warnings.map((l) => l.msg)).toEqual([
      `mode auto chose ebpf, whose receiver failed to start (${EBPF_ERROR.message}): falling back to netfilter (conntrack)`,
    ]);
    expect(warnings[0].fallback).toEqual({ from: 'ebpf', error: EBPF_ERROR.message });
    // The error the ebpf receiver reported while it tried does not outlive it: netfilter runs.
    expect(t.state.status).toBe('ok');
    // Only the running receiver's metric is observed.
    expect(t.meter.value('netmon_ebpf_reads')).toBeUndefined();
    expect(t.meter.value('netmon_conntrack_reads')).toBe(7);
    // A late report from the abandoned receiver changes nothing.
    t.ebpf[0].settings.status.recoverableError(new Error('late'));
    t.ebpf[0].settings.status.describe(() => ({ receiver_fact: 'stale' }));
    expect(t.state.status).toBe('ok');
    expect(t.details().receiver_fact).toBe('conntrack is here');
    await t.receiver.shutdown();
    expect(t.netfilter[0].shutdowns).toBe(1);
  });

  it('falling back to an idle conntrack says it holds no connections, in the warning and the reason', async () => {
    const t = setup({ node: { conntrack: 0 }, ebpf: { startError: EBPF_ERROR } });
    await t.receiver.start();
    expect(t.receiver.mode).toBe('netfilter');
    const idle =
      /\. But conntrack holds no connections, so this node's traffic may bypass netfilter .* where cilium\.maps_dir says$/;
    expect(t.details().reason).toMatch(
      /; but the ebpf receiver failed to start, and conntrack is usable: nf_conntrack loaded but holding no connection \(0 entries/,
    );
    expect(t.details().reason).toMatch(idle);
    const warnings = t.logs.filter((l) => l.level === WARN).map((l) => l.msg);
    expect(warnings).toHaveLength(1);
    expect(
      warnings[0].startsWith(
        `mode auto chose ebpf, whose receiver failed to start (${EBPF_ERROR.message}): falling back to netfilter (conntrack). But conntrack holds no connections`,
      ),
    ).toBe(true);
    expect(warnings[0]).toMatch(idle);
    await t.receiver.shutdown();
  });

  it('does not fall back when the netfilter probe failed: the ebpf error and the probe say why', async () => {
    const t = setup({ node: { conntrack: false }, ebpf: { startError: EBPF_ERROR } });
    await expect(t.receiver.start()).rejects.toThrow(
      `mode: auto chose ebpf (eBPF is usable: BTF at /sys/kernel/btf/vmlinux; cgroup2 at /sys/fs/cgroup; CAP_SYS_ADMIN), which cannot start: ${EBPF_ERROR.message}; netfilter is not usable either (cannot read /proc/sys/net/netfilter/nf_conntrack_count`,
    );
    expect(t.netfilter).toHaveLength(0);
    expect(t.ebpf[0].shutdowns).toBe(1);
    expect(t.receiver.mode).toBeUndefined();
  });

  it('says both errors when the netfilter receiver it fell back to fails too', async () => {
    const t = setup({ ebpf: { startError: EBPF_ERROR }, netfilter: { startError: NETFILTER_ERROR } });
    await expect(t.receiver.start()).rejects.toThrow(
      `mode: auto: the ebpf receiver failed to start (${EBPF_ERROR.message}), and so did the netfilter one it fell back to: ${NETFILTER_ERROR.message}`,
    );
    expect(t.ebpf[0].shutdowns).toBe(1);
    expect(t.netfilter[0].shutdowns).toBe(1);
  });

  it('never falls back from netfilter (auto chose it because eBPF was not usable)', async () => {
    const t = setup({ node: { cgroup2: false }, netfilter: { startError: NETFILTER_ERROR } });
    await expect(t.receiver.start()).rejects.toThrow(/^mode: auto chose netfilter \(eBPF is not usable/);
    expect(t.ebpf).toHaveLength(0);
  });

  it('falls back from cilium to ebpf when the cilium receiver fails to start, saying so as it does from ebpf', async () => {
    const t = setup({
      node: { cilium: ['ct4'] },
      cilium: { startError: CILIUM_ERROR, reportBeforeFailing: true },
    });
    await t.receiver.start();
    expect(t.receiver.mode).toBe('ebpf');
    expect(t.cilium[0].shutdowns).toBe(1);
    expect(t.ebpf[0].started).toBe(true);
    expect(t.netfilter).toHaveLength(0);
    const details = t.details();
    expect(details).toMatchObject({
      mode: 'ebpf',
      fallback: [{ from: 'cilium', error: CILIUM_ERROR.message }],
      receiver_fact: 'ebpf is here',
    });
    expect(details.reason).toBe(
      "Cilium's conntrack maps are pinned at /sys/fs/bpf/tc/globals (cilium_ct4_global): reading them instead of instrumenting the node a second time; " +
        'but the cilium receiver failed to start, and eBPF is usable: BTF at /sys/kernel/btf/vmlinux; cgroup2 at /sys/fs/cgroup; CAP_SYS_ADMIN',
    );
    const warnings = t.logs.filter((l) => l.level === WARN);
    expect(warnings.map((l) => l.msg)).toEqual([
      `mode auto chose cilium, whose receiver failed to start (${CILIUM_ERROR.message}): falling back to ebpf`,
    ]);
    expect(warnings[0]).toMatchObject({
      mode: 'ebpf',
      fallback: { from: 'cilium', error: CILIUM_ERROR.message },
    });
    // The error cilium reported while it tried is gone; only the running receiver's metric is observed.
    expect(t.state.status).toBe('ok');
    expect(t.meter.value('netmon_cilium_reads')).toBeUndefined();
    expect(t.meter.value('netmon_ebpf_reads')).toBe(7);
    await t.receiver.shutdown();
    expect(t.ebpf[0].shutdowns).toBe(1);
  });

  it('falls back from cilium straight to netfilter when eBPF is not usable', async () => {
    const t = setup({ node: { cilium: ['ct6'], cgroup2: false }, cilium: { startError: CILIUM_ERROR } });
    await t.receiver.start();
    expect(t.receiver.mode).toBe('netfilter');
    expect(t.ebpf).toHaveLength(0);
    expect(t.details().reason).toMatch(
      /; but the cilium receiver failed to start, and conntrack is usable: nf_conntrack in use \(12 entries/,
    );
    expect(t.logs.filter((l) => l.level === WARN).map((l) => l.msg)).toEqual([
      `mode auto chose cilium, whose receiver failed to start (${CILIUM_ERROR.message}): falling back to netfilter (conntrack)`,
    ]);
    await t.receiver.shutdown();
  });

  it('goes on from cilium to ebpf to netfilter while each fails, listing every failure', async () => {
    const t = setup({
      node: { cilium: ['ct4'] },
      cilium: { startError: CILIUM_ERROR },
      ebpf: { startError: EBPF_ERROR, reportBeforeFailing: true },
    });
    await t.receiver.start();
    expect(t.receiver.mode).toBe('netfilter');
    expect([t.cilium[0].shutdowns, t.ebpf[0].shutdowns, t.netfilter[0].shutdowns]).toEqual([1, 1, 0]);
    const details = t.details();
    expect(details.fallback).toEqual([
      { from: 'cilium', error: CILIUM_ERROR.message },
      { from: 'ebpf', error: EBPF_ERROR.message },
    ]);
    expect(details.reason).toMatch(
      /^Cilium's conntrack maps are pinned .*; but the cilium receiver failed to start, and eBPF is usable: .*; but the ebpf receiver failed to start, and conntrack is usable: nf_conntrack in use/,
    );
    expect(t.logs.filter((l) => l.level === WARN).map((l) => l.msg)).toEqual([
      `mode auto chose cilium, whose receiver failed to start (${CILIUM_ERROR.message}): falling back to ebpf`,
      `mode auto fell back to ebpf, whose receiver failed to start too (${EBPF_ERROR.message}): falling back to netfilter (conntrack)`,
    ]);
    expect(t.state.status).toBe('ok');
    await t.receiver.shutdown();
  });

  it('says every error when cilium, ebpf and netfilter all fail to start', async () => {
    const t = setup({
      node: { cilium: ['ct4'] },
      cilium: { startError: CILIUM_ERROR },
      ebpf: { startError: EBPF_ERROR },
      netfilter: { startError: NETFILTER_ERROR },
    });
    await expect(t.receiver.start()).rejects.toThrow(
      `mode: auto: the cilium receiver failed to start (${CILIUM_ERROR.message}), and so did the ebpf one it fell back to (${EBPF_ERROR.message}), and the netfilter one after it: ${NETFILTER_ERROR.message}`,
    );
    expect([t.cilium[0].shutdowns, t.ebpf[0].shutdowns, t.netfilter[0].shutdowns]).toEqual([1, 1, 1]);
    expect(t.receiver.mode).toBeUndefined();
  });

  it('fails with what the other probes saw when cilium fails to start and nothing else is usable', async () => {
    const t = setup({
      node: { cilium: ['ct4'], cgroup2: false, conntrack: false },
      cilium: { startError: CILIUM_ERROR },
    });
    const err = await t.receiver.start().then(
      () => undefined,
      (e: Error) => e,
    );
    const message = err?.message ?? '';
    expect(message.startsWith("mode: auto chose cilium (Cilium's conntrack maps are pinned at ")).toBe(true);
    expect(message).toContain(
      `, which cannot start: ${CILIUM_ERROR.message}; ebpf is not usable either (BTF at`,
    );
    expect(message).toMatch(
      /no cgroup2 mount in \/proc\/self\/mountinfo .*\); netfilter is not usable either \(cannot read \/proc\/sys\/net\/netfilter\/nf_conntrack_count .*\)\. Give the agent what one mode needs — cilium: /,
    );
    expect(t.ebpf).toHaveLength(0);
    expect(t.netfilter).toHaveLength(0);
  });
});

describe('flows receiver: a mode named in the config is never replaced', () => {
  it('mode: netfilter runs conntrack even where eBPF is usable', async () => {
    const t = setup({ config: { mode: 'netfilter', netfilter: { read_interval: '10s' } } });
    await t.receiver.start();
    expect(t.receiver.mode).toBe('netfilter');
    expect(t.ebpf).toHaveLength(0);
    expect(t.netfilter[0].config).toEqual(conntrackReceiverConfig.parse({ read_interval: '10s' }));
    expect(t.details()).toEqual({
      mode: 'netfilter',
      reason: 'set in the config (mode: netfilter)',
      receiver_fact: 'conntrack is here',
    });
    expect(
      t.logs.filter((l) => l.level === INFO && !l.msg.endsWith('receiver started')).map((l) => l.msg),
    ).toEqual(['collecting flows with netfilter, set in the config (mode: netfilter)']);
    expect(t.meter.value('netmon_flows_collection_mode', { mode: 'netfilter', chosen_by: 'config' })).toBe(1);
    await t.receiver.shutdown();
  });

  it('mode: ebpf runs ebpf even where eBPF looks unusable, and its failure says why and what else would run', async () => {
    const t = setup({ config: { mode: 'ebpf' }, node: { cgroup2: false }, ebpf: { startError: EBPF_ERROR } });
    await expect(t.receiver.start()).rejects.toThrow(
      `mode: ebpf cannot start: ${EBPF_ERROR.message}. netmon does not switch to another mode by itself; ` +
        "netfilter looks usable on this node (nf_conntrack in use (12 entries in the agent's network namespace); CAP_NET_ADMIN): " +
        'set mode: netfilter, or auto to let netmon pick',
    );
    expect(t.ebpf).toHaveLength(1);
    expect(t.netfilter).toHaveLength(0);
    expect(t.ebpf[0].shutdowns).toBe(1);
    expect(t.receiver.mode).toBeUndefined();
  });

  it('mode: netfilter that cannot start fails, even where ebpf would run', async () => {
    const t = setup({ config: { mode: 'netfilter' }, netfilter: { startError: NETFILTER_ERROR } });
    await expect(t.receiver.start()).rejects.toThrow(
      `mode: netfilter cannot start: ${NETFILTER_ERROR.message}. netmon does not switch to another mode by itself; ` +
        'ebpf looks usable on this node (BTF at /sys/kernel/btf/vmlinux; cgroup2 at /sys/fs/cgroup; CAP_SYS_ADMIN): set mode: ebpf, or auto to let netmon pick',
    );
    expect(t.ebpf).toHaveLength(0);
  });

  it('mode: cilium runs the cilium receiver with the cilium block, even where eBPF is usable too', async () => {
    const t = setup({
      config: { mode: 'cilium', cilium: { read_interval: '15s' } },
      node: { cilium: ['ct4'] },
    });
    await t.receiver.start();
    expect(t.receiver.mode).toBe('cilium');
    expect(t.cilium[0].config).toEqual(ciliumReceiverConfig.parse({ read_interval: '15s' }));
    expect(t.ebpf).toHaveLength(0);
    expect(t.netfilter).toHaveLength(0);
    expect(t.details()).toEqual({
      mode: 'cilium',
      reason: 'set in the config (mode: cilium)',
      receiver_fact: 'cilium is here',
    });
    expect(
      t.logs.filter((l) => l.level === INFO && !l.msg.endsWith('receiver started')).map((l) => l.msg),
    ).toEqual(['collecting flows with cilium, set in the config (mode: cilium)']);
    await t.receiver.shutdown();
    expect(t.cilium[0].shutdowns).toBe(1);
  });

  it('mode: cilium that cannot start fails, never falling back, and names the modes that look usable', async () => {
    const t = setup({ config: { mode: 'cilium' }, cilium: { startError: CILIUM_ERROR } });
    await expect(t.receiver.start()).rejects.toThrow(
      `mode: cilium cannot start: ${CILIUM_ERROR.message}. netmon does not switch to another mode by itself; ` +
        'ebpf looks usable on this node (BTF at /sys/kernel/btf/vmlinux; cgroup2 at /sys/fs/cgroup; CAP_SYS_ADMIN), ' +
        "and so does netfilter (nf_conntrack in use (12 entries in the agent's network namespace); CAP_NET_ADMIN): " +
        'set mode: ebpf or mode: netfilter, or auto to let netmon pick',
    );
    expect(t.cilium[0].shutdowns).toBe(1);
    expect(t.ebpf).toHaveLength(0);
    expect(t.netfilter).toHaveLength(0);
    expect(t.receiver.mode).toBeUndefined();
    expect(t.logs.filter((l) => l.level === WARN)).toEqual([]);
  });

  it('mode: cilium that cannot start, where no other mode looks usable, says what each probe saw', async () => {
    const t = setup({
      config: { mode: 'cilium' },
      node: { caps: [], conntrack: false },
      cilium: { startError: CILIUM_ERROR },
    });
    await expect(t.receiver.start()).rejects.toThrow(
      /netmon does not switch to another mode by itself; ebpf does not look usable either \(.*CAP_BPF and CAP_NET_ADMIN missing\); netfilter does not look usable either \(cannot read/,
    );
  });
});

describe('flows receiver: lifecycle', () => {
  it('shuts down without a start, twice', async () => {
    const t = setup();
    await t.receiver.shutdown();
    await t.receiver.shutdown();
    expect(t.ebpf).toHaveLength(0);
  });

  it('a shutdown while the factory loads the receiver: it is shut down, never started', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const ebpf = fakeFactory((await import('../ebpf/factory.js')).ebpfReceiverFactory);
    const slow = {
      ...ebpf,
      create: async (...args: Parameters<typeof ebpf.create>) => {
        await gate;
        return ebpf.create(...args);
      },
    };
    const t = setup();
    const receiver = new FlowsReceiver(t.settings, t.config, t.sink, {
      files: fakeNode(),
      factories: { ...fakeFactories(), ebpf: slow },
    });
    const starting = receiver.start();
    await receiver.shutdown();
    release();
    await expect(starting).rejects.toThrow('shut down while starting');
    expect(ebpf.made[0].started).toBe(false);
    expect(ebpf.made[0].shutdowns).toBe(1);
  });

  it('the factory makes it through create, with the wrapped factories it was given', async () => {
    const factories = fakeFactories();
    const factory = makeFlowsReceiverFactory(factories, { files: fakeNode({ cgroup2: false }) });
    const t = setup();
    const receiver = (await factory.create(
      t.settings,
      factory.config.parse({ mode: 'auto' }),
      t.sink,
    )) as FlowsReceiver;
    await receiver.start();
    expect(receiver.mode).toBe('netfilter');
    expect(factories.netfilter.made).toHaveLength(1);
    await receiver.shutdown();
    expect(flowsReceiverFactory.type).toBe('flows');
  });
});

describe('flows receiver with the real conntrack receiver (on a stand-in kernel)', () => {
  it("the conntrack receiver's rows, metrics and /status facts are the wrapper's", async () => {
    const kernel = new FakeKernel();
    kernel.dumper.fallback = () =>
      dumpResult([{ src: '10.0.0.1', dst: '10.0.0.2', srcPort: 40000, dstPort: 443, tx: 1500, rx: 9000 }]);
    const factories = fakeFactories();
    const netfilter = {
      ...factories.netfilter,
      create: (
        settings: ComponentSettings,
        config: import('../conntrack/config.js').ConntrackReceiverConfig,
        next: import('@netmon/core').BatchSink,
      ) => new ConntrackReceiver(settings, config, next, kernel),
    };
    const t = setup();
    const receiver = new FlowsReceiver(
      t.settings,
      flowsReceiverConfig.parse({ mode: 'netfilter', netfilter: { events: false } }),
      t.sink,
      { files: fakeNode(), factories: { ...factories, netfilter } },
    );
    await receiver.start();
    await t.sink.waitForItems(1);
    const batch = t.sink.batches[0];
    expect(batch.origin).toBe('flows');
    expect(batch.temporality).toBe('cumulative');
    expect([batch.row(0).txBytes, batch.row(0).rxBytes]).toEqual([1500, 9000]);
    expect(kernel.events.subscribed).toBe(false);
    expect(t.meter.value('netmon_conntrack_reads')).toBe(1);
    expect(t.details()).toEqual({
      mode: 'netfilter',
      reason: 'set in the config (mode: netfilter)',
      accounting: 'on',
    });
    await receiver.shutdown();
    expect(kernel.dumper.closed).toBe(true);
    expect(t.meter.value('netmon_conntrack_reads')).toBeUndefined();
  });
});

describe('flows receiver with the real cilium receiver (on a stand-in for the addon)', () => {
  it("auto picks cilium on a node with Cilium's maps; the cilium receiver's rows, metrics and /status facts are the wrapper's", async () => {
    const dir = '/host/sys/fs/bpf/tc/globals';
    const kernel = fakeCiliumKernel(dir, [
      { opener: ['10.0.1.5', 40000], answerer: ['10.0.2.7', 443], tx: 1500, rx: 9000 },
    ]);
    const factories = fakeFactories();
    const cilium = {
      ...factories.cilium,
      create: (
        settings: ComponentSettings,
        config: import('../cilium/config.js').CiliumReceiverConfig,
        next: import('@netmon/core').BatchSink,
      ) => new CiliumReceiver(settings, config, next, kernel),
    };
    const t = setup();
    const receiver = new FlowsReceiver(
      t.settings,
      flowsReceiverConfig.parse({
        cilium: { maps_dir: dir, read_interval: '1h', map_names: { any4: '', tcp6: '', any6: '' } },
      }),
      t.sink,
      { files: fakeNode({ cilium: ['ct4'], ciliumDir: dir }), factories: { ...factories, cilium } },
    );
    await receiver.start();
    expect(receiver.mode).toBe('cilium');
    await t.sink.waitForItems(1);
    const batch = t.sink.batches[0];
    expect(batch.origin).toBe('flows');
    expect(batch.temporality).toBe('cumulative');
    expect(batch.snapshot).toBe(true);
    const row = batch.row(0);
    // The opener is src, whatever the order Cilium stores the tuple in.
    expect([row.srcIp, row.srcPort, row.dstIp, row.dstPort]).toEqual(['10.0.1.5', 40000, '10.0.2.7', 443]);
    expect([row.txBytes, row.rxBytes]).toEqual([1500, 9000]);
    // Only the map the block names was read, where the block says: once by start (can it be read?), once
    // by the first read.
    expect(kernel.reads).toEqual([`${dir}/cilium_ct4_global`, `${dir}/cilium_ct4_global`]);
    expect(t.meter.value('netmon_cilium_reads')).toBe(1);
    expect(t.details()).toMatchObject({
      mode: 'cilium',
      reason: `Cilium's conntrack maps are pinned at ${dir} (cilium_ct4_global): reading them instead of instrumenting the node a second time`,
      maps_dir: dir,
      value_layout: 'split',
      directions: 'tx and rx',
      clock_source: 'ktime',
    });
    expect(t.state.status).toBe('ok');
    await receiver.shutdown();
    expect(t.meter.value('netmon_cilium_reads')).toBeUndefined();
  });
});
