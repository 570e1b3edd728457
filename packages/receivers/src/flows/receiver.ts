import {
  type BatchSink,
  type ComponentSettings,
  errorMessage,
  observeMetrics,
  type Receiver,
  type ReceiverFactory,
  type StatusReporter,
} from '@netmon/core';
import type { CiliumReceiverConfig } from '../cilium/config.js';
import { ciliumReceiverFactory } from '../cilium/factory.js';
import type { ConntrackReceiverConfig } from '../conntrack/config.js';
import { conntrackReceiverFactory } from '../conntrack/factory.js';
import type { EbpfReceiverConfig } from '../ebpf/config.js';
import { ebpfReceiverFactory } from '../ebpf/factory.js';
import { AUTO_ORDER, type FlowsReceiverConfig, type RunnableMode } from './config.js';
import { COLLECTION_MODE_METRICS } from './metrics.js';
import {
  type AutoChoice,
  chooseAuto,
  idleConntrack,
  type NodeFiles,
  type NodeProbes,
  nodeFiles,
  probeNode,
} from './probe.js';

/** What the wrapper builds on: a seam for unit tests (fake node, fake receivers), not reachable from the config. */
export interface FlowsDeps {
  files: NodeFiles;
  factories: {
    netfilter: ReceiverFactory<ConntrackReceiverConfig>;
    ebpf: ReceiverFactory<EbpfReceiverConfig>;
    cilium: ReceiverFactory<CiliumReceiverConfig>;
  };
}

export const defaultDeps: FlowsDeps = {
  files: nodeFiles,
  factories: {
    netfilter: conntrackReceiverFactory,
    ebpf: ebpfReceiverFactory,
    cilium: ciliumReceiverFactory,
  },
};

const NOTHING_USABLE_ADVICE =
  'Give the agent what one mode needs — cilium: the host’s /sys/fs/bpf mounted where cilium.maps_dir says, on a ' +
  'node whose CNI is Cilium; ebpf: the host’s cgroup2 mount (or ebpf.cgroup_path naming it), and ' +
  'CAP_BPF with CAP_NET_ADMIN (or CAP_SYS_ADMIN); netfilter: CAP_NET_ADMIN and nf_conntrack loaded ' +
  '(modprobe nf_conntrack), with hostNetwork: true in Kubernetes. Without kernel access, replay recorded flows ' +
  'with the file receiver (configs/examples/replay.yaml)';

/** How a fallback's reason names what the probe of the mode it falls back to saw. */
const USABLE: Record<RunnableMode, string> = {
  cilium: "Cilium's maps are there",
  ebpf: 'eBPF is usable',
  netfilter: 'conntrack is usable',
};

/** A mode auto started whose receiver failed to start: /status `fallback` lists them in order. */
interface Failed {
  from: RunnableMode;
  error: string;
}

/** The wrapped receiver that runs, and the switch that cuts its status reports off once it is abandoned. */
interface Running {
  mode: RunnableMode;
  receiver: Receiver;
  reporter: InnerReporter;
}

/** The wrapper's status reporter as a wrapped receiver sees it: cut off when that receiver is abandoned. */
interface InnerReporter extends StatusReporter {
  detach(): void;
  /** It reported an error (status) since it was made. */
  readonly reportedError: boolean;
  /** Its /status facts, when it published any. */
  facts(): Record<string, unknown>;
}

/**
 * The collection mode as one receiver: it makes the chosen receiver (conntrack, ebpf or cilium) through its
 * own factory, with this receiver's settings (logger, meter, status, id as origin), so the wrapped
 * receiver's self-metrics, /status details and logs are this one's. `auto` probes the node first and says
 * what it chose and why; a mode named in the config is never replaced by another.
 */
export class FlowsReceiver implements Receiver {
  private running?: Running;
  private stopping = false;
  /** What /status shows beside the wrapped receiver's own facts. */
  private facts: Record<string, unknown> = {};
  private closeMetrics?: () => void;

  constructor(
    private readonly settings: ComponentSettings,
    private readonly config: FlowsReceiverConfig,
    private readonly next: BatchSink,
    private readonly deps: FlowsDeps = defaultDeps,
  ) {}

  /** The mode whose receiver runs; undefined before start, after a failed one and after shutdown. */
  get mode(): RunnableMode | undefined {
    return this.running?.mode;
  }

