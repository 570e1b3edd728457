import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, defineExporter, displayPath, loadConfig, Registry } from '@netmon/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ciliumReceiverConfig } from '../cilium/config.js';
import { conntrackReceiverConfig } from '../conntrack/config.js';
import { ebpfReceiverConfig } from '../ebpf/config.js';
import { flowsReceiverConfig } from './config.js';
import { FLOWS_METRICS, flowsReceiverFactory, makeFlowsReceiverFactory, possibleModes } from './factory.js';
import { fakeFactories } from './testdata/fake-receivers.js';

/** An exporter that claims the file it is told to write, so claims can collide with the receiver's. */
const sink = defineExporter({
  kind: 'exporter',
  type: 'sink',
  stability: 'development',
  description: 'a test exporter',
  signals: ['flows'],
  config: z.strictObject({ writes: z.string().optional() }),
  claims: (c) => (c.writes ? [{ kind: 'write', key: 'writes', path: c.writes }] : []),
  create: () => ({ export: () => {} }),
});

let tmp = '';
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'netmon-flows-cfg-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** Writes `receivers` (YAML lines under `receivers:`) into a whole config; returns the file. */
async function configFile(name: string, receivers: string, sinkConfig = '{}'): Promise<string> {
  const file = path.join(tmp, name);
  await writeFile(
    file,
    `receivers:\n${receivers}\nexporters:\n  sink: ${sinkConfig}\nservice:\n  pipelines:\n    flows:\n      receivers: [flows]\n      exporters: [sink]\n`,
  );
  return file;
}

async function problemsOf(
  file: string,
  env: NodeJS.ProcessEnv = {},
  registry = new Registry([flowsReceiverFactory, sink]),
): Promise<string[]> {
  try {
    await loadConfig([file], registry, env);
  } catch (err) {
    if (err instanceof ConfigError) return err.message.split('\n');
    throw err;
  }
  return [];
}

