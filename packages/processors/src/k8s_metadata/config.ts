import { duration } from '@netmon/core';
import { z } from 'zod';

export const k8sMetadataConfig = z.strictObject({
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
      "The Kubernetes node this agent runs on. Unset: the NODE_NAME environment variable (set it from the downward API's spec.nodeName in the DaemonSet), else the host name, with a warning.",
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
      'How long the agent start waits for the first list of pods, nodes, services and EndpointSlices, so the first flows are labelled. On timeout the agent starts anyway and reports a recoverable error until the lists arrive. 0s: do not wait.',
    ),
});

export type K8sMetadataConfig = z.output<typeof k8sMetadataConfig>;
