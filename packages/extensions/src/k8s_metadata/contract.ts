// What the k8s_metadata extension offers the components that declare it (k8s_attributes, classify, cost,
// and the prometheus, otlp and devzero exporters): the store, this node's name, and each flow's ends
// resolved to their owners once per batch. Consumers import this module, never the extension's code.
import { type Extension, extensionKey, type FlowBatch } from '@netmon/core';
import type { MetadataStore } from './store.js';

export type { Entity, MetadataStore } from './store.js';

export const K8S_METADATA = extensionKey<K8sMetadata>('k8s_metadata');

/**
 * String columns a receiver writes for an end that is a local socket: the UID of the pod whose cgroup the
 * socket is in (the `ebpf` receiver). `resolve` makes that end this pod, whatever its address says.
 */
export const SRC_POD_UID = 'src.k8s.pod.uid';
export const DST_POD_UID = 'dst.k8s.pod.uid';

export interface K8sMetadata extends Extension {
  readonly store: MetadataStore;
  /** The node this agent runs on; flows of its pods and its own addresses are local. */
  readonly nodeName: string | undefined;
  /** True when no cluster is watched (configured, or no way to reach one): every flow stays unlabelled. */
  readonly standalone: boolean;
  /**
   * True when the cluster is read from snapshot files, not watched: the flows are being analysed after the
   * fact, usually on another machine, so this machine's own state (its network interfaces) is not that of
   * the node that recorded them.
   */
  readonly offline: boolean;
  /** Pod label keys to keep on pods (k8s_attributes' allow-list). Call before the extension starts. */
  requestPodLabels(keys: readonly string[]): void;
  /** True once every informer has listed its objects at least once. */
  synced(): boolean;
  /** The most common cloud provider among the nodes (aws | gcp | azure | …), if any node says. */
  provider(): string | undefined;
  /** Each row's ends resolved to entity ids (see Resolution); cached per batch while the store is unchanged. */
  resolve(batch: FlowBatch): Resolution;
}

/**
 * Entity ids per row (`store.entity(id)`), -1 when the end belongs to nobody the cluster knows. An end
 * the receiver named by pod UID (`SRC_POD_UID`, `DST_POD_UID`) that the store knows is that pod; the other
 * ends are found by address.
 */
export interface Resolution {
  length: number;
  /** The pod named by `src.k8s.pod.uid`, else the owner of the source address. */
  src: Int32Array;
  /**
   * The destination as dialled: the pod named by `dst.k8s.pod.uid`, unless the address dialled is a
   * Service's (ClusterIP, load-balancer IP) or a Service's endpoint, which stays what was dialled; else the
   * owner of the destination address.
   */
  dst: Int32Array;
  /**
   * Whom the source really reached: the pod named by `dst.k8s.pod.uid`, else the DNAT backend when the
   * flow was translated and the backend is known, else `dst`.
   */
  peer: Int32Array;
  /** The service the destination belongs to: the dialled ClusterIP or LB IP, or the backend's service. */
  service: Int32Array;
}
