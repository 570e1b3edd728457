// The flows receiver's own self-metric; the wrapped receivers' are theirs (see FLOWS_METRICS).
import { defineMetrics } from '@netmon/core';

/** This receiver's own: which mode runs, so a dashboard or an alert can tell the nodes apart by it. */
export const COLLECTION_MODE_METRICS = defineMetrics({
  mode: {
    name: 'netmon_flows_collection_mode',
    kind: 'gauge',
    unit: '{mode}',
    description:
      "1 for the collection mode whose receiver runs; no point before one starts, or when none could. /status' mode, reason and probes say why.",
    attributes: { mode: 'netfilter, ebpf or cilium', chosen_by: 'config (mode named in it) or auto' },
  },
});
