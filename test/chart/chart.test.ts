// charts/netmon rendered as Helm renders it (the Go renderer: text/template, sprig, Helm's functions),
// for its defaults, each collection mode and zxporter-netmon's values, then checked as a cluster would
// take it: every object against the Kubernetes API schemas, the pod's privileges against
// files/privileges.yaml, its probes, mounts, Secret and RBAC, and the netmon configuration it runs against
// the agent's own validation (bin/netmon validate, with the environment the DaemonSet gives it).
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { AgentProcess, freePort, withTmpDir } from '../harness/agent.js';
import {
  CHART_DIR,
  deployFiles,
  RenderError,
  type Rendered,
  type RenderOptions,
  ROOT,
  renderChart,
} from '../harness/helm-render/render.mjs';
import { prometheusTool } from '../harness/prometheus-server.js';
import { kubernetesProblems } from './kubernetes.js';

const run = promisify(execFile);
const TESTDATA = path.join(import.meta.dirname, 'testdata');
const ZXPORTER_DEFAULTS = path.join(TESTDATA, 'zxporter-netmon-values.yaml');
const ZXPORTER_USER = path.join(TESTDATA, 'zxporter-user-values.yaml');
const NETMON_IMAGE = path.join(TESTDATA, 'netmon-image.yaml');

// biome-ignore lint/suspicious/noExplicitAny: rendered Kubernetes objects, read field by field.
type K8s = any;
type Mode = 'auto' | 'netfilter' | 'ebpf' | 'cilium';

// --- what the chart must do, stated independently of its templates ---

interface PrivilegeEntry {
  capabilities?: string[];
  hostNetwork?: boolean;
  mounts?: string[];
  init?: { mounts?: string[]; sysctls?: string[] };
  seccomp?: string;
}
const PRIVILEGES = parse(readFileSync(path.join(CHART_DIR, 'files/privileges.yaml'), 'utf8')) as Record<
  string,
  PrivilegeEntry
>;

/**
 * The mounts files/privileges.yaml names, as the chart defines them (host path, container path, env).
 * recursive: read-only below its submounts too where Kubernetes can (1.30+): a runtime binds a hostPath
 * recursively and readOnly covers only the top mount, so a hybrid node's /sys/fs/cgroup/<controller>
 * mounts would stay writable. Kubernetes allows it only on a read-only mount without propagation, so not
 * on bpffs (HostToContainer).
 */
const MOUNTS: Record<
  string,
  { host: string; container: string; readOnly: boolean; recursive: boolean; env?: [string, string] }
> = {
  conntrack_sysctl: {
    host: '/proc/sys/net/netfilter',
    container: '/host/proc/sys/net/netfilter',
    readOnly: false,
    recursive: false,
  },
  cgroup: {
    host: '/sys/fs/cgroup',
    container: '/host/sys/fs/cgroup',
    readOnly: true,
    recursive: true,
    env: ['NETMON_CGROUP_PATH', '/host/sys/fs/cgroup'],
  },
  bpffs: {
    host: '/sys/fs/bpf',
    container: '/sys/fs/bpf',
    readOnly: true,
    recursive: false,
    env: ['NETMON_CILIUM_MAPS_DIR', '/sys/fs/bpf/tc/globals'],
  },
};

/** Whether a Kubernetes version (v1.30.2, 1.29.0, v1.30.2-eks-1552ad0) is 1.<minor> or later. */
const kubeAtLeast = (version: string, minor: number): boolean => {
  const [major, min] = version
    .replace(/^v/, '')
    .split('.')
    .map((n) => Number.parseInt(n, 10));
  return major > 1 || (major === 1 && min >= minor);
};

/** auto may run any of the three modes, so it needs all they need; DNS tracing adds its own. */
function expectedPrivileges(mode: Mode, dns: boolean) {
  const entries: string[] = mode === 'auto' ? ['netfilter', 'ebpf', 'cilium'] : [mode];
  if (dns) entries.push('dns');
  const caps = new Set<string>();
  const mounts = new Set<string>();
  const initMounts = new Set<string>();
  const sysctls = new Set<string>();
  const seccomp = new Set<string>();
  let hostNetwork = false;
  for (const e of entries) {
    const p = PRIVILEGES[e];
    expect(p, `files/privileges.yaml has an entry for ${e}`).toBeDefined();
    for (const c of p.capabilities ?? []) caps.add(c);
    for (const m of p.mounts ?? []) mounts.add(m);
    for (const m of p.init?.mounts ?? []) initMounts.add(m);
    for (const s of p.init?.sysctls ?? []) sysctls.add(s);
    if (p.seccomp) seccomp.add(p.seccomp);
    hostNetwork ||= p.hostNetwork === true;
  }
  return {
    capabilities: [...caps].sort(),
    mounts: [...mounts].sort(),
    init: { mounts: [...initMounts].sort(), sysctls: [...sysctls] },
    hostNetwork,
    seccomp: seccomp.has('Unconfined') ? 'Unconfined' : ([...seccomp][0] ?? 'RuntimeDefault'),
  };
}

const leastPrivilege = (capabilities: string[], seccomp: string) => ({
  runAsUser: 0,
  runAsNonRoot: false,
  privileged: false,
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  capabilities: { drop: ['ALL'], ...(capabilities.length > 0 ? { add: capabilities } : {}) },
  seccompProfile: { type: seccomp },
});

/**
 * What k8s_metadata reads, from its source: the informers' list/watch paths. The ClusterRole must grant
 * exactly these, list and watch (informers list, then watch; nothing gets a single object).
 */
function watchedResources(): Map<string, string[]> {
  const source = readFileSync(path.join(ROOT, 'packages/extensions/src/k8s_metadata/extension.ts'), 'utf8');
  const byGroup = new Map<string, string[]>();
  for (const m of source.matchAll(/'\/(?:api\/v1|apis\/([a-z0-9.-]+)\/v[0-9a-z]+)\/([a-z]+)'/g)) {
    const group = m[1] ?? '';
    byGroup.set(group, [...(byGroup.get(group) ?? []), m[2]].sort());
  }
  return byGroup;
}

// --- rendering and looking things up ---

const rendered = new Map<string, Promise<Rendered>>();
function render(values: RenderOptions['values'] = [], options: Omit<RenderOptions, 'values'> = {}) {
  const key = JSON.stringify([values, options]);
  if (!rendered.has(key)) rendered.set(key, renderChart({ values, notes: true, ...options }));
  return rendered.get(key)!;
}

const find = (r: Rendered, kind: string, name?: string): K8s =>
  r.objects
    .map((o) => o.object)
    .find((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
const all = (r: Rendered, kind: string): K8s[] =>
  r.objects.map((o) => o.object).filter((o) => o.kind === kind);
const agent = (r: Rendered): K8s => find(r, 'DaemonSet').spec.template.spec.containers[0];
const envOf = (c: K8s): Map<string, K8s> => new Map((c.env ?? []).map((e: K8s) => [e.name, e]));

/** Every object is one the API server accepts. */
function expectValidObjects(r: Rendered): void {
  for (const { source, object } of r.objects) {
    expect(kubernetesProblems(object), `${source}: ${object.kind} ${object.metadata?.name}`).toEqual([]);
  }
}

function expectProbes(r: Rendered, port: number): void {
  const c = agent(r);
  const http = c.ports.find((p: K8s) => p.name === 'http');
  expect(http).toEqual({ name: 'http', containerPort: port, protocol: 'TCP' });
  expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'http' });
  expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http' });
  expect(c.startupProbe.httpGet).toEqual({ path: '/healthz', port: 'http' });
  // Long enough for the informers' first list (wait_for_sync 10 s) and every start (start_timeout 30 s).
  expect(c.startupProbe.periodSeconds * c.startupProbe.failureThreshold).toBeGreaterThanOrEqual(60);
  const ds = find(r, 'DaemonSet').spec.template.spec;
  // Above the agent's service::shutdown_timeout (10 s), so SIGTERM drains and saves state.
  expect(ds.terminationGracePeriodSeconds).toBeGreaterThan(10);
}

