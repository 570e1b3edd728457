// The bench's cluster, as plain data: nodes in three zones of one AWS region and one node in another,
// workloads (Deployments through ReplicaSets) whose pods spread over every node, a Service and an
// EndpointSlice per workload, and the roles some pods play in the traffic. run.mjs takes the addresses
// from it; cluster.mjs serves it (as API objects) from the Kubernetes API stand-in. Deterministic: the
// same options give the same cluster in both processes.

export const THIS_NODE_INDEX = 0;
/** This node's InternalIP: the address of the node namespace's links to the pod namespaces. */
export const NODE_IP = '10.76.0.1';
/** The API server's endpoint (the `kubernetes` Service's backend), an address no pod or node owns. */
export const API_ENDPOINT = '10.76.0.250';
export const SERVER_PORT = 8080;
export const SERVER_PORTS = 4;
/** This node's pods that hold the long-lived connections. */
export const CLIENT_PODS = 16;
/** Server pods on this node, and on the other nodes (spread over them). */
export const LOCAL_SERVERS = 4;
export const REMOTE_SERVERS = 20;
export const PODS_PER_WORKLOAD = 10;
const NAMESPACES = 10;
const ZONES = ['us-east-1a', 'us-east-1b', 'us-east-1c'];
// The characters Kubernetes uses in generated names (k8s.io/apimachinery/pkg/util/rand: no vowels,
// no confusable digits).
const NAME_CHARS = 'bcdfghjklmnpqrstvwxz2456789';

/** xorshift32: fast, deterministic. */
export function rng(seed) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

function randomName(next, length) {
  let s = '';
  for (let i = 0; i < length; i++) s += NAME_CHARS[next() % NAME_CHARS.length];
  return s;
}

/** The n-th address (n ≥ 1) of node k's pod range 10.(80+k).0.0/16. */
export function podIp(k, n) {
  if (n < 1 || n > 65534) throw new Error(`node ${k} has no pod address left (its /16 is used up)`);
  return `10.${80 + k}.${n >> 8}.${n & 255}`;
}

/**
 * The cluster: `nodes` nodes (the first is this node), `pods` pods in workloads of 10 pods, the pod of
 * a workload's r-th replica on node (workload + r) mod nodes, so every node hosts pods of many workloads.
 */
export function makePlan({ pods = 1000, nodes = 10, seed = 1 } = {}) {
  if (!Number.isInteger(nodes) || nodes < 2 || nodes > 100) throw new Error('--nodes must be 2..100');
  if (!Number.isInteger(pods) || pods < 1) throw new Error('--pods must be a positive integer');
  const next = rng(seed);
  const nodeList = [];
  for (let k = 0; k < nodes; k++) {
    // The last node of four or more in another region: cross-region traffic, priced as such.
    const otherRegion = nodes >= 4 && k === nodes - 1;
    const zone = otherRegion ? 'us-west-2a' : ZONES[k % ZONES.length];
    const region = otherRegion ? 'us-west-2' : 'us-east-1';
    nodeList.push({
      name: `fp-node-${k}`,
      zone,
      region,
      providerID: `aws:///${zone}/i-0f${k.toString(16).padStart(15, '0')}`,
      internalIP: `10.76.0.${k + 1}`,
      podCIDR: `10.${80 + k}.0.0/16`,
      used: 0,
    });
  }
  const workloads = [];
  const podList = [];
  const count = Math.ceil(pods / PODS_PER_WORKLOAD);
  for (let d = 0; d < count; d++) {
    const w = {
      index: d,
      namespace: `team-${d % NAMESPACES}`,
      name: `app-${d}`,
      hash: randomName(next, 10),
      clusterIP: `10.96.${1 + (d >> 8)}.${d & 255}`,
      slice: `app-${d}-${randomName(next, 5)}`,
    };
    workloads.push(w);
    for (let r = 0; r < PODS_PER_WORKLOAD && podList.length < pods; r++) {
      podList.push(newPod(nodeList, w, (d + r) % nodes, next));
    }
  }
  const onNode = (k) => podList.filter((p) => p.node === k);
  const here = onNode(THIS_NODE_INDEX);
  const needHere = CLIENT_PODS + 2 + LOCAL_SERVERS;
  if (here.length < needHere) {
    throw new Error(`this node has ${here.length} pods, the traffic needs ${needHere}: raise --pods`);
  }
  const clients = here.slice(0, CLIENT_PODS);
  const marker = here[CLIENT_PODS];
  const churn = here[CLIENT_PODS + 1];
  const servers = here.slice(CLIENT_PODS + 2, needHere);
  // Remote server j on node 1 + j mod (nodes − 1), the (22 + j)-th pod there: with 10-pod workloads on
  // 10 nodes each node's i-th pod is of workload i, so the servers' workloads are not the clients'.
  for (let j = 0; j < REMOTE_SERVERS; j++) {
    const k = 1 + (j % (nodes - 1));
    const pod = onNode(k)[needHere + j];
    if (!pod) throw new Error(`node ${k} has too few pods for the remote servers: raise --pods`);
    servers.push(pod);
  }
  for (const p of clients) p.role = 'client';
  for (const p of servers) p.role = 'server';
  marker.role = 'marker';
  churn.role = 'churn';
  return {
    thisNode: nodeList[THIS_NODE_INDEX].name,
    nodes: nodeList,
    workloads,
    pods: podList,
    roles: { clients, servers, marker, churn },
    next,
  };
}

function newPod(nodeList, w, k, next) {
  const node = nodeList[k];
  node.used++;
  return {
    namespace: w.namespace,
    name: `${w.name}-${w.hash}-${randomName(next, 5)}`,
    workload: w.index,
    node: k,
    ip: podIp(k, node.used),
    role: undefined,
  };
}

/**
 * A rollout's step: a random pod that plays no role in the traffic is deleted and its workload gets a
 * new one on the same node, with a new name and the node's next address. Returns both.
 */
export function replacePod(plan) {
  const idle = plan.pods.filter((p) => p.role === undefined);
  if (idle.length === 0) throw new Error('no pod without a role to replace');
  const old = idle[plan.next() % idle.length];
  const fresh = newPod(plan.nodes, plan.workloads[old.workload], old.node, plan.next);
  plan.pods[plan.pods.indexOf(old)] = fresh;
  return { old, fresh };
}

/** The pods of one workload, for its EndpointSlice. */
export function workloadPods(plan, index) {
  return plan.pods.filter((p) => p.workload === index);
}
