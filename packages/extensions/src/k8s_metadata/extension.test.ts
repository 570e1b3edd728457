import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { FlowBatch } from '@netmon/core';
import { testSettings } from '@netmon/core/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { k8sMetadataConfig } from './config.js';
import { K8sMetadataExtension } from './extension.js';
import { k8sMetadataExtensionFactory } from './factory.js';
import { ApiError, describeError } from './informer.js';
import { locateApi, nodeNameOf, SERVICE_ACCOUNT_TOKEN } from './kubeconfig.js';

const kubeconfig = (server: string, context = 'c') =>
  JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: context, cluster: { server, 'insecure-skip-tls-verify': true } }],
    users: [{ name: context, user: {} }],
    contexts: [{ name: context, context: { cluster: context, user: context } }],
    'current-context': context,
  });

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'netmon-k8s-metadata-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('k8s_metadata config', () => {
  it('has defaults for everything', () => {
    expect(k8sMetadataConfig.parse({})).toEqual({
      scope: 'cluster',
      standalone: false,
      wait_for_sync: 10_000,
    });
  });

  it('parses every key and rejects bad values', () => {
    expect(
      k8sMetadataConfig.parse({
        kubeconfig: 'kc.yaml',
        node_name: 'n1',
        scope: 'node',
        standalone: true,
        wait_for_sync: '0s',
      }),
    ).toEqual({ kubeconfig: 'kc.yaml', node_name: 'n1', scope: 'node', standalone: true, wait_for_sync: 0 });
    expect(k8sMetadataConfig.safeParse({ scope: 'zone' }).success).toBe(false);
    expect(k8sMetadataConfig.safeParse({ wait_for_sync: '10' }).success).toBe(false);
    expect(k8sMetadataConfig.safeParse({ kubeconfig: '' }).success).toBe(false);
  });

  it('describes every key', () => {
    for (const [key, schema] of Object.entries(k8sMetadataConfig.shape)) {
      expect(schema.description, key).toBeTruthy();
    }
  });

  it('validate reports a kubeconfig that does not exist, resolved against the config directory', async () => {
    const config = k8sMetadataConfig.parse({ kubeconfig: 'missing.yaml' });
    expect(await k8sMetadataExtensionFactory.validate?.(config, { configDir: dir })).toEqual([
      { key: 'kubeconfig', message: `${path.join(dir, 'missing.yaml')} does not exist` },
    ]);
    await writeFile(path.join(dir, 'ok.yaml'), kubeconfig('http://127.0.0.1:1'));
    const ok = k8sMetadataConfig.parse({ kubeconfig: 'ok.yaml' });
    expect(await k8sMetadataExtensionFactory.validate?.(ok, { configDir: dir })).toEqual([]);
    const isDir = k8sMetadataConfig.parse({ kubeconfig: '.' });
    expect(await k8sMetadataExtensionFactory.validate?.(isDir, { configDir: dir })).toEqual([
      { key: 'kubeconfig', message: `${dir} is not a file` },
    ]);
  });

  it('validate reports what the client would refuse at start: not YAML, or no current context with a cluster', async () => {
    const issue = async (text: string) => {
      await writeFile(path.join(dir, 'kc.yaml'), text);
      const issues = await k8sMetadataExtensionFactory.validate?.(
        k8sMetadataConfig.parse({ kubeconfig: 'kc.yaml' }),
        {
          configDir: dir,
        },
      );
      return issues?.map((i) => i.message.replace(`${path.join(dir, 'kc.yaml')}: `, ''));
    };
    expect(await issue('clusters: [unclosed')).toEqual([expect.stringMatching(/^not a kubeconfig: /)]);
    expect(await issue('apiVersion: v1\nkind: Config\n')).toEqual(['no current-context']);
    const noServer = JSON.parse(kubeconfig('http://127.0.0.1:1'));
    delete noServer.clusters[0].cluster.server;
    expect(await issue(JSON.stringify(noServer))).toEqual(['cluster c of current-context c has no server']);
    expect(await issue(JSON.stringify({ ...noServer, contexts: [] }))).toEqual([
      'current-context c names no cluster',
    ]);
    // And the client agrees: each of these fails to start, the good one does not.
    for (const text of ['apiVersion: v1\nkind: Config\n', JSON.stringify(noServer)]) {
      await writeFile(path.join(dir, 'kc.yaml'), text);
      expect(() => locateApi({ kubeconfig: path.join(dir, 'kc.yaml') })).toThrow();
    }
  });
});