/**
 * Least privilege for the mode: exactly privileges.yaml's capabilities, host mounts and network, for the
 * agent; the init container (netfilter's sysctls) with no capability and only its own mounts.
 */
function expectPrivileges(r: Rendered, mode: Mode, dns: boolean, sysctlInit = true): void {
  const want = expectedPrivileges(mode, dns);
  const pod = find(r, 'DaemonSet').spec.template.spec;
  const c = agent(r);
  expect(c.securityContext).toEqual(leastPrivilege(want.capabilities, want.seccomp));
  expect(pod.hostNetwork).toBe(want.hostNetwork);
  expect(pod.dnsPolicy).toBe(want.hostNetwork ? 'ClusterFirstWithHostNet' : undefined);
  expect(pod.hostPID).toBeUndefined();

  const withInit = sysctlInit && want.init.sysctls.length > 0;
  const hostPaths = pod.volumes.filter((v: K8s) => v.hostPath).map((v: K8s) => v.hostPath.path);
  const mounted = new Set([...want.mounts, ...(withInit ? want.init.mounts : [])]);
  const state = (r.values.state as { hostPath: string }).hostPath;
  expect(hostPaths.sort()).toEqual(
    [...[...mounted].map((m) => MOUNTS[m].host), ...(state ? [state] : [])].sort(),
  );

  const mountIn = (container: K8s, host: string) => {
    const volume = pod.volumes.find((v: K8s) => v.hostPath?.path === host);
    return volume && container.volumeMounts.find((vm: K8s) => vm.name === volume.name);
  };
  const env = envOf(c);
  for (const [name, m] of Object.entries(MOUNTS)) {
    if (want.mounts.includes(name)) {
      expect(mountIn(c, m.host), `${name} mounted`).toEqual({
        name: expect.any(String),
        mountPath: m.container,
        readOnly: m.readOnly,
        ...(name === 'bpffs' ? { mountPropagation: 'HostToContainer' } : {}),
        ...(m.recursive && kubeAtLeast(r.kubeVersion, 30) ? { recursiveReadOnly: 'IfPossible' } : {}),
      });
      if (m.env) expect(env.get(m.env[0])).toEqual({ name: m.env[0], value: m.env[1] });
    } else {
      expect(mountIn(c, m.host), `${name} not mounted into the agent in ${mode}`).toBeUndefined();
      if (m.env) expect(env.has(m.env[0]), `${m.env[0]} without its mount`).toBe(false);
    }
  }
  // The agent writes only its state and /tmp.
  const writable = c.volumeMounts.filter((m: K8s) => !m.readOnly).map((m: K8s) => m.mountPath);
  expect(writable.sort()).toEqual(['/tmp', '/var/lib/netmon']);
  expect(env.get('NETMON_COLLECTION_MODE')).toEqual({ name: 'NETMON_COLLECTION_MODE', value: mode });

  if (!withInit) {
    expect(pod.initContainers).toBeUndefined();
    return;
  }
  expect(pod.initContainers).toHaveLength(1);
  const init = pod.initContainers[0];
  expect(init.image).toBe(c.image);
  expect(init.securityContext).toEqual(leastPrivilege([], want.seccomp));
  expect(init.command.slice(0, 2)).toEqual(['/bin/sh', '-c']);
  expect(init.command.slice(3)).toEqual(['conntrack-sysctls', ...want.init.sysctls]);
  expect(init.command[2]).toContain('dir=/host/proc/sys/net/netfilter');
  expect(init.volumeMounts).toEqual(
    want.init.mounts.map((m) => ({
      name: expect.any(String),
      mountPath: MOUNTS[m].container,
      readOnly: MOUNTS[m].readOnly,
    })),
  );
  for (const m of want.init.mounts) expect(mountIn(init, MOUNTS[m].host), m).toBeDefined();
}

/** The ClusterRole grants exactly what k8s_metadata lists and watches, to the agent's service account. */
function expectRbac(r: Rendered): void {
  const roles = all(r, 'ClusterRole');
  expect(roles).toHaveLength(1);
  const want = [...watchedResources()].map(([group, resources]) => ({
    apiGroups: [group],
    resources,
    verbs: ['list', 'watch'],
  }));
  expect(want.flatMap((w) => w.resources).length).toBeGreaterThanOrEqual(4);
  const rules = roles[0].rules.map((rule: K8s) => ({ ...rule, resources: [...rule.resources].sort() }));
  expect(rules.sort((a: K8s, b: K8s) => a.apiGroups[0].localeCompare(b.apiGroups[0]))).toEqual(
    want.sort((a, b) => a.apiGroups[0].localeCompare(b.apiGroups[0])),
  );
  const binding = find(r, 'ClusterRoleBinding');
  expect(binding.roleRef).toEqual({
    apiGroup: 'rbac.authorization.k8s.io',
    kind: 'ClusterRole',
    name: roles[0].metadata.name,
  });
  const sa = find(r, 'DaemonSet').spec.template.spec.serviceAccountName;
  expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: sa, namespace: 'netmon' }]);
  expect(find(r, 'ServiceAccount', sa), `ServiceAccount ${sa}`).toBeDefined();
}

/** The token reaches the pod only through a Secret; the manifests never carry it in clear. */
function expectTokenOnlyInSecret(r: Rendered, token: string | undefined): void {
  const env = envOf(agent(r));
  const entry = env.get('CLUSTER_TOKEN');
  expect(entry?.value, 'CLUSTER_TOKEN as a plain value').toBeUndefined();
  if (token === undefined) {
    expect(entry).toBeUndefined();
    expect(all(r, 'Secret')).toEqual([]);
    return;
  }
  expect(r.manifests.includes(token), 'the token in clear in the manifests').toBe(false);
  const ref = entry.valueFrom.secretKeyRef;
  const secret = find(r, 'Secret', ref.name);
  expect(secret, `Secret ${ref.name}`).toBeDefined();
  expect(Buffer.from(secret.data[ref.key], 'base64').toString()).toBe(token);
}

/**
 * The environment the pod's container gets, for bin/netmon validate: values as given, the downward API
 * as a node would fill it, Secret keys from the rendered Secret, the state directory a temporary one.
 */
function podEnv(r: Rendered, stateDir: string, podIp = '10.0.0.5'): Record<string, string> {
  const env: Record<string, string> = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/' };
  for (const e of agent(r).env) {
    if (e.value !== undefined) env[e.name] = e.value;
    else if (e.valueFrom?.fieldRef?.fieldPath === 'spec.nodeName') env[e.name] = 'node-1';
    else if (e.valueFrom?.fieldRef?.fieldPath === 'status.podIP') env[e.name] = podIp;
    else if (e.valueFrom?.secretKeyRef) {
      const s = find(r, 'Secret', e.valueFrom.secretKeyRef.name);
      env[e.name] = Buffer.from(s.data[e.valueFrom.secretKeyRef.key], 'base64').toString();
    } else throw new Error(`env ${e.name}: no test value for ${JSON.stringify(e.valueFrom)}`);
  }
  env.NETMON_STATE_DIR = stateDir;
  // A host mount shows the node's directory at the container's path: here, the directory itself.
  const pod = find(r, 'DaemonSet').spec.template.spec;
  for (const m of agent(r).volumeMounts) {
    const host = pod.volumes.find((v: K8s) => v.name === m.name)?.hostPath?.path;
    if (!host || m.mountPath === '/var/lib/netmon') continue;
    for (const [k, v] of Object.entries(env)) {
      if (v === m.mountPath || v.startsWith(`${m.mountPath}/`)) env[k] = host + v.slice(m.mountPath.length);
    }
  }
  return env;
}

