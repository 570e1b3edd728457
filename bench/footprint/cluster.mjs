// The node namespace's helper for run.mjs, started there with `ip netns exec`, so that the agent reaches
// it on 127.0.0.1 as a node agent reaches a local API proxy:
// - the Kubernetes API stand-in of test/harness (Node.js runs the .ts files by stripping their types)
//   serving plan.mjs's cluster, and a kubeconfig file pointing at it;
// - relays from Unix sockets in the bench's folder to the agent's loopback endpoints (metrics, health),
//   through which run.mjs, in the host's namespace, reads them;
// - on stdin, `churn`: one pod replaced (deleted, a new one of its workload added, its EndpointSlice
//   updated), answered with `churned <old> <new>`.
// Prints `ready <API URL>` once serving. Ends when stdin closes or on SIGTERM.
//
//   node cluster.mjs '<JSON: {pods, nodes, seed, dir, relays: {name: port}}>'
import { rmSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import readline from 'node:readline';
import { K8sApiStandIn } from '../../test/harness/k8s-api.ts';
import { endpointSlice, node, pod, service } from '../../test/harness/k8s-fixtures.ts';
import { API_ENDPOINT, makePlan, replacePod, SERVER_PORT, SERVER_PORTS, workloadPods } from './plan.mjs';

const options = JSON.parse(process.argv[2]);
const plan = makePlan(options);
// Every workload serves on all the ports the traffic uses, so every flow to a pod has its Service.
const ports = Array.from({ length: SERVER_PORTS }, (_, i) => SERVER_PORT + i);

const podObject = (p) => {
  const w = plan.workloads[p.workload];
  return pod({
    namespace: p.namespace,
    name: p.name,
    node: plan.nodes[p.node].name,
    ips: [p.ip],
    labels: { app: w.name, 'pod-template-hash': w.hash },
    owner: { kind: 'ReplicaSet', name: `${w.name}-${w.hash}` },
  });
};

const sliceObject = (w) =>
  endpointSlice({
    namespace: w.namespace,
    name: w.slice,
    service: w.name,
    ports,
    endpoints: workloadPods(plan, w.index).map((p) => ({ addresses: [p.ip], pod: p.name })),
  });

const api = await K8sApiStandIn.start();
api.add(
  plan.nodes.map((n) =>
    node({
      name: n.name,
      zone: n.zone,
      region: n.region,
      providerID: n.providerID,
      internalIPs: [n.internalIP],
      podCIDRs: [n.podCIDR],
    }),
  ),
);
api.add(plan.pods.map(podObject));
api.add(
  plan.workloads.map((w) =>
    service({ namespace: w.namespace, name: w.name, clusterIPs: [w.clusterIP], ports }),
  ),
);
api.add(plan.workloads.map(sliceObject));
// The cluster's API server, as every cluster has it: the `kubernetes` Service and its endpoint.
api.add(service({ namespace: 'default', name: 'kubernetes', clusterIPs: ['10.96.0.1'], ports: [443] }));
api.add(
  endpointSlice({
    namespace: 'default',
    name: 'kubernetes',
    service: 'kubernetes',
    ports: [6443],
    endpoints: [{ addresses: [API_ENDPOINT] }],
  }),
);
await api.writeKubeconfig(path.join(options.dir, 'kubeconfig'));

const relays = [];
for (const [name, port] of Object.entries(options.relays ?? {})) {
  const socket = path.join(options.dir, `${name}.sock`);
  const server = net.createServer((client) => {
    const upstream = net.connect(port, '127.0.0.1');
    client.pipe(upstream).pipe(client);
    // A refused upstream (the agent not listening yet) ends the client's connection, nothing more.
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(socket, resolve);
  });
  relays.push({ server, socket });
}

let closing = false;
async function close() {
  if (closing) return;
  closing = true;
  for (const r of relays) {
    r.server.close();
    rmSync(r.socket, { force: true });
  }
  await api.close();
  process.exit(0);
}
process.on('SIGTERM', close);
process.on('SIGINT', close);

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.trim() !== 'churn') return;
  const { old, fresh } = replacePod(plan);
  api.delete(podObject(old));
  api.add(podObject(fresh));
  api.modify(sliceObject(plan.workloads[fresh.workload]));
  console.log(`churned ${old.namespace}/${old.name} ${fresh.namespace}/${fresh.name}`);
});
process.stdin.on('end', close);

console.log(`ready ${api.url}`);
