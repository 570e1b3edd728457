import { existsSync } from 'node:fs';
import { defineReceiver } from '@netmon/core';
import { conntrackReceiverConfig } from './config.js';
import { CONNTRACK_METRICS } from './metrics.js';

export const conntrackReceiverFactory = defineReceiver({
  kind: 'receiver',
  type: 'conntrack',
  stability: 'alpha',
  description:
    "Reads the kernel's conntrack table over netlink: cumulative dumps every read_interval plus NEW/DESTROY events.",
  signals: ['flows'],
  config: conntrackReceiverConfig,
  metrics: CONNTRACK_METRICS,
  validate(config) {
    if (config.netns && !existsSync(config.netns)) {
      return [
        {
          key: 'netns',
          message: `${config.netns} does not exist: give a network namespace path such as /run/netns/NAME or /proc/PID/ns/net`,
        },
      ];
    }
    return [];
  },
  // The receiver loads the native addon: only when a config uses it.
  create: async (settings, config, next) =>
    new (await import('./receiver.js')).ConntrackReceiver(settings, config, next),
});
