import {
  type Claim,
  type ConfigIssue,
  defineReceiver,
  type MetricDeclarations,
  type ReceiverFactory,
  type ValidateContext,
} from '@netmon/core';
import { ciliumReceiverFactory } from '../cilium/factory.js';
import { CILIUM_METRICS } from '../cilium/metrics.js';
import { conntrackReceiverFactory } from '../conntrack/factory.js';
import { CONNTRACK_METRICS } from '../conntrack/metrics.js';
import { ebpfReceiverFactory } from '../ebpf/factory.js';
import { EBPF_METRICS } from '../ebpf/metrics.js';
import { AUTO_ORDER, type FlowsReceiverConfig, flowsReceiverConfig, type RunnableMode } from './config.js';
import { COLLECTION_MODE_METRICS } from './metrics.js';
import type { FlowsDeps } from './receiver.js';

/**
 * Every metric on this receiver's meter: its own, then the conntrack receiver's, the ebpf receiver's and
 * the cilium receiver's (auto may run any of them, and falls back from one to the next).
 */
export const FLOWS_METRICS: MetricDeclarations = {
  ...COLLECTION_MODE_METRICS,
  ...Object.fromEntries(Object.entries(CONNTRACK_METRICS).map(([k, m]) => [`netfilter_${k}`, m])),
  ...Object.fromEntries(Object.entries(EBPF_METRICS).map(([k, m]) => [`ebpf_${k}`, m])),
  ...Object.fromEntries(Object.entries(CILIUM_METRICS).map(([k, m]) => [`cilium_${k}`, m])),
};

/** The receivers a config may run: the one it names, or for auto all three, in the order auto tries them. */
export function possibleModes(config: FlowsReceiverConfig): RunnableMode[] {
  return config.mode === 'auto' ? [...AUTO_ORDER] : [config.mode];
}

type Factories = FlowsDeps['factories'];

/**
 * The `flows` factory over the given wrapped factories (the shipped conntrack, ebpf and cilium ones; tests pass
 * their own). Checks and claims are the wrapped factories' own, their keys under the mode's block.
 */
export function makeFlowsReceiverFactory(
  factories: Factories = {
    netfilter: conntrackReceiverFactory,
    ebpf: ebpfReceiverFactory,
    cilium: ciliumReceiverFactory,
  },
  deps?: Pick<FlowsDeps, 'files'>,
): ReceiverFactory<FlowsReceiverConfig> {
  const sub = <R>(
    mode: RunnableMode,
    config: FlowsReceiverConfig,
    call: (f: ReceiverFactory<unknown>, c: unknown) => R,
  ) => call(factories[mode] as ReceiverFactory<unknown>, config[mode]);
  return defineReceiver({
    kind: 'receiver',
    type: 'flows',
    stability: 'alpha',
    description:
      "The collection mode as one receiver: netfilter (conntrack), ebpf, cilium (Cilium's conntrack maps) or auto, which probes the node and says in the log and /status what it chose and why. Runs the chosen receiver with these settings; never replaces a mode named in the config.",
    signals: ['flows'],
    config: flowsReceiverConfig,
    metrics: FLOWS_METRICS,
    // The I/O checks (a cgroup or namespace path exists) of the receivers this config may run only: a
    // path that exists solely on nodes where another mode applies is no mistake. Schema problems are
    // reported in every block whatever the mode.
    async validate(config, ctx: ValidateContext) {
      const issues: ConfigIssue[] = [];
      // Under auto a mode's node-dependent checks are the probe's, per node: a cgroup v1 node's
      // /sys/fs/cgroup is no cgroup2, and auto then runs another mode there instead of refusing to start.
      const tentative = config.mode === 'auto';
      for (const mode of possibleModes(config)) {
        const found = await sub(mode, config, (f, c) => f.validate?.(c, { ...ctx, tentative }) ?? []);
        for (const i of found) issues.push({ key: i.key ? `${mode}::${i.key}` : mode, message: i.message });
      }
      return issues;
    },
    claims(config, ctx) {
      const claims: Claim[] = [];
      for (const mode of possibleModes(config)) {
        for (const c of sub(mode, config, (f, sc) => f.claims?.(sc, ctx) ?? []))
          claims.push({ ...c, key: `${mode}::${c.key}` });
      }
      return claims;
    },
    // The receiver module, and through the wrapped factories their receivers (the native addon), load
    // only when a config uses them.
    create: async (settings, config, next) => {
      const { FlowsReceiver, defaultDeps } = await import('./receiver.js');
      return new FlowsReceiver(settings, config, next, { ...defaultDeps, ...deps, factories });
    },
  });
}

export const flowsReceiverFactory = makeFlowsReceiverFactory();
