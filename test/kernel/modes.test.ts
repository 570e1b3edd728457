// The collection modes and the ebpf receiver through the real CLI: what `auto` chooses on this machine
// and how it explains it, a named ebpf mode, pods named by cgroup behind one shared address (the
// hostNetwork case, with the Kubernetes API stand-in), and no program left attached after kill -9.
// Root only: skipped locally without it, a failure in CI.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentProcess, freePort } from '../harness/agent.js';
import { attachedPrograms, TestCgroup } from '../harness/cgroup.js';
import { K8sApiStandIn } from '../harness/k8s-api.js';
import { node, pod } from '../harness/k8s-fixtures.js';
import { NetnsPair, privileged, startServers, TRAFFIC } from '../harness/netns.js';

const BLOB = 200_000;

interface Component {
  kind: string;
  id: string;
  status: string;
  details?: Record<string, unknown>;
}

async function receiverStatus(port: number): Promise<Component> {
  const doc = (await (await fetch(`http://127.0.0.1:${port}/status`)).json()) as { components: Component[] };
  const c = doc.components.find((x) => x.kind === 'receiver');
  if (!c) throw new Error('no receiver in /status');
  return c;
}

describe.runIf(privileged())('collection modes through the CLI', () => {
  let net: NetnsPair;
  let dir: string;
  let cg: TestCgroup;

  beforeAll(async () => {
    net = await NetnsPair.create('md');
    dir = mkdtempSync(path.join(tmpdir(), 'netmon-modes-'));
    writeFileSync(path.join(dir, 'blob.bin'), Buffer.alloc(BLOB, 7));
    await startServers(net, dir);
    cg = new TestCgroup();
  });

  afterAll(async () => {
    // Each step even when the one before it throws: the namespaces must not outlive the run.
    try {
      await cg?.destroy();
    } finally {
      try {
        await net?.destroy();
      } finally {
        if (dir) rmSync(dir, { recursive: true, force: true });
      }
    }
  });

  function writeConfig(name: string, yaml: string): string {
    const file = path.join(dir, `${name}.yaml`);
    writeFileSync(file, yaml);
    return file;
  }

  it('auto chooses ebpf on this machine, says why in the log and /status, and pods behind one address get their own bytes by cgroup', async () => {
    const api = await K8sApiStandIn.start();
    const uidA = '1b4e28ba-2fa1-11d2-883f-0016d3cca427';
    const uidB = '6fa459ea-ee8a-3ca4-894e-db77e160355e';
    // Both pods use the host's network (here: namespace b's address 10.200.0.2), as a hostNetwork pod does.
    api.add(node({ name: 'node-1', zone: 'zone-a', region: 'region-1', internalIPs: [net.ipB] }));
    api.add(
      pod({
        name: 'agent-a',
        namespace: 'ops',
        node: 'node-1',
        ips: [net.ipB],
        hostNetwork: true,
        uid: uidA,
      }),
    );
    api.add(
      pod({
        name: 'agent-b',
        namespace: 'ops',
        node: 'node-1',
        ips: [net.ipB],
        hostNetwork: true,
        uid: uidB,
      }),
    );
    const slice = 'kubepods.slice/kubepods-besteffort.slice';
    const cgA = cg.child(
      `${slice}/kubepods-besteffort-pod${uidA.replaceAll('-', '_')}.slice/cri-containerd-a1.scope`,
    );
    const cgB = cg.child(
      `${slice}/kubepods-besteffort-pod${uidB.replaceAll('-', '_')}.slice/cri-containerd-b1.scope`,
    );
    const kubeconfig = await api.writeKubeconfig(path.join(dir, 'kubeconfig'));
    const health = await freePort();
    const out = path.join(dir, 'auto.jsonl');
    const file = writeConfig(
      'auto',
      `receivers:
  flows:
    mode: auto
    ebpf: { cgroup_path: ${cg.path}, read_interval: 300ms }
processors: { k8s_attributes: {} }
exporters: { file: { path: ${out} } }
extensions:
  health_check: { endpoint: 127.0.0.1:${health} }
  k8s_metadata: { kubeconfig: ${kubeconfig}, node_name: node-1 }
service:
  extensions: [health_check, k8s_metadata]
  pipelines:
    flows: { receivers: [flows], processors: [k8s_attributes], exporters: [file] }
`,
    );
    const agent = new AgentProcess(['run', '--config', file]);
    try {
      const chose = await agent.waitForLog((l) => String(l.msg).startsWith('mode auto chose'), 30_000);
      expect(chose.msg).toMatch(/^mode auto chose ebpf: /);
      await agent.waitForLog((l) => String(l.msg).startsWith('netmon is running'), 30_000);
      const status = await receiverStatus(health);
      expect(status).toMatchObject({ id: 'flows', status: 'ok' });
      expect(status.details).toMatchObject({ mode: 'ebpf', cgroup: cg.path });
      expect(String(status.details?.reason)).toMatch(/BTF|cgroup2|CAP_/);

      for (const c of [cgA, cgB]) {
        expect(await cg.run(c, 'python3', [TRAFFIC, 'get', `http://${net.ipA}:8080/blob.bin`], net.b)).toBe(
          `${BLOB}\n`,
        );
      }
      agent.signal('SIGTERM');
      expect(await agent.exit()).toBe(0);
    } finally {
      agent.signal('SIGKILL');
      await api.close();
    }
    const records = readFileSync(out, 'utf8')
      .trim()
      .split('\n')
      .map(
        (l) => JSON.parse(l) as { dst_port: number; rx_bytes: number; attributes: Record<string, unknown> },
      );
    const byPod = new Map<string, { rx: number; uid: unknown }>();
    for (const r of records.filter((x) => x.dst_port === 8080)) {
      const name = String(r.attributes['src.k8s.pod.name']);
      const have = byPod.get(name) ?? { rx: 0, uid: r.attributes['src.k8s.pod.uid'] };
      have.rx += r.rx_bytes;
      byPod.set(name, have);
    }
    // Each pod's connection is its own, named by its cgroup, though both share the node's address.
    expect([...byPod.keys()].sort()).toEqual(['agent-a', 'agent-b']);
    expect(byPod.get('agent-a')?.uid).toBe(uidA);
    expect(byPod.get('agent-b')?.uid).toBe(uidB);
    for (const { rx } of byPod.values()) {
      expect(rx).toBeGreaterThan(BLOB);
      expect(rx).toBeLessThan(BLOB * 1.1);
    }
  });

  it('a named ebpf mode runs ebpf; after kill -9 of the agent no program stays attached', async () => {
    const watched = cg.child('killed');
    const health = await freePort();
    const file = writeConfig(
      'ebpf',
      `receivers:
  flows:
    mode: ebpf
    ebpf: { cgroup_path: ${watched} }
exporters: { debug: { interval: 1h } }
extensions: { health_check: { endpoint: 127.0.0.1:${health} } }
service:
  extensions: [health_check]
  pipelines:
    flows: { receivers: [flows], exporters: [debug] }
`,
    );
    const agent = new AgentProcess(['run', '--config', file]);
    try {
      await agent.waitForLog((l) => String(l.msg).startsWith('netmon is running'), 30_000);
      expect((await receiverStatus(health)).details).toMatchObject({
        mode: 'ebpf',
        reason: 'set in the config (mode: ebpf)',
      });
      const attached = await attachedPrograms(watched);
      expect(attached.map((p) => p.attach_type).sort()).toEqual([
        'cgroup_inet_egress',
        'cgroup_inet_ingress',
      ]);
      agent.signal('SIGKILL');
      await agent.exit();
    } finally {
      agent.signal('SIGKILL');
    }
    // The links die with the process's file descriptors: nothing was pinned, nothing stays.
    let left = await attachedPrograms(watched);
    for (const end = Date.now() + 5000; left.length > 0 && Date.now() < end; ) {
      await new Promise((r) => setTimeout(r, 50));
      left = await attachedPrograms(watched);
    }
    expect(left).toEqual([]);
  });
});