  async start(): Promise<void> {
    // The mode and its reason first, then the wrapped receiver's facts; on a name both use, the mode's wins.
    this.settings.status.describe(() => ({
      ...this.facts,
      ...this.running?.reporter.facts(),
      ...this.facts,
    }));
    const { mode } = this.config;
    const chosenBy = mode === 'auto' ? 'auto' : 'config';
    this.closeMetrics = observeMetrics(this.settings.meter, COLLECTION_MODE_METRICS, (r) => {
      if (this.running) r.mode(1, { mode: this.running.mode, chosen_by: chosenBy });
    }).close;
    const log = this.settings.logger;
    if (mode !== 'auto') {
      const reason = `set in the config (mode: ${mode})`;
      this.facts = { mode, reason };
      log.info({ mode, reason }, `collecting flows with ${mode}, ${reason}`);
      try {
        await this.run(mode);
      } catch (err) {
        if (this.stopping) throw err;
        throw new Error(`mode: ${mode} cannot start: ${errorMessage(err)}. ${this.otherModes(mode)}`);
      }
      return;
    }

    const probes = this.probe();
    const choice = chooseAuto(probes);
    if (choice.mode === undefined) {
      this.facts = { mode: 'none', reason: choice.reason, probes };
      throw new Error(`mode: auto: ${choice.reason}. ${NOTHING_USABLE_ADVICE}`);
    }
    this.facts = { mode: choice.mode, reason: choice.reason, probes };
    // An idle conntrack table chosen as the last resort is a warning: the agent runs, but may see nothing.
    const fields = { mode: choice.mode, reason: choice.reason, probes };
    const line = `mode auto chose ${choice.mode}: ${choice.reason}`;
    if (choice.mode === 'netfilter' && idleConntrack(probes) !== undefined) log.warn(fields, line);
    else log.info(fields, line);
    // Only auto falls back, along the modes its probes passed: what the probes cannot foresee (the kernel
    // refusing a program: a verifier, a locked-down kernel, a memlock limit; Cilium's maps gone between the
    // probe and the start) fails the start of a mode they found usable.
    const failed: Failed[] = [];
    const queue = [...choice.fallbacks];
    for (let current: RunnableMode = choice.mode; ; ) {
      try {
        await this.run(current);
        break;
      } catch (err) {
        failed.push({ from: current, error: errorMessage(err) });
        const next = this.stopping ? undefined : queue.shift();
        if (next === undefined) throw new Error(this.autoFailure(choice, probes, failed));
        this.fallBack(next, failed, probes);
        current = next;
      }
    }
    // A receiver that failed may have reported an error while it tried; the framework keeps an error
    // reported during start, but the one that replaced it runs.
    if (failed.length > 0 && this.running && !this.running.reporter.reportedError) this.settings.status.ok();
  }

  async shutdown(): Promise<void> {
    this.stopping = true;
    this.closeMetrics?.();
    const running = this.running;
    this.running = undefined;
    await running?.receiver.shutdown?.();
    running?.reporter.detach();
  }

  private probe(): NodeProbes {
    return probeNode(this.deps.files, {
      cgroupPath: this.config.ebpf.cgroup_path,
      cilium: this.config.cilium,
      netns: this.config.netfilter.netns,
    });
  }

  /** Says, in the log and /status, that auto starts `next` because the mode before it failed to start. */
  private fallBack(next: RunnableMode, failed: Failed[], probes: NodeProbes): void {
    const last = failed[failed.length - 1];
    const idle = next === 'netfilter' ? idleConntrack(probes) : undefined;
    this.facts = {
      mode: next,
      reason: `${this.facts.reason}; but the ${last.from} receiver failed to start, and ${USABLE[next]}: ${probes[next].found}${idle ? `. But ${idle}` : ''}`,
      probes,
      fallback: [...failed],
    };
    const what =
      failed.length === 1
        ? `mode auto chose ${last.from}, whose receiver failed to start`
        : `mode auto fell back to ${last.from}, whose receiver failed to start too`;
    this.settings.logger.warn(
      { mode: next, fallback: last },
      `${what} (${last.error}): falling back to ${next}${next === 'netfilter' ? ' (conntrack)' : ''}${idle ? `. But ${idle}` : ''}`,
    );
  }

