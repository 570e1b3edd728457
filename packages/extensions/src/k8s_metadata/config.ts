import { duration } from '@netmon/core';
import { z } from 'zod';

const SNAPSHOT_COMMAND = 'kubectl get pods,nodes,services,endpointslices -A -o json';

export const k8sMetadataConfig = z
  .strictObject({
    kubeconfig: z
      .string()
      .min(1, 'kubeconfig must not be empty')
      .optional()
      .describe(
        'Path to a kubeconfig file (relative paths resolve against the config file). Unset: the in-cluster service account (KUBERNETES_SERVICE_HOST and /var/run/secrets/kubernetes.io/serviceaccount/token), then the files in KUBECONFIG, then ~/.kube/config; when none exists the extension runs standalone and says so in the log.',
      ),
    node_name: z
      .string()
      .min(1, 'node_name must not be empty')
      .optional()
      .describe(
        "The Kubernetes node this agent runs on. Unset: the NODE_NAME environment variable (set it from the downward API's spec.nodeName in the DaemonSet), else the host name, with a warning; with snapshot, no node (said in the log), never the host name.",
      ),
    scope: z
      .enum(['cluster', 'node'])
      .default('cluster')
      .describe(
        "Which pods to watch. cluster: every pod, so the destination of a flow is known by pod, workload and zone wherever it runs. node: only this node's pods (field selector spec.nodeName=<node_name>, less memory on big clusters); pods elsewhere are still placed on their node, and so in their zone, by the node's podCIDR. CNIs that set no spec.podCIDRs (EKS VPC CNI, Azure CNI, Cilium cluster-pool) leave those pods unknown (no zone, and both nodes report their connections): use cluster there; the extension warns.",
      ),
    standalone: z
      .boolean()
      .default(false)
      .describe(
        'Watch nothing: flows keep no Kubernetes metadata (for hosts outside a cluster). Without it the extension is standalone only when no kubeconfig or service account exists; one whose API is down or unreachable gives a degraded extension (a start wait of wait_for_sync, then recoverable_error while it retries), not a standalone one.',
      ),
    wait_for_sync: duration()
      .prefault('10s')
      .describe(
        'How long the agent start waits for the first list of pods, nodes, services and EndpointSlices, so the first flows are labelled. On timeout the agent starts anyway and reports a recoverable error until the lists arrive. 0s: do not wait. Not used with snapshot.',
      ),
    snapshot: z
      .union([
        z.string().min(1, 'snapshot must not be empty'),
        z
          .array(z.string().min(1, 'snapshot must not be empty'))
          .min(1, 'snapshot must name at least one file'),
      ])
      .optional()
      .describe(
        `A cluster snapshot to read instead of watching the API: a file, or a list of files merged in order (a later file's copy of an object wins), each the JSON that \`${SNAPSHOT_COMMAND}\` prints (a List; a PodList, NodeList, …; or one Pod, Node, Service or EndpointSlice). Relative paths resolve against the config file. Read once at start, never re-read; a file that is missing or not valid JSON fails validation and start. Items of other kinds, and items without the fields an address owner needs, are skipped, counted and logged. Not with kubeconfig or standalone. node_name still names this node; unset (and NODE_NAME empty), no node is this node — the host name is not guessed.`,
      ),
  })
  .superRefine((c, ctx) => {
    if (c.snapshot === undefined) return;
    if (c.kubeconfig !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['snapshot'],
        message:
          'snapshot cannot be combined with kubeconfig: the extension reads the cluster from the snapshot files or watches the API, not both; remove one of the two',
      });
    }
    if (c.standalone) {
      ctx.addIssue({
        code: 'custom',
        path: ['snapshot'],
        message:
          'snapshot cannot be combined with standalone: true (standalone reads no cluster at all); remove one of the two',
      });
    }
  });

/** The snapshot key as a list of paths, as written (not yet resolved). */
export function snapshotPaths(config: { snapshot?: string | string[] }): string[] | undefined {
  const s = config.snapshot;
  return s === undefined ? undefined : typeof s === 'string' ? [s] : s;
}

export type K8sMetadataConfig = z.output<typeof k8sMetadataConfig>;