describe('flows receiver config', () => {
  it('defaults: auto, and each wrapped receiver’s own defaults', () => {
    expect(flowsReceiverConfig.parse({})).toEqual({
      mode: 'auto',
      netfilter: conntrackReceiverConfig.parse({}),
      ebpf: ebpfReceiverConfig.parse({}),
      cilium: ciliumReceiverConfig.parse({}),
    });
    expect(flowsReceiverConfig.parse({}).cilium.maps_dir).toBe('/sys/fs/bpf/tc/globals');
  });

  it('auto may run every mode, in the order it tries them; a named mode only itself', () => {
    const modes = (mode: string) => possibleModes(flowsReceiverConfig.parse({ mode }));
    expect(modes('auto')).toEqual(['cilium', 'ebpf', 'netfilter']);
    expect(modes('cilium')).toEqual(['cilium']);
    expect(modes('ebpf')).toEqual(['ebpf']);
    expect(modes('netfilter')).toEqual(['netfilter']);
  });

  it('a problem in any block keeps its path, file, line and column, whatever the mode', async () => {
    const f = await configFile(
      'nested.yaml',
      [
        '  flows:',
        '    mode: netfilter',
        '    netfilter:',
        '      read_intervall: 5s',
        '      families: [ipv5]',
        '    ebpf:',
        '      max_flows: 3',
        '    cilium:',
        '      value_layout: splt',
        '      map_names: { tcp4: "../etc/passwd" }',
      ].join('\n'),
    );
    const at = displayPath(f);
    expect(await problemsOf(f)).toEqual([
      `${at}:5:7: receivers::flows::netfilter::read_intervall: unknown key "read_intervall"; did you mean read_interval? (expected one of: read_interval, events, netns, families, protocols, enable_accounting, event_buffer_size)`,
      `${at}:6:18: receivers::flows::netfilter::families::0: "ipv5" is not one of: ipv4, ipv6; did you mean ipv4 or ipv6?`,
      `${at}:8:7: receivers::flows::ebpf::max_flows: Too small: expected number to be >=16`,
      `${at}:10:7: receivers::flows::cilium::value_layout: "splt" is not one of: auto, split, total; did you mean split?`,
      `${at}:11:20: receivers::flows::cilium::map_names::tcp4: expected a map file name (letters, digits, _ . -), or "" to leave it out`,
    ]);
  });

  it('an unknown mode names the modes', async () => {
    const f = await configFile('mode.yaml', '  flows:\n    mode: ebfp');
    expect(await problemsOf(f)).toEqual([
      `${displayPath(f)}:3:5: receivers::flows::mode: "ebfp" is not one of: netfilter, ebpf, cilium, auto; did you mean ebpf?`,
    ]);
  });

  it('an unknown key beside mode is an error', async () => {
    const f = await configFile('unknown.yaml', '  flows:\n    conntrack: {}');
    expect(await problemsOf(f)).toEqual([
      `${displayPath(f)}:3:5: receivers::flows::conntrack: unknown key "conntrack"; expected one of: mode, netfilter, ebpf, cilium`,
    ]);
  });

  it("the cilium block's maps_dir from the environment, as configs/kubernetes.yaml sets it", async () => {
    const f = await configFile(
      'cilium-env.yaml',
      '  flows:\n    mode: cilium\n    cilium:\n      maps_dir: ${env:NETMON_CILIUM_MAPS_DIR:-/sys/fs/bpf/tc/globals}',
    );
    const registry = new Registry([flowsReceiverFactory, sink]);
    const unset = await loadConfig([f], registry, {});
    expect(unset.components.receiver.get('flows')?.config).toMatchObject({
      mode: 'cilium',
      cilium: { maps_dir: '/sys/fs/bpf/tc/globals' },
    });
    const set = await loadConfig([f], registry, { NETMON_CILIUM_MAPS_DIR: '/host/sys/fs/bpf/tc/globals' });
    expect(set.components.receiver.get('flows')?.config).toMatchObject({
      cilium: { maps_dir: '/host/sys/fs/bpf/tc/globals' },
    });
  });

  it('the mode comes from the environment, and a wrong one says so', async () => {
    const f = await configFile('env.yaml', '  flows:\n    mode: ${env:NETMON_COLLECTION_MODE:-auto}');
    const config = await loadConfig([f], new Registry([flowsReceiverFactory, sink]), {
      NETMON_COLLECTION_MODE: 'netfilter',
    });
    expect(config.components.receiver.get('flows')?.config).toMatchObject({ mode: 'netfilter' });
    expect(await problemsOf(f, { NETMON_COLLECTION_MODE: 'bpf' })).toEqual([
      `${displayPath(f)}:3:5: receivers::flows::mode: "bpf" is not one of: netfilter, ebpf, cilium, auto; did you mean ebpf? (from \${env:NETMON_COLLECTION_MODE})`,
    ]);
    const unset = await loadConfig([f], new Registry([flowsReceiverFactory, sink]), {});
    expect(unset.components.receiver.get('flows')?.config).toMatchObject({ mode: 'auto' });
  });

  it("runs the wrapped receivers' own checks, at their keys, for the modes the config may run", async () => {
    const missing = path.join(tmp, 'no-such-thing');
    const blocks = (mode: string) =>
      `  flows:\n    mode: ${mode}\n    netfilter:\n      netns: ${missing}\n    ebpf:\n      cgroup_path: ${missing}`;
    const netns = (at: string) =>
      `${at}:5:7: receivers::flows::netfilter::netns: ${missing} does not exist: give a network namespace path such as /run/netns/NAME or /proc/PID/ns/net`;
    const cgroup = (at: string) =>
      `${at}:7:7: receivers::flows::ebpf::cgroup_path: ${missing} does not exist: give a cgroup2 directory such as /sys/fs/cgroup or /sys/fs/cgroup/kubepods.slice`;

    const auto = await configFile('checks-auto.yaml', blocks('auto'));
    expect(await problemsOf(auto)).toEqual([netns(displayPath(auto)), cgroup(displayPath(auto))]);
    const netfilter = await configFile('checks-netfilter.yaml', blocks('netfilter'));
    expect(await problemsOf(netfilter)).toEqual([netns(displayPath(netfilter))]);
    const ebpf = await configFile('checks-ebpf.yaml', blocks('ebpf'));
    expect(await problemsOf(ebpf)).toEqual([cgroup(displayPath(ebpf))]);
  });

  it('ebpf.cgroup_path on a file system other than cgroup2 is a problem at its key', async () => {
    const f = await configFile(
      'not-cgroup2.yaml',
      `  flows:\n    mode: ebpf\n    ebpf:\n      cgroup_path: ${tmp}`,
    );
    const problems = await problemsOf(f);
    expect(problems).toHaveLength(1);
    const prefix = `${displayPath(f)}:5:7: receivers::flows::ebpf::cgroup_path: ${tmp} is not on a cgroup2 file system (eBPF programs attach to cgroup2 directories only): `;
    expect(problems[0].slice(0, prefix.length)).toBe(prefix);
  });

  it("under auto, a cgroup_path that exists but is not cgroup2 is the probe's to judge, on each node", async () => {
    // A cgroup v1 node's /sys/fs/cgroup, mounted into the pod: auto runs another mode there (the probe says
    // why), where mode: ebpf refuses the same path.
    const f = await configFile(
      'auto-not-cgroup2.yaml',
      `  flows:\n    mode: auto\n    ebpf:\n      cgroup_path: ${tmp}`,
    );
    expect(await problemsOf(f)).toEqual([]);
  });

  it("delegates claims to the wrapped receivers, under their block's key", async () => {
    const factories = fakeFactories();
    const claiming = {
      ...factories.netfilter,
      claims: (c: { netns?: string }) =>
        c.netns ? [{ kind: 'read' as const, key: 'netns', path: c.netns }] : [],
    };
    const factory = makeFlowsReceiverFactory({ ...factories, netfilter: claiming });
    const ns = path.join(tmp, 'ns');
    await writeFile(ns, '');
    expect(factory.claims?.(factory.config.parse({ netfilter: { netns: ns } }), { configDir: tmp })).toEqual([
      { kind: 'read', key: 'netfilter::netns', path: ns },
    ]);
    // A mode that cannot run takes nothing.
    expect(
      factory.claims?.(factory.config.parse({ mode: 'ebpf', netfilter: { netns: ns } }), { configDir: tmp }),
    ).toEqual([]);
    const f = await configFile(
      'claims.yaml',
      `  flows:\n    netfilter:\n      netns: ${ns}`,
      `{ writes: ${ns} }`,
    );
    expect(await problemsOf(f, {}, new Registry([factory, sink]))).toEqual([
      `${displayPath(f)}:6:11: exporters::sink::writes: ${ns} is read by one component and written by the other (receivers::flows::netfilter::netns): the reader would read back the writer's output, counting every record again; write to another file`,
    ]);
  });

  it('declares every metric a wrapped receiver makes, once each', () => {
    const names = Object.values(FLOWS_METRICS).map((m) => m.name);
    expect(names).toContain('netmon_conntrack_reads');
    expect(names).toContain('netmon_ebpf_coverage');
    expect(names).toContain('netmon_cilium_reads');
    expect(names).toContain('netmon_cilium_truncated_reads');
    expect(new Set(names).size).toBe(names.length);
  });
});
