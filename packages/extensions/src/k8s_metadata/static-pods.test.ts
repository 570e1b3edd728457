// Static pods (kubeadm's etcd and kube-apiserver, hostNetwork): the kubelet runs each under the hash of its
// manifest as UID and names its cgroup after it, so that is the UID the ebpf receiver reports; the API
// shows a mirror pod with a uid of its own and the hash in `kubernetes.io/config.mirror`. Both ways the
// extension fills its store — the informers, through the real @kubernetes/client-node against the API
// stand-in, and snapshot files — must find the mirror pod by that hash.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FlowBatch, FlowFlags, type FlowInit } from '@netmon/core';
import { testSettings } from '@netmon/core/testkit';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { K8sApiStandIn, type K8sObject, waitFor } from '../../../../test/harness/k8s-api.js';
import { k8sMetadataConfig } from './config.js';
import { DST_POD_UID, SRC_POD_UID } from './contract.js';
import { K8sMetadataExtension } from './extension.js';

const TESTDATA = path.join(path.dirname(fileURLToPath(import.meta.url)), 'testdata');
const items = (file: string): K8sObject[] =>
  JSON.parse(readFileSync(path.join(TESTDATA, file), 'utf8')).items;

const NODE_A = 'ip-10-1-1-20.eu-west-1.compute.internal';
const ETCD = `etcd-${NODE_A}`;
const APISERVER = `kube-apiserver-${NODE_A}`;
/** The manifests' hashes: the static pods' UIDs on the node, their cgroups' names (pod<hash>). */
const ETCD_HASH = '5f1c0b7e2d9a4c3e8b6f0a1d2e3c4b5a';
const APISERVER_HASH = 'a3e9d1c57b2f48e6901c4d8b7e2a5f13';
/** The mirror pods' own uids, which no cgroup carries. */
const ETCD_MIRROR_UID = '0b6f3c1e-8d2a-4f7b-9e5c-3a1d7f0e2b48';

const [etcdMirror, apiserverMirror] = items('static-pods.json');

const flow = (
  srcIp: string,
  dstIp: string,
  dstPort: number,
  attributes: Record<string, string>,
): FlowInit => ({
  timeStart: 0,
  timeEnd: 10_000,
  protocol: 6,
  srcIp,
  srcPort: 40000,
  dstIp,
  dstPort,
  txBytes: 100,
  rxBytes: 100,
  flags: FlowFlags.InitiatorKnown,
  attributes,
});

/** The pod each end of each row resolved to, as the processors read it. */
function podsOf(ext: K8sMetadataExtension, batch: FlowBatch) {
  const r = ext.resolve(batch);
  const pod = (id: number) => (id < 0 ? null : (ext.store.entity(id)?.pod ?? ext.store.entity(id)?.kind));
  return Array.from({ length: batch.length }, (_, i) => [pod(r.src[i]), pod(r.dst[i]), pod(r.peer[i])]);
}

/** etcd to the API server on node A, each named by its cgroup's UID, then the same by address only. */
const controlPlaneFlows = () =>
  FlowBatch.from([
    flow('10.1.1.20', '10.1.1.20', 6443, { [SRC_POD_UID]: ETCD_HASH, [DST_POD_UID]: APISERVER_HASH }),
    flow('10.1.1.20', '10.1.1.20', 6443, {}),
  ]);

const made: K8sMetadataExtension[] = [];
afterEach(async () => {
  await Promise.all(made.splice(0).map((e) => e.shutdown()));
});

describe('static pods from a snapshot', () => {
  it('finds the mirror pod by its config hash, and resolves ends named by it', async () => {
    const ext = new K8sMetadataExtension(
      testSettings('extension', 'k8s_metadata', { configDir: TESTDATA }),
      k8sMetadataConfig.parse({
        snapshot: ['nodes.json', 'workloads.json', 'static-pods.json'],
        node_name: NODE_A,
      }),
      { env: {} },
    );
    made.push(ext);
    await ext.start();
    const etcd = ext.store.podByUid(ETCD_HASH);
    expect(etcd).toMatchObject({
      kind: 'pod',
      namespace: 'kube-system',
      pod: ETCD,
      nodeName: NODE_A,
      workloadKind: 'Node',
      workloadName: NODE_A,
    });
    expect(ext.store.podByUid(ETCD_MIRROR_UID)).toBe(etcd);
    expect(ext.store.podByUid(APISERVER_HASH)?.pod).toBe(APISERVER);
    expect(podsOf(ext, controlPlaneFlows())).toEqual([
      [ETCD, APISERVER, APISERVER],
      // By address, node A's IP is the node's: neither hostNetwork pod claims it.
      ['node', 'node', 'node'],
    ]);
  });
});

describe('static pods through the informers (API stand-in)', () => {
  let api: K8sApiStandIn;
  beforeEach(async () => {
    api = await K8sApiStandIn.start();
  });
  afterEach(async () => {
    await Promise.all(made.splice(0).map((e) => e.shutdown()));
    await api.close();
  });

  it('indexes mirror pods by their hash from the list and from watch events, and follows a recreated mirror pod', async () => {
    api.add(items('nodes.json'));
    // Listed: etcd. Watched: the API server's mirror pod, created after the agent started.
    api.add(structuredClone(etcdMirror));
    const ext = new K8sMetadataExtension(
      testSettings('extension', 'k8s_metadata'),
      k8sMetadataConfig.parse({ node_name: NODE_A }),
      { kubeConfig: api.kubeConfig(), backoff: { initialMs: 20, maxMs: 100 }, reconnectScale: 0.01, env: {} },
    );
    made.push(ext);
    await ext.start();
    expect(ext.synced()).toBe(true);
    expect(ext.store.podByUid(ETCD_HASH)?.pod).toBe(ETCD);
    expect(ext.store.podByUid(APISERVER_HASH)).toBeUndefined();

    await waitFor('the pod watch', () => api.openWatches('/api/v1/pods') === 1);
    api.add(structuredClone(apiserverMirror));
    await waitFor('the API server’s mirror pod', () => ext.store.podByUid(APISERVER_HASH));
    expect(podsOf(ext, controlPlaneFlows())).toEqual([
      [ETCD, APISERVER, APISERVER],
      ['node', 'node', 'node'],
    ]);

    // etcd's manifest changes: the kubelet deletes the old mirror pod and creates one for the new hash
    // (a new uid from the API server).
    const newHash = '9d2b7e4f1a6c3058e7b1d4f2a9c6e305';
    const next = structuredClone(etcdMirror);
    next.metadata.uid = '6a1f9e3c-2b7d-4c5e-8f0a-1d3b5c7e9f20';
    const annotations = next.metadata.annotations as Record<string, string>;
    annotations['kubernetes.io/config.hash'] = newHash;
    annotations['kubernetes.io/config.mirror'] = newHash;
    api.delete(structuredClone(etcdMirror));
    api.add(next);
    await waitFor('the new mirror pod', () => ext.store.podByUid(newHash));
    expect(ext.store.podByUid(newHash)?.pod).toBe(ETCD);
    expect(ext.store.podByUid(ETCD_HASH)).toBeUndefined();
    expect(ext.store.podByUid(ETCD_MIRROR_UID)).toBeUndefined();

    // Deleted for good (the manifest removed): its hash names nobody.
    api.delete(next);
    await waitFor('the mirror pod to go', () => ext.store.podByUid(newHash) === undefined);
    expect(ext.store.podByUid(APISERVER_HASH)?.pod).toBe(APISERVER);
  });
});