describe('locating the API', () => {
  it('prefers an explicit kubeconfig, and fails loudly when it is missing', async () => {
    const file = path.join(dir, 'explicit.yaml');
    await writeFile(file, kubeconfig('http://127.0.0.1:7001'));
    const where = locateApi({ kubeconfig: file, env: { KUBECONFIG: '/nowhere' }, home: dir });
    expect(where.kc?.getCurrentCluster()?.server).toBe('http://127.0.0.1:7001');
    expect(() => locateApi({ kubeconfig: path.join(dir, 'nope.yaml') })).toThrow(/no such file/);
  });

  it('uses the service account first, then KUBECONFIG (merged, first file wins), then ~/.kube/config', async () => {
    const home = path.join(dir, 'home');
    await mkdir(path.join(home, '.kube'), { recursive: true });
    await writeFile(path.join(home, '.kube', 'config'), kubeconfig('http://127.0.0.1:7002', 'home'));
    const a = path.join(dir, 'a.yaml');
    const b = path.join(dir, 'b.yaml');
    await writeFile(a, kubeconfig('http://127.0.0.1:7003', 'a'));
    await writeFile(b, kubeconfig('http://127.0.0.1:7004', 'b'));

    const saRoot = path.join(dir, 'sa');
    await mkdir(path.dirname(saRoot + SERVICE_ACCOUNT_TOKEN), { recursive: true });
    await writeFile(saRoot + SERVICE_ACCOUNT_TOKEN, 'token');
    const saved = { host: process.env.KUBERNETES_SERVICE_HOST, port: process.env.KUBERNETES_SERVICE_PORT };
    try {
      // loadFromCluster reads the process environment itself.
      process.env.KUBERNETES_SERVICE_HOST = '10.96.0.1';
      process.env.KUBERNETES_SERVICE_PORT = '443';
      const sa = locateApi({ env: process.env, home, serviceAccountRoot: saRoot });
      expect(sa).toMatchObject({ source: 'in-cluster service account' });
      expect(sa.kc?.getCurrentCluster()?.server).toBe('https://10.96.0.1:443');
    } finally {
      restore('KUBERNETES_SERVICE_HOST', saved.host);
      restore('KUBERNETES_SERVICE_PORT', saved.port);
    }

    const list = locateApi({
      env: { KUBECONFIG: `/nowhere${path.delimiter}${a}${path.delimiter}${b}` },
      home,
    });
    expect(list.kc?.getCurrentCluster()?.server).toBe('http://127.0.0.1:7003');
    expect(list.kc?.clusters.map((c) => c.name)).toEqual(['a', 'b']);

    const fromHome = locateApi({ env: {}, home });
    expect(fromHome).toMatchObject({ source: path.join(home, '.kube', 'config') });
  });

  it('finds nothing and says why, without falling back to localhost', () => {
    const none = locateApi({
      env: { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBECONFIG: '/nowhere' },
      home: dir,
    });
    expect(none.kc).toBeUndefined();
    expect('reason' in none && none.reason).toMatch(
      /KUBERNETES_SERVICE_HOST is set but .*token does not exist.*KUBECONFIG=\/nowhere names no existing file.*\.kube\/config does not exist/,
    );
  });

  it('takes the node name from the config, then NODE_NAME, then guesses the host name', () => {
    expect(nodeNameOf('n1', { NODE_NAME: 'n2' })).toEqual({ name: 'n1', guessed: false });
    expect(nodeNameOf(undefined, { NODE_NAME: 'n2' })).toEqual({ name: 'n2', guessed: false });
    expect(nodeNameOf(undefined, {})).toEqual({ name: os.hostname(), guessed: true });
  });
});

describe('k8s_metadata extension', () => {
  it('in standalone mode resolves nothing and describes itself', async () => {
    const settings = testSettings('extension', 'k8s_metadata');
    const ext = new K8sMetadataExtension(
      settings,
      k8sMetadataConfig.parse({ standalone: true, node_name: 'n1' }),
    );
    await ext.start();
    expect(ext.standalone).toBe(true);
    expect(ext.nodeName).toBe('n1');
    expect(ext.synced()).toBe(true);
    expect(ext.provider()).toBeUndefined();
    const batch = FlowBatch.from([
      {
        timeStart: 0,
        timeEnd: 1,
        protocol: 6,
        srcIp: '10.0.0.1',
        srcPort: 1,
        dstIp: '10.0.0.2',
        dstPort: 2,
        txBytes: 1,
        rxBytes: 1,
        txPackets: 1,
        rxPackets: 1,
      },
    ]);
    const r = ext.resolve(batch);
    expect([...r.src, ...r.dst, ...r.peer, ...r.service]).toEqual([-1, -1, -1, -1]);
    expect(settings.host.components()[0].details?.()).toEqual({
      mode: 'standalone',
      state: 'standalone',
      node_name: 'n1',
      reason: 'standalone: true in the configuration',
      informers: {},
      sizes: { pods: 0, nodes: 0, services: 0, endpointSlices: 0, addresses: 0 },
      warnings: [],
    });
    await ext.shutdown();
  });
});

describe('describeError', () => {
  it('names the HTTP status, the connection error and, for 401/403, the RBAC the agent needs', () => {
    expect(describeError(Object.assign(new Error('Service Unavailable'), { statusCode: 503 }))).toBe(
      'HTTP 503 Service Unavailable',
    );
    expect(describeError(new ApiError('GET /api/v1/pods: HTTP 403 forbidden', 403))).toMatch(
      /^GET \/api\/v1\/pods: HTTP 403 forbidden: the agent needs a ClusterRole with list and watch on pods/,
    );
    expect(describeError(new TypeError('fetch failed', { cause: { code: 'ECONNREFUSED' } }))).toBe(
      'fetch failed (ECONNREFUSED)',
    );
    expect(describeError('plain')).toBe('plain');
  });
});

function restore(key: string, value: string | undefined): void {
  if (value === undefined) delete process.env[key];
  else process.env[key] = value;
}
