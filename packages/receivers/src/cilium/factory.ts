import { defineReceiver } from '@netmon/core';
import { ciliumReceiverConfig } from './config.js';
import { CILIUM_METRICS } from './metrics.js';

export const ciliumReceiverFactory = defineReceiver({
  kind: 'receiver',
  type: 'cilium',
  stability: 'alpha',
  description:
    "Reads Cilium's pinned conntrack maps (IPv4 and IPv6, TCP and the rest): every connection once, its opener as src, cumulative counters for the delta processor; service and related entries are not counted.",
  signals: ['flows'],
  config: ciliumReceiverConfig,
  metrics: CILIUM_METRICS,
  // The receiver loads the native addon: only when a config uses it.
  create: async (settings, config, next) =>
    new (await import('./receiver.js')).CiliumReceiver(settings, config, next),
});