/** The configuration files the DaemonSet's arguments name, from the ConfigMap it mounts at /etc/netmon. */
function configFiles(r: Rendered): Record<string, string> {
  const c = agent(r);
  const mount = c.volumeMounts.find((m: K8s) => m.mountPath === '/etc/netmon');
  const volume = find(r, 'DaemonSet').spec.template.spec.volumes.find((v: K8s) => v.name === mount.name);
  const cm = find(r, 'ConfigMap', volume.configMap.name);
  expect(cm, `ConfigMap ${volume.configMap.name}`).toBeDefined();
  const files: Record<string, string> = {};
  c.args.forEach((a: string, i: number) => {
    if (a !== '-c') return;
    const file = c.args[i + 1];
    expect(file.startsWith('/etc/netmon/')).toBe(true);
    const key = file.slice('/etc/netmon/'.length);
    expect(cm.data[key], `${key} in the ConfigMap`).toMatch(/\S/);
    files[key] = cm.data[key];
  });
  expect(Object.keys(files)[0]).toBe('netmon.yaml');
  return files;
}

/** The agent's own validation accepts the configuration the pod runs, with the pod's environment. */
async function expectAgentAccepts(r: Rendered, podIp?: string): Promise<Record<string, K8s>> {
  const dir = await mkdtemp(path.join(tmpdir(), 'netmon-chart-config-'));
  try {
    const files = configFiles(r);
    const args = ['validate'];
    for (const [name, text] of Object.entries(files)) {
      await writeFile(path.join(dir, name), text);
      args.push('-c', path.join(dir, name));
    }
    // The image's entrypoint, as the pod runs it (on this machine's hybrid cgroup layout, /sys/fs/cgroup
    // is a tmpfs with cgroup2 at unified/: the agent finds it there itself).
    expect(agent(r).command).toBeUndefined();
    const command = [path.join(ROOT, 'bin/netmon'), ...args];
    const { stdout } = await run(command[0], command.slice(1), { env: podEnv(r, dir, podIp) }).catch(
      (err: { stdout: string; stderr: string }) => {
        throw new Error(`netmon validate refused the chart's configuration:\n${err.stdout}${err.stderr}`);
      },
    );
    expect(stdout).toMatch(/^configuration is valid/);
    expect(agent(r).args.slice(-2)).toEqual(['--log-level', (r.values.config as K8s).logLevel]);
    return Object.fromEntries(Object.entries(files).map(([k, v]) => [k, parse(v)]));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

// --- the cases ---

const MODES: Mode[] = ['auto', 'netfilter', 'ebpf', 'cilium'];

describe('default values', () => {
  it('render valid Kubernetes objects: ServiceAccount, ConfigMaps, ClusterRole and binding, DaemonSet', async () => {
    const r = await render();
    expectValidObjects(r);
    expect(r.objects.map((o) => `${o.object.kind}/${o.object.metadata.name}`)).toEqual([
      'ServiceAccount/netmon',
      'ConfigMap/netmon-config',
      'ConfigMap/netmon-dashboard',
      'ClusterRole/netmon',
      'ClusterRoleBinding/netmon',
      'DaemonSet/netmon',
    ]);
  });

  it('run auto mode with DNS: the union of the three modes’ privileges and DNS tracing’s', async () => {
    const r = await render();
    expectPrivileges(r, 'auto', true);
    expectProbes(r, 8081);
  });

  it('grant exactly what k8s_metadata lists and watches', async () => {
    expectRbac(await render());
  });

  it('keep no token and read zxporter-netmon’s ConfigMap and Secret when they exist', async () => {
    const r = await render();
    expectTokenOnlyInSecret(r, undefined);
    expect(agent(r).envFrom).toEqual([
      { configMapRef: { name: 'devzero-zxporter-env-config', optional: true } },
      { secretRef: { name: 'devzero-zxporter-token', optional: true } },
    ]);
  });

  it('schedule everywhere, within the measured footprint', async () => {
    const r = await render();
    const pod = find(r, 'DaemonSet').spec.template.spec;
    expect(pod.tolerations).toEqual([{ operator: 'Exists' }]);
    expect(pod.nodeSelector).toEqual({ 'kubernetes.io/os': 'linux' });
    expect(pod.priorityClassName).toBeUndefined();
    expect(agent(r).resources).toEqual({
      requests: { cpu: '50m', memory: '128Mi' },
      limits: { memory: '160Mi' },
    });
    expect(find(r, 'DaemonSet').spec.updateStrategy).toEqual({
      type: 'RollingUpdate',
      rollingUpdate: { maxUnavailable: '10%' },
    });
    expect(agent(r).image).toBe('devzeroinc/netmon:0.1.0');
  });

  it('keep state on the node and write nowhere else', async () => {
    const r = await render();
    const pod = find(r, 'DaemonSet').spec.template.spec;
    const c = agent(r);
    const byName = new Map(pod.volumes.map((v: K8s) => [v.name, v]));
    const state = c.volumeMounts.find((m: K8s) => m.mountPath === '/var/lib/netmon');
    expect(byName.get(state.name)).toEqual({
      name: state.name,
      hostPath: { path: '/var/lib/netmon', type: 'DirectoryOrCreate' },
    });
    expect(envOf(c).get('NETMON_STATE_DIR')).toEqual({ name: 'NETMON_STATE_DIR', value: '/var/lib/netmon' });
    const tmp = c.volumeMounts.find((m: K8s) => m.mountPath === '/tmp');
    expect(byName.get(tmp.name)).toMatchObject({ emptyDir: {} });
  });

  it('write a configuration the agent accepts: Prometheus and DevZero, flows and DNS', async () => {
    const r = await render();
    const { 'netmon.yaml': config } = await expectAgentAccepts(r);
    expect(config.receivers.flows.mode).toBe('${env:NETMON_COLLECTION_MODE:-auto}');
    expect(config.exporters.prometheus.endpoint).toBe('${env:POD_IP}:9464');
    expect(config.extensions.health_check.endpoint).toBe('${env:POD_IP}:8081');
    expect(config.exporters.devzero).toMatchObject({
      endpoint: '${env:DAKR_URL:-}',
      token: '${env:CLUSTER_TOKEN:-}',
      flush_interval: '${env:FLUSH_INTERVAL:-60s}',
      sending_queue: { directory: '${env:NETMON_STATE_DIR:-/var/lib/netmon}' },
    });
    expect(config.service.pipelines).toEqual({
      flows: {
        receivers: ['flows'],
        processors: ['delta', 'k8s_attributes', 'classify', 'cost'],
        exporters: ['prometheus', 'devzero'],
      },
      dns: { receivers: ['dns'], exporters: ['prometheus', 'devzero'] },
    });
    // An IPv6 pod's address comes bare from the downward API: `${env:POD_IP}:9464` must still parse.
    await expectAgentAccepts(r, 'fd00::5');
    expect(agent(r).ports.map((p: K8s) => [p.name, p.containerPort])).toEqual([
      ['http', 8081],
      ['metrics', 9464],
    ]);
  });

  it('tell the user how to see the first numbers', async () => {
    const { notes } = await render();
    expect(notes).toContain('kubectl -n netmon rollout status daemonset/netmon');
    expect(notes).toContain("| grep -E '^netmon_flow_(bytes|cost_usd)_total'");
    expect(notes).toContain('sum by (traffic_class) (rate(netmon_flow_bytes_total[5m]))');
    expect(notes).toContain('DevZero: sends only with both DAKR_URL and CLUSTER_TOKEN');
    expect(notes).not.toContain('securityContext is set');
  });

  it.each([
    ['the defaults', [], 'netmon', 'netmon'],
    [
      'other ports, release and namespace',
      [{ config: { containerPort: 18081 }, prometheus: { port: 19464 } }],
      'flows',
      'obs',
    ],
  ] as const)(
    'NOTES reach one agent through the API server’s proxy, on the ports and paths its configuration serves: %s',
    async (_, values, name, namespace) => {
      const r = await render([...values], { name, namespace });
      // Where the agent listens: the pod's address (not localhost, so no port-forward), at these ports.
      const config = parse(configFiles(r)['netmon.yaml']);
      const port = (endpoint: string) => {
        expect(endpoint).toMatch(/^\$\{env:POD_IP\}:\d+$/);
        return Number(endpoint.split(':').at(-1));
      };
      const health = port(config.extensions.health_check.endpoint);
      const metrics = port(config.exporters.prometheus.endpoint);
      const notes = r.notes!;
      // The commands (indented five spaces): none through a port-forward to the pod's localhost.
      const commands = notes.split('\n').filter((l) => /^ {5}\S/.test(l) && !l.trim().startsWith('#'));
      expect(commands.filter((l) => l.includes('kubectl get --raw'))).toHaveLength(3);
      expect(commands.filter((l) => /port-forward|localhost|127\.0\.0\.1|curl/.test(l))).toEqual([]);

      // The pod, by the DaemonSet's own selector.
      const selector = Object.entries(find(r, 'DaemonSet').spec.selector.matchLabels)
        .map(([k, v]) => `${k}=${v}`)
        .join(',');
      expect(notes).toContain(
        `POD=$(kubectl -n ${namespace} get pods -l ${selector} -o jsonpath='{.items[0].metadata.name}')`,
      );
      // Each request: /api/v1/namespaces/<ns>/pods/<pod>:<port>/proxy/<path>.
      const requests = [...notes.matchAll(/kubectl get --raw "([^"]+)"/g)].map((m) => m[1]);
      const proxied = requests.map((p) => {
        const m = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/\$\{POD\}:(\d+)\/proxy(\/\S*)$/.exec(p);
        expect(m, p).not.toBeNull();
        expect(m![1]).toBe(namespace);
        return `${m![2]}${m![3]}`;
      });
      // /status on the health port; Prometheus' /metrics; DevZero's JSON /metrics on the health port.
      expect(proxied).toEqual([`${health}/status`, `${metrics}/metrics`, `${health}/metrics`]);
      expect(config.exporters.devzero).toBeDefined();
    },
  );
});

describe.each(MODES)('collectorMode %s', (mode) => {
  it.each([true, false])(
    'dns.enabled %s: the mode’s privileges, and a configuration the agent accepts',
    async (dns) => {
      const r = await render([{ config: { collectorMode: mode }, dns: { enabled: dns } }]);
      expectValidObjects(r);
      expectPrivileges(r, mode, dns);
      expectProbes(r, 8081);
      const { 'netmon.yaml': config } = await expectAgentAccepts(r);
      expect(Object.keys(config.receivers)).toEqual(dns ? ['flows', 'dns'] : ['flows']);
      expect(Object.keys(config.service.pipelines)).toEqual(dns ? ['flows', 'dns'] : ['flows']);
      expect(config.service.extensions).toEqual(
        dns ? ['health_check', 'k8s_metadata', 'dns_cache'] : ['health_check', 'k8s_metadata'],
      );
    },
  );
});

describe('read-only host mounts', () => {
  it.each([
    ['v1.25.0', false],
    ['v1.29.9', false],
    ['v1.30.0', true],
    // Managed clusters' versions carry a pre-release part, which a plain ">=1.30.0" constraint refuses.
    ['v1.30.2-eks-1552ad0', true],
    ['v1.31.1-gke.1146000', true],
    ['v1.33.1', true],
  ])(
    'Kubernetes %s: recursiveReadOnly IfPossible on the cgroup mount: %s',
    async (kubeVersion, recursive) => {
      const r = await render([], { kubeVersion });
      expect(r.kubeVersion).toBe(kubeVersion);
      expectValidObjects(r);
      expectPrivileges(r, 'auto', true);
      const pod = find(r, 'DaemonSet').spec.template.spec;
      const byPath = new Map<string, K8s>(agent(r).volumeMounts.map((m: K8s) => [m.mountPath, m]));
      expect(byPath.get('/host/sys/fs/cgroup').recursiveReadOnly).toBe(recursive ? 'IfPossible' : undefined);
      // Kubernetes refuses it with mount propagation, and it means nothing on a writable mount.
      const withIt = [...pod.containers, ...(pod.initContainers ?? [])]
        .flatMap((c: K8s) => c.volumeMounts)
        .filter((m: K8s) => m.recursiveReadOnly !== undefined);
      for (const m of withIt) {
        expect(m.readOnly, m.mountPath).toBe(true);
        expect(m.mountPropagation ?? 'None', m.mountPath).toBe('None');
      }
      expect(withIt.map((m: K8s) => m.mountPath)).toEqual(recursive ? ['/host/sys/fs/cgroup'] : []);
    },
  );

  it('deploy/ is rendered for the oldest Kubernetes the chart supports, so it applies on every one', async () => {
    const { oldestKubeVersion } = await import('../harness/helm-render/render.mjs');
    const oldest = await oldestKubeVersion();
    const chart = parse(readFileSync(path.join(CHART_DIR, 'Chart.yaml'), 'utf8'));
    expect(chart.kubeVersion).toBe(`>=${oldest.slice(1)}-0`);
    expect(await readFile(path.join(ROOT, 'deploy/netmon.yaml'), 'utf8')).not.toContain('recursiveReadOnly');
  });
});

describe('exporters', () => {
  it('devzero.enabled false: Prometheus only, no DevZero environment', async () => {
    const r = await render([{ devzero: { enabled: false }, config: { clusterToken: 'unused-token' } }]);
    expectValidObjects(r);
    const { 'netmon.yaml': config } = await expectAgentAccepts(r);
    expect(Object.keys(config.exporters)).toEqual(['prometheus']);
    expect(config.service.pipelines.flows.exporters).toEqual(['prometheus']);
    const env = envOf(agent(r));
    for (const name of ['DAKR_URL', 'CLUSTER_TOKEN', 'FLUSH_INTERVAL'])
      expect(env.has(name), name).toBe(false);
    expect(agent(r).envFrom).toBeUndefined();
    expect(all(r, 'Secret')).toEqual([]);
  });

  it('devzero.enabled false: the pipeline of configs/kubernetes.yaml, key for key (two copies kept in step)', async () => {
    const r = await render([{ devzero: { enabled: false } }]);
    const chart = parse(configFiles(r)['netmon.yaml']);
    const shipped = parse(await readFile(path.join(ROOT, 'configs/kubernetes.yaml'), 'utf8'));
    expect(chart).toEqual(shipped);
  });

  it('prometheus.enabled false: DevZero only, no metrics port', async () => {
    const r = await render([{ prometheus: { enabled: false } }]);
    expectValidObjects(r);
    const { 'netmon.yaml': config } = await expectAgentAccepts(r);
    expect(Object.keys(config.exporters)).toEqual(['devzero']);
    expect(config.service.pipelines.dns.exporters).toEqual(['devzero']);
    expect(agent(r).ports.map((p: K8s) => p.name)).toEqual(['http']);
    expect(r.notes).not.toContain('9464');
  });

  it('both off: the render fails and says why', async () => {
    await expect(render([{ prometheus: { enabled: false }, devzero: { enabled: false } }])).rejects.toThrow(
      /execution error at \(netmon\/templates\/[a-z_]+\.(tpl|yaml):\d+:\d+\): prometheus\.enabled and devzero\.enabled are both false/,
    );
  });

  it('serviceMonitor and podMonitor: valid monitoring.coreos.com/v1 objects on the metrics port', async () => {
    const r = await render([
      {
        serviceMonitor: { enabled: true, interval: '30s', labels: { release: 'kps' } },
        podMonitor: { enabled: true, scrapeTimeout: '10s' },
      },
    ]);
    expectValidObjects(r);
    const svc = find(r, 'Service');
    expect(svc.spec.clusterIP).toBe('None');
    expect(svc.spec.selector).toEqual(find(r, 'DaemonSet').spec.selector.matchLabels);
    expect(svc.spec.ports).toContainEqual({
      name: 'metrics',
      port: 9464,
      targetPort: 'metrics',
      protocol: 'TCP',
    });
    const sm = find(r, 'ServiceMonitor');
    expect(sm.metadata.labels.release).toBe('kps');
    expect(sm.spec.selector.matchLabels).toEqual(find(r, 'DaemonSet').spec.selector.matchLabels);
    expect(sm.spec.endpoints[0]).toMatchObject({ port: 'metrics', path: '/metrics', interval: '30s' });
    const pm = find(r, 'PodMonitor');
    expect(pm.spec.podMetricsEndpoints[0]).toMatchObject({
      port: 'metrics',
      path: '/metrics',
      scrapeTimeout: '10s',
    });
    expect(pm.spec.selector.matchLabels).toEqual(find(r, 'DaemonSet').spec.selector.matchLabels);
    expect(r.notes).toContain('ServiceMonitor netmon/netmon');
    // The operator's target labels namespace and pod (the agent's own pod) would otherwise push the
    // labels of pod_cross_zone_network_traffic_bytes_total{namespace,pod} aside to exported_*.
    expect(sm.spec.endpoints[0].honorLabels).toBe(true);
    expect(pm.spec.podMetricsEndpoints[0].honorLabels).toBe(true);
  });

  it('a misspelt ServiceMonitor field is caught by the hand-written CRD check', () => {
    const sm = {
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'ServiceMonitor',
      metadata: { name: 'x', namespace: 'y' },
      spec: { selector: { matchLabels: { a: 'b' } }, endpoints: [{ port: 'metrics', intervall: '30s' }] },
    };
    expect(kubernetesProblems(sm)).toEqual(['/spec/endpoints/0 must NOT have additional properties']);
  });
});

describe('pipeline', () => {
  const own = {
    receivers: { flows: { mode: '${env:NETMON_COLLECTION_MODE:-auto}' } },
    processors: { delta: { state_file: '${env:NETMON_STATE_DIR}/delta.state' } },
    exporters: { prometheus: { endpoint: '${env:POD_IP}:9464', granularity: 'namespace' } },
    extensions: { health_check: { endpoint: '${env:POD_IP}:8081' } },
    service: {
      extensions: ['health_check'],
      pipelines: { flows: { receivers: ['flows'], processors: ['delta'], exporters: ['prometheus'] } },
    },
  };

  it('replaces the chart’s configuration entirely', async () => {
    const r = await render([{ pipeline: own }]);
    expectValidObjects(r);
    const { 'netmon.yaml': config } = await expectAgentAccepts(r);
    expect(config).toEqual(own);
    expect(r.notes).toContain('your own pipeline');
  });

  it('pipelineOverrides is merged over it by the agent, from a second file', async () => {
    const r = await render([{ pipelineOverrides: { extensions: { k8s_metadata: { scope: 'node' } } } }]);
    expectValidObjects(r);
    const files = await expectAgentAccepts(r);
    expect(Object.keys(files)).toEqual(['netmon.yaml', 'overrides.yaml']);
    expect(files['overrides.yaml']).toEqual({ extensions: { k8s_metadata: { scope: 'node' } } });
    expect(agent(r).args).toEqual([
      'run',
      '-c',
      '/etc/netmon/netmon.yaml',
      '-c',
      '/etc/netmon/overrides.yaml',
      '--log-level',
      'info',
    ]);
  });

  it('a changed configuration changes the pods’ checksum, so they restart with it', async () => {
    const a = (await render()).objects.find((o) => o.object.kind === 'DaemonSet')!.object;
    const b = (await render([{ prometheus: { granularity: 'pod' } }])).objects.find(
      (o) => o.object.kind === 'DaemonSet',
    )!.object;
    const sum = (ds: K8s) => ds.spec.template.metadata.annotations['checksum/config'];
    expect(sum(a)).toMatch(/^[0-9a-f]{64}$/);
    expect(sum(b)).not.toBe(sum(a));
  });
});

describe('the token Secret', () => {
  it('a changed config.clusterToken changes the pods’ checksum, so they restart with it; none without the chart’s Secret', async () => {
    const annotations = async (values: Record<string, unknown>) =>
      find(await render([values]), 'DaemonSet').spec.template.metadata.annotations;
    const a = await annotations({ config: { clusterToken: 'token-a' } });
    const b = await annotations({ config: { clusterToken: 'token-b' } });
    expect(a['checksum/secret']).toMatch(/^[0-9a-f]{64}$/);
    expect(b['checksum/secret']).toMatch(/^[0-9a-f]{64}$/);
    expect(b['checksum/secret']).not.toBe(a['checksum/secret']);
    // The configuration does not hold the token: only the Secret's checksum tells them apart.
    expect(b['checksum/config']).toBe(a['checksum/config']);
    expect(Object.values(a).join(' ')).not.toContain('token-a');
    // No Secret of the chart's (no token, or DevZero off): nothing to follow.
    expect(await annotations({})).not.toHaveProperty('checksum/secret');
    expect(
      await annotations({ devzero: { enabled: false }, config: { clusterToken: 'token-a' } }),
    ).not.toHaveProperty('checksum/secret');
  });
});

describe('zxporter-netmon values', () => {
  it('its whole default values.yaml names its own image: the render refuses it and says what to change', async () => {
    await expect(render([ZXPORTER_DEFAULTS])).rejects.toThrow(
      /image\.repository is devzeroinc\/zxporter-netmon, zxporter-netmon's image: .*Set image\.repository and image\.tag to the netmon image you built and pushed to your registry \(make image\)/,
    );
  });

  it('its whole default values.yaml with netmon’s image: privileged as it asks, its keys honoured', async () => {
    const r = await render([ZXPORTER_DEFAULTS, NETMON_IMAGE]);
    expectValidObjects(r);
    expectProbes(r, 8081);
    expectRbac(r);
    expectTokenOnlyInSecret(r, undefined);
    const pod = find(r, 'DaemonSet').spec.template.spec;
    const c = agent(r);
    // Its securityContext replaces the computed one, as given.
    expect(c.securityContext).toEqual({
      privileged: true,
      appArmorProfile: { type: 'Unconfined' },
      capabilities: { add: ['NET_ADMIN', 'SYS_RESOURCE'] },
    });
    expect(pod.hostNetwork).toBe(true);
    expect(pod.dnsPolicy).toBe('ClusterFirstWithHostNet');
    expect(pod.serviceAccountName).toBe('zxporter-netmon');
    expect(pod.tolerations).toEqual([{ operator: 'Exists', effect: 'NoSchedule' }]);
    expect(c.resources).toEqual({
      requests: { cpu: '50m', memory: '64Mi' },
      limits: { cpu: '100m', memory: '128Mi' },
    });
    expect(c.image).toBe('devzeroinc/netmon:0.1.0');
    // Its AppArmor annotation names its container; the API refuses one for a container the pod lacks.
    expect(find(r, 'DaemonSet').spec.template.metadata.annotations).toMatchObject({
      'container.apparmor.security.beta.kubernetes.io/netmon': 'unconfined',
    });
    expect(
      Object.keys(find(r, 'DaemonSet').spec.template.metadata.annotations).filter((k) =>
        k.includes('zxporter'),
      ),
    ).toEqual([]);
    const env = envOf(c);
    expect(env.get('NETMON_COLLECTION_MODE')).toEqual({ name: 'NETMON_COLLECTION_MODE', value: 'netfilter' });
    expect(env.get('FLUSH_INTERVAL')).toEqual({ name: 'FLUSH_INTERVAL', value: '60s' });
    expect(env.has('DAKR_URL')).toBe(false);
    expect(c.envFrom).toEqual([
      { configMapRef: { name: 'devzero-zxporter-env-config', optional: true } },
      { secretRef: { name: 'devzero-zxporter-token', optional: true } },
    ]);
    // The mode's mounts and init container still follow privileges.yaml.
    const want = expectedPrivileges('netfilter', true);
    const hostPaths = pod.volumes.filter((v: K8s) => v.hostPath).map((v: K8s) => v.hostPath.path);
    expect(hostPaths.sort()).toEqual(
      [...new Set([...want.mounts, ...want.init.mounts])]
        .map((m) => MOUNTS[m].host)
        .concat('/var/lib/netmon')
        .sort(),
    );
    expect(pod.initContainers?.[0]?.securityContext ?? null).toEqual(
      want.init.sysctls.length > 0 ? leastPrivilege([], want.seccomp) : null,
    );
    await expectAgentAccepts(r);
    expect(r.notes).toContain('securityContext is set in your values');
  });

  it('its AppArmor annotation names this chart’s container; others’ AppArmor annotations stay as given', async () => {
    const apparmor = 'container.apparmor.security.beta.kubernetes.io';
    const annotations = async (podAnnotations: Record<string, string>) =>
      find(await render([{ config: { collectorMode: 'netfilter' }, podAnnotations }]), 'DaemonSet').spec
        .template.metadata.annotations;
    // The init container's own annotation is not zxporter-netmon's: renaming it too would give the
    // pod two /netmon keys.
    const both = await annotations({
      [`${apparmor}/zxporter-netmon`]: 'unconfined',
      [`${apparmor}/conntrack-sysctls`]: 'runtime/default',
    });
    expect(Object.fromEntries(Object.entries(both).filter(([k]) => k.startsWith(apparmor)))).toEqual({
      [`${apparmor}/netmon`]: 'unconfined',
      [`${apparmor}/conntrack-sysctls`]: 'runtime/default',
    });
    // One for netmon given as well: that one is meant, zxporter-netmon's (no such container) is left out.
    const own = await annotations({
      [`${apparmor}/zxporter-netmon`]: 'unconfined',
      [`${apparmor}/netmon`]: 'runtime/default',
    });
    expect(Object.fromEntries(Object.entries(own).filter(([k]) => k.startsWith(apparmor)))).toEqual({
      [`${apparmor}/netmon`]: 'runtime/default',
    });
  });

  it('a typical user’s values (dakrUrl, clusterToken, cilium): token in a Secret, cilium’s privileges', async () => {
    const r = await render([ZXPORTER_USER]);
    expectValidObjects(r);
    expectPrivileges(r, 'cilium', true);
    expectProbes(r, 8081);
    expectRbac(r);
    expectTokenOnlyInSecret(r, 'dzt-0123456789abcdef-test-token');
    const env = envOf(agent(r));
    expect(env.get('DAKR_URL')).toEqual({ name: 'DAKR_URL', value: 'https://dakr.devzero.io' });
    const { 'netmon.yaml': config } = await expectAgentAccepts(r);
    expect(config.service.pipelines.flows.exporters).toContain('devzero');
    expect(r.notes).toContain('DevZero: sending to https://dakr.devzero.io every 60s.');
    expect(r.notes).not.toContain('dzt-0123456789abcdef-test-token');
  });
});

describe('the agent’s command', () => {
  it.each(['auto', 'netfilter', 'ebpf', 'cilium'])(
    '%s: the image’s entrypoint with the chart’s config, no shell in between',
    async (collectorMode) => {
      const r = await render([{ config: { collectorMode } }]);
      expect(agent(r).command).toBeUndefined();
      expect(agent(r).args).toEqual(['run', '-c', '/etc/netmon/netmon.yaml', '--log-level', 'info']);
    },
  );
});

describe('other values', () => {
  it('conntrackSysctls.enabled false: no init container and no writable host sysctl', async () => {
    const r = await render([
      { config: { collectorMode: 'netfilter' }, conntrackSysctls: { enabled: false } },
    ]);
    expectValidObjects(r);
    expectPrivileges(r, 'netfilter', true, false);
    expect(r.manifests).not.toContain('/proc/sys/net/netfilter');
  });

  it('seccompProfile Unconfined: for runtimes whose default profile refuses bpf() to CAP_BPF', async () => {
    const r = await render([{ seccompProfile: 'Unconfined' }]);
    expectValidObjects(r);
    const pod = find(r, 'DaemonSet').spec.template.spec;
    const want = expectedPrivileges('auto', true);
    expect(agent(r).securityContext).toEqual(leastPrivilege(want.capabilities, 'Unconfined'));
    for (const init of pod.initContainers ?? [])
      expect(init.securityContext.seccompProfile.type).toBe('Unconfined');
  });

  it('state.hostPath "" keeps the state in an emptyDir', async () => {
    const r = await render([{ state: { hostPath: '' } }]);
    expectValidObjects(r);
    const pod = find(r, 'DaemonSet').spec.template.spec;
    expect(pod.volumes.find((v: K8s) => v.name === 'state')).toEqual({ name: 'state', emptyDir: {} });
    expectPrivileges(r, 'auto', true);
  });

  it('names, namespace, pod labels and annotations, priority class, extra env, a service account of one’s own', async () => {
    const r = await render(
      [
        {
          fullnameOverride: 'flows',
          namespaceOverride: 'observability',
          podLabels: { team: 'platform' },
          podAnnotations: { 'example.com/owner': 'platform' },
          priorityClassName: 'system-node-critical',
          extraEnv: [{ name: 'NETMON_NODE_FLAGS', value: '' }],
          serviceAccount: { create: false, name: 'existing' },
          rbac: { create: false },
          dashboard: { enabled: false },
          hostNetwork: false,
        },
      ],
      { name: 'r1', namespace: 'default' },
    );
    expectValidObjects(r);
    const ds = find(r, 'DaemonSet');
    expect(ds.metadata).toMatchObject({ name: 'flows', namespace: 'observability' });
    expect(r.objects.every((o) => o.object.metadata.namespace === 'observability')).toBe(true);
    expect(ds.spec.template.metadata.labels.team).toBe('platform');
    expect(ds.spec.template.metadata.annotations['example.com/owner']).toBe('platform');
    expect(ds.spec.template.spec.priorityClassName).toBe('system-node-critical');
    expect(ds.spec.template.spec.serviceAccountName).toBe('existing');
    expect(ds.spec.template.spec.hostNetwork).toBe(false);
    expect(ds.spec.template.spec.dnsPolicy).toBeUndefined();
    expect(envOf(agent(r)).get('NETMON_NODE_FLAGS')).toEqual({ name: 'NETMON_NODE_FLAGS', value: '' });
    expect(r.objects.map((o) => o.object.kind)).toEqual(['ConfigMap', 'DaemonSet']);
  });
});

describe('service account and RBAC', () => {
  it('serviceAccount.create false with rbac.create and no name: refused, not bound to the namespace’s default account', async () => {
    await expect(render([{ serviceAccount: { create: false }, rbac: { create: true } }])).rejects.toThrow(
      /execution error at \(netmon\/templates\/[a-z_]+\.(tpl|yaml):\d+:\d+\): serviceAccount\.create is false and serviceAccount\.name is empty: .*default.*Set serviceAccount\.name .* or serviceAccount\.create: true/,
    );
  });

  it('serviceAccount.create false with a name: the binding names that account', async () => {
    const r = await render([{ serviceAccount: { create: false, name: 'existing' } }]);
    expectValidObjects(r);
    expect(all(r, 'ServiceAccount')).toEqual([]);
    expect(find(r, 'ClusterRoleBinding').subjects).toEqual([
      { kind: 'ServiceAccount', name: 'existing', namespace: 'netmon' },
    ]);
    expect(find(r, 'DaemonSet').spec.template.spec.serviceAccountName).toBe('existing');
  });
});

describe('values.schema.json', () => {
  it('refuses a collection mode the agent does not know, naming the allowed ones', async () => {
    await expect(render([{ config: { collectorMode: 'iptables' } }])).rejects.toThrow(
      'config.collectorMode: must be equal to one of the allowed values ("auto", "netfilter", "ebpf", "cilium")',
    );
  });

  it('refuses unknown keys (a misspelt key would be ignored), at the top and in the chart’s own sections', async () => {
    await expect(render([{ tolerration: [] }])).rejects.toThrow(
      '(root): must NOT have additional properties: tolerration',
    );
    await expect(render([{ config: { colectorMode: 'ebpf' } }])).rejects.toThrow(
      'config: must NOT have additional properties: colectorMode',
    );
  });

  it('accepts Helm’s global values, which a parent chart passes down', async () => {
    const r = await render([{ global: { imageRegistry: 'example.com' } }]);
    expect(find(r, 'DaemonSet')).toBeDefined();
  });

  it('refuses bad types and formats', async () => {
    await expect(render([{ config: { containerPort: '8081' } }])).rejects.toThrow(
      'config.containerPort: must be integer',
    );
    await expect(render([{ config: { exportInterval: '60' } }])).rejects.toThrow(
      'config.exportInterval: must match pattern',
    );
    await expect(render([{ config: { logLevel: 'verbose' } }])).rejects.toThrow(
      'config.logLevel: must be equal to one of',
    );
  });

  it('config.readInterval: a duration or empty, nothing around it', async () => {
    for (const readInterval of ['every 5s', '5s please', '5s 10s', 'x']) {
      await expect(render([{ config: { readInterval } }]), readInterval).rejects.toThrow(
        'config.readInterval: must match pattern',
      );
    }
    for (const readInterval of ['', '5s', '1m30s', '2.5s', '500ms']) {
      expect((await render([{ config: { readInterval } }])).values.config, readInterval).toMatchObject({
        readInterval,
      });
    }
  });

  it('anchors every pattern: each alternative starts with ^ and ends with $', async () => {
    const schema = JSON.parse(await readFile(path.join(CHART_DIR, 'values.schema.json'), 'utf8'));
    const patterns: Array<[string, string]> = [];
    const walk = (node: K8s, where: string) => {
      if (node === null || typeof node !== 'object') return;
      if (typeof node.pattern === 'string') patterns.push([where, node.pattern]);
      for (const [k, v] of Object.entries(node)) walk(v, `${where}/${k}`);
    };
    walk(schema, '');
    expect(patterns.length).toBeGreaterThanOrEqual(6);
    // The top-level alternatives (| outside any group or class); a pattern is matched anywhere in the
    // string unless each of them is anchored at both ends.
    const alternatives = (p: string): string[] => {
      const out: string[] = [];
      let depth = 0;
      let inClass = false;
      let start = 0;
      for (let i = 0; i < p.length; i++) {
        const ch = p[i];
        if (ch === '\\') i++;
        else if (inClass) inClass = ch !== ']';
        else if (ch === '[') inClass = true;
        else if (ch === '(') depth++;
        else if (ch === ')') depth--;
        else if (ch === '|' && depth === 0) {
          out.push(p.slice(start, i));
          start = i + 1;
        }
      }
      out.push(p.slice(start));
      return out;
    };
    const unanchored = patterns.filter(([, p]) =>
      alternatives(p).some((a) => !a.startsWith('^') || !a.endsWith('$') || a.endsWith('\\$')),
    );
    expect(unanchored).toEqual([]);
  });

  it('describes every key values.yaml has, and values.yaml comments every key', async () => {
    const schema = JSON.parse(await readFile(path.join(CHART_DIR, 'values.schema.json'), 'utf8'));
    const text = await readFile(path.join(CHART_DIR, 'values.yaml'), 'utf8');
    const values = parse(text);
    const missing: string[] = [];
    const walk = (v: K8s, s: K8s, where: string) => {
      if (v === null || typeof v !== 'object' || Array.isArray(v) || !s?.properties) return;
      for (const key of Object.keys(v)) {
        const sub = s.properties[key];
        if (!sub?.description) missing.push(`${where}${key}`);
        else walk(v[key], sub, `${where}${key}.`);
      }
    };
    walk(values, schema, '');
    expect(missing).toEqual([]);
    // Each top-level key is preceded by a comment, or is a section whose keys are.
    const lines = text.split('\n');
    const uncommented = lines
      .map((line, i) => ({ line, prev: lines[i - 1] ?? '' }))
      .filter(({ line }) => /^[a-zA-Z]+:/.test(line))
      .filter(({ line, prev }) => !prev.startsWith('#') && !/:\s*$/.test(line))
      .map(({ line }) => line);
    expect(uncommented).toEqual([]);
  });
});

describe('render failures', () => {
  it('name the template and line: a mode the schema would refuse, rendered without the schema', async () => {
    const { rendererBinary } = await import('../harness/helm-render/render.mjs');
    const dir = await mkdtemp(path.join(tmpdir(), 'netmon-chart-'));
    try {
      await writeFile(path.join(dir, 'v.yaml'), 'config: {collectorMode: iptables}\n');
      const err = await run(await rendererBinary(), ['-f', path.join(dir, 'v.yaml'), CHART_DIR]).then(
        () => undefined,
        (e: { stderr: string; code: number }) => e,
      );
      expect(err?.code).toBe(1);
      expect(err?.stderr).toMatch(
        /^Error: execution error at \(netmon\/templates\/_helpers\.tpl:\d+:\d+\): config\.collectorMode is "iptables": expected auto, netfilter, ebpf or cilium\n$/,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('RenderError carries the renderer’s message', async () => {
    const err = await render([{ prometheus: { enabled: false }, devzero: { enabled: false } }]).catch(
      (e) => e,
    );
    expect(err).toBeInstanceOf(RenderError);
  });
});

describe('deploy/', () => {
  it('is what the chart renders with its defaults (node test/chart/render-deploy.mjs rewrites it)', async () => {
    for (const [file, content] of Object.entries(await deployFiles())) {
      const current = await readFile(path.join(ROOT, file), 'utf8').catch(() => '');
      expect(current === content, `${file} is stale: run node test/chart/render-deploy.mjs`).toBe(true);
    }
  });

  it('its README swaps in your image for the very image name netmon.yaml has', async () => {
    const text = await readFile(path.join(ROOT, 'deploy/netmon.yaml'), 'utf8');
    const readme = await readFile(path.join(ROOT, 'deploy/README.md'), 'utf8');
    const images = new Set([...text.matchAll(/^\s+image: "([^"]+)"$/gm)].map((m) => m[1]));
    expect([...images]).toEqual([agent(await render()).image]);
    const sed = /sed 's#([^#]+)#([^#]+)#' deploy\/netmon\.yaml \| kubectl apply -f -/.exec(readme);
    expect(sed?.[1]).toBe([...images][0]);
  });

  it('holds valid objects, the Namespace first, labelled for the privileged Pod Security level', async () => {
    const text = await readFile(path.join(ROOT, 'deploy/netmon.yaml'), 'utf8');
    const { parseAllDocuments } = await import('yaml');
    const objects = parseAllDocuments(text)
      .map((d) => d.toJS())
      .filter(Boolean);
    expect(objects[0]).toEqual({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: 'netmon', labels: { 'pod-security.kubernetes.io/enforce': 'privileged' } },
    });
    for (const o of objects) expect(kubernetesProblems(o), `${o.kind} ${o.metadata.name}`).toEqual([]);
    // kubectl apply keeps each object whole in its last-applied-configuration annotation, and the API
    // refuses annotations above 256 KiB: the dashboard ConfigMap is the one that could outgrow it.
    for (const o of objects) {
      expect(JSON.stringify(o).length, `${o.kind} ${o.metadata.name}`).toBeLessThan(256 * 1024 - 4096);
    }
    expect(
      objects
        .filter((o) => o.kind !== 'Namespace' && !o.kind.startsWith('Cluster'))
        .every((o) => o.metadata.namespace === 'netmon'),
    ).toBe(true);
    const dashboard = await readFile(path.join(ROOT, 'deploy/grafana-dashboard.json'), 'utf8');
    const source = await readFile(path.join(CHART_DIR, 'dashboards/netmon.json'), 'utf8');
    expect(dashboard === source, 'deploy/grafana-dashboard.json is the chart’s dashboard').toBe(true);
  });
});

describe('charts/netmon/README.md', () => {
  const readme = readFileSync(path.join(CHART_DIR, 'README.md'), 'utf8');
  const cells = (line: string) =>
    line
      .split('|')
      .slice(1, -1)
      .map((c) => c.trim());
  const names = (cell: string) =>
    cell === '—'
      ? []
      : cell
          .split(':')[0]
          .split(',')
          .map((s) => s.replaceAll('`', '').trim());

  it('states each mode’s privileges as files/privileges.yaml has them', () => {
    const rows = new Map(
      readme
        .split('\n')
        // The privileges table: six columns (the modes table above it has two).
        .filter((l) => /^\| `(netfilter|ebpf|cilium|auto|dns)`/.test(l) && cells(l).length === 6)
        .map((l) => [/`(\w+)`/.exec(l)![1], cells(l)]),
    );
    expect([...rows.keys()]).toEqual(['netfilter', 'ebpf', 'cilium', 'auto', 'dns']);
    for (const [entry, [, caps, hostNetwork, mounts, init, seccomp]] of rows) {
      const want =
        entry === 'dns'
          ? {
              capabilities: [...(PRIVILEGES.dns.capabilities ?? [])].sort(),
              hostNetwork: PRIVILEGES.dns.hostNetwork === true,
              mounts: [...(PRIVILEGES.dns.mounts ?? [])].sort(),
              init: { mounts: [], sysctls: [] },
              seccomp: PRIVILEGES.dns.seccomp ?? 'RuntimeDefault',
            }
          : expectedPrivileges(entry as Mode, false);
      expect(names(caps).sort(), `${entry} capabilities`).toEqual(want.capabilities);
      expect(hostNetwork, `${entry} hostNetwork`).toBe(want.hostNetwork ? 'yes' : 'no');
      expect(names(mounts).sort(), `${entry} mounts`).toEqual(want.mounts);
      expect(names(init), `${entry} init mounts`).toEqual(want.init.mounts);
      const sysctls = init.includes(':') ? init.split('sets ')[1].split(', ') : [];
      expect(sysctls, `${entry} sysctls`).toEqual(want.init.sysctls);
      expect(seccomp, `${entry} seccomp`).toBe(want.seccomp);
    }
  });

  it('asks for the image you built and pushed: nothing publishes the default image.repository', () => {
    const row = (key: string) => readme.split('\n').find((l) => l.startsWith(`| \`${key}\``)) ?? '';
    // Moving from zxporter-netmon: replace its image with your build, not remove it for a default.
    const moving = row('image.repository`, `image.tag');
    expect(moving).toContain('make image');
    expect(moving).toContain('zxporter-netmon');
    expect(moving).not.toMatch(/Remove them|default is/);
    expect(row('image.repository')).toContain('your registry');
    expect(readme).not.toMatch(/keep your values file without `image`/);
  });

  it('lists every key of values.yaml', async () => {
    const schema = JSON.parse(await readFile(path.join(CHART_DIR, 'values.schema.json'), 'utf8'));
    const values = parse(await readFile(path.join(CHART_DIR, 'values.yaml'), 'utf8'));
    const keys: string[] = [];
    const walk = (v: K8s, s: K8s, where: string) => {
      for (const key of Object.keys(v)) {
        const sub = s.properties[key];
        const value = v[key];
        // The chart's own sections are listed key by key; Kubernetes objects passed through, as a whole.
        if (
          sub.additionalProperties === false &&
          value &&
          typeof value === 'object' &&
          !Array.isArray(value)
        ) {
          walk(value, sub, `${where}${key}.`);
        } else keys.push(`${where}${key}`);
      }
    };
    walk(values, schema, '');
    const listed = new Set(
      readme
        .split('\n')
        .filter((l) => l.startsWith('| `'))
        .flatMap((l) => [...cells(l)[0].matchAll(/`([^`]+)`/g)].map((m) => m[1])),
    );
    expect(keys.filter((k) => !listed.has(k))).toEqual([]);
  });
});

describe.runIf(prometheusTool('promtool'))('NOTES.txt’s PromQL', () => {
  it('names metrics and labels the agent serves, and promtool accepts each query', async () => {
    const { notes, values } = await render();
    // The queries are the indented lines under "3." that are not comments or commands.
    const section = notes!.slice(notes!.indexOf('\n3. '), notes!.indexOf('\n4. '));
    const queries = section
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => /^(sum|topk|rate|increase)\b/.test(l));
    expect(queries).toHaveLength(2);

    await withTmpDir(async (dir) => {
      const rules = path.join(dir, 'rules.yaml');
      await writeFile(
        rules,
        JSON.stringify({
          groups: [{ name: 'notes', rules: queries.map((expr, i) => ({ record: `notes:query${i}`, expr })) }],
        }),
      );
      const checked = await run('promtool', ['check', 'rules', rules]).catch((e) => e);
      expect(checked.stdout, checked.stderr).toContain(`SUCCESS: ${queries.length} rules found`);

      // The built agent on the shipped replay example, with the chart's granularity.
      const port = await freePort();
      const overlay = path.join(dir, 'overlay.yaml');
      const granularity = (values.prometheus as { granularity: string }).granularity;
      await writeFile(overlay, `exporters: { prometheus: { granularity: ${granularity} } }\n`);
      const agentProcess = new AgentProcess(['run', '--config', 'configs/examples/replay.yaml', overlay], {
        env: {
          NETMON_OUTPUT: path.join(dir, 'flows.jsonl'),
          NETMON_PROMETHEUS_ENDPOINT: `127.0.0.1:${port}`,
          NETMON_HEALTH_ENDPOINT: '127.0.0.1:0',
        },
      });
      try {
        let text = '';
        const until = Date.now() + 30_000;
        while (!text.includes('netmon_flow_cost_usd_total{') && Date.now() < until) {
          await new Promise((r) => setTimeout(r, 200));
          text = await fetch(`http://127.0.0.1:${port}/metrics`)
            .then((r) => r.text())
            .catch(() => '');
        }
        for (const q of queries) {
          for (const metric of q.match(/\bnetmon_[a-z_]+/g) ?? []) {
            const series = text.split('\n').filter((l) => l.startsWith(`${metric}{`));
            expect(series.length, `${metric} in /metrics`).toBeGreaterThan(0);
            for (const by of q.matchAll(/by \(([^)]+)\)/g)) {
              for (const label of by[1].split(',').map((s) => s.trim())) {
                expect(
                  series.some((l) => l.includes(`${label}="`)),
                  `${metric} has the label ${label}`,
                ).toBe(true);
              }
            }
          }
        }
      } finally {
        agentProcess.signal('SIGTERM');
        await agentProcess.exit();
      }
    });
  }, 60_000);
});
