import { defineReceiver } from '@netmon/core';
import { BPF_FS_MAGIC, fsTypeOf, notBpfFs } from './bpffs.js';
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
  // A maps_dir that exists off a bpffs can hold no map on any node: a mistake worth refusing before
  // anything starts. One that does not exist is the start's to say (this may not be the node it runs on),
  // and under auto (tentative) the fs type is the start's too, where auto moves on to the next mode.
  validate(config, ctx) {
    if (ctx?.tentative) return [];
    const type = fsTypeOf(config.maps_dir);
    if (type === undefined || type === BPF_FS_MAGIC) return [];
    return [{ key: 'maps_dir', message: notBpfFs(config.maps_dir, type) }];
  },
  // The receiver loads the native addon: only when a config uses it.
  create: async (settings, config, next) =>
    new (await import('./receiver.js')).CiliumReceiver(settings, config, next),
});