  /** Why auto could not start anything: each receiver it started and its error, and the modes it could not try. */
  private autoFailure(choice: AutoChoice, probes: NodeProbes, failed: Failed[]): string {
    const [first, second, third] = failed;
    let message: string;
    if (!second)
      message = `mode: auto chose ${first.from} (${choice.reason}), which cannot start: ${first.error}`;
    else {
      message = `mode: auto: the ${first.from} receiver failed to start (${first.error}), and so did the ${second.from} one it fell back to`;
      message += third
        ? ` (${second.error}), and the ${third.from} one after it: ${third.error}`
        : `: ${second.error}`;
    }
    if (this.stopping) return message;
    const after = AUTO_ORDER.slice(AUTO_ORDER.indexOf(first.from) + 1).filter((m) => !probes[m].usable);
    if (after.length === 0) return message;
    return `${message}; ${after.map((m) => `${m} is not usable either (${probes[m].found})`).join('; ')}. ${NOTHING_USABLE_ADVICE}`;
  }

  /** Makes and starts the mode's receiver; on failure shuts it down, cuts it off, and rethrows. */
  private async run(mode: RunnableMode): Promise<void> {
    const reporter = innerReporter(this.settings.status);
    const settings: ComponentSettings = {
      ...this.settings,
      logger: this.settings.logger.child({ mode }),
      status: reporter,
    };
    const receiver = await this.create(mode, settings);
    if (this.stopping) {
      // Shut down while the factory loaded the receiver: it never starts.
      await receiver.shutdown?.();
      reporter.detach();
      throw new Error('shut down while starting');
    }
    this.running = { mode, receiver, reporter };
    try {
      await receiver.start?.();
    } catch (err) {
      this.running = undefined;
      try {
        await receiver.shutdown?.();
      } catch (stopErr) {
        this.settings.logger.warn(
          { mode, err: errorMessage(stopErr) },
          'the receiver that failed to start also failed to shut down',
        );
      }
      reporter.detach();
      throw err;
    }
  }

  private async create(mode: RunnableMode, settings: ComponentSettings): Promise<Receiver> {
    const { factories } = this.deps;
    switch (mode) {
      case 'cilium':
        // auto reads Cilium's maps only where they count bytes: with Cilium's accounting off (its
        // default since 1.15) it moves on to ebpf or netfilter.
        return factories.cilium.create(
          settings,
          this.config.mode === 'auto'
            ? { ...this.config.cilium, require_counters: true }
            : this.config.cilium,
          this.next,
        );
      case 'ebpf':
        return factories.ebpf.create(settings, this.config.ebpf, this.next);
      case 'netfilter':
        return factories.netfilter.create(settings, this.config.netfilter, this.next);
    }
  }

  /** After a named mode failed: what the probes say about the others, which netmon will not switch to. */
  private otherModes(failed: RunnableMode): string {
    const probes = this.probe();
    const others = AUTO_ORDER.filter((m) => m !== failed);
    const usable = others.filter((m) => probes[m].usable);
    const verdict =
      usable.length === 0
        ? others.map((m) => `${m} does not look usable either (${probes[m].found})`).join('; ')
        : `${usable
            .map(
              (m, i) => `${i === 0 ? `${m} looks usable on this node` : `so does ${m}`} (${probes[m].found})`,
            )
            .join(', and ')}: set mode: ${usable.join(' or mode: ')}, or auto to let netmon pick`;
    return `netmon does not switch to another mode by itself; ${verdict}`;
  }
}

function innerReporter(status: StatusReporter): InnerReporter {
  let attached = true;
  let reportedError = false;
  let facts: (() => Record<string, unknown>) | undefined;
  const error = (report: (err: unknown) => void) => (err: unknown) => {
    if (!attached) return;
    reportedError = true;
    report(err);
  };
  return {
    ok: () => {
      if (attached) status.ok();
    },
    recoverableError: error((e) => status.recoverableError(e)),
    permanentError: error((e) => status.permanentError(e)),
    fatalError: error((e) => status.fatalError(e)),
    describe: (f) => {
      if (attached) facts = f;
    },
    detach: () => {
      attached = false;
      facts = undefined;
    },
    get reportedError() {
      return reportedError;
    },
    facts: () => facts?.() ?? {},
  };
}
