// The k8s_metadata extension's self-metrics, declared once: the extension observes them, the README lists them.
import { defineMetrics } from '@netmon/core';

export const K8S_METADATA_METRICS = defineMetrics({
  events: {
    name: 'netmon_k8s_metadata_events',
    kind: 'counter',
    unit: '{event}',
    description:
      'Kubernetes objects applied to the metadata store, by resource (pods, nodes, services, endpointslices) and type (add, update, delete); relists count too.',
    attributes: { resource: 'pods, nodes, services or endpointslices', type: 'add, update or delete' },
  },
  restarts: {
    name: 'netmon_k8s_metadata_restarts',
    kind: 'counter',
    unit: '{restart}',
    description: 'Restarts of a list/watch after an error, by resource.',
    attributes: { resource: 'pods, nodes, services or endpointslices' },
  },
  synced: {
    name: 'netmon_k8s_metadata_synced',
    kind: 'gauge',
    description: '1 when the resource has been listed and its watch is not failing, else 0, by resource.',
    attributes: { resource: 'pods, nodes, services or endpointslices' },
  },
  objects: {
    name: 'netmon_k8s_metadata_objects',
    kind: 'gauge',
    unit: '{object}',
    description:
      'Entries in the metadata store by table: pods, nodes, services, endpoint_slices, and addresses (IPs with an owner).',
    attributes: { table: 'pods, nodes, services, endpoint_slices or addresses' },
  },
});
