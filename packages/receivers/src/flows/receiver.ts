import {
  type BatchSink,
  type ComponentSettings,
  errorMessage,
  type Receiver,
  type ReceiverFactory,
  type StatusReporter,
} from '@netmon/core';
import type { ConntrackReceiverConfig } from '../conntrack/config.js';
import { conntrackReceiverFactory } from '../conntrack/factory.js';
import type { EbpfReceiverConfig } from '../ebpf/config.js';
import { ebpfReceiverFactory } from '../ebpf/factory.js';
import type { FlowsReceiverConfig, RunnableMode } from './config.js';
import { chooseAuto, type NodeFiles, type NodeProbes, nodeFiles, probeNode } from './probe.js';

/** What the wrapper builds on: a seam for unit tests (fake node, fake receivers), not reachable from the config. */
export interface FlowsDeps {
  files: NodeFiles;
  factories: {
    netfilter: ReceiverFactory<ConntrackReceiverConfig>;
    ebpf: ReceiverFactory<EbpfReceiverConfig>;
  };
}

export const defaultDeps: FlowsDeps = {
  files: nodeFiles,
  factories: { netfilter: conntrackReceiverFactory, ebpf: ebpfReceiverFactory },
};

const NOTHING_USABLE_ADVICE =
  'Give the agent what one mode needs — ebpf: the host’s cgroup2 mount (or ebpf.cgroup_path naming it), and ' +
  'CAP_BPF with CAP_NET_ADMIN (or CAP_SYS_ADMIN); netfilter: CAP_NET_ADMIN and nf_conntrack loaded ' +
  '(modprobe nf_conntrack), with hostNetwork: true in Kubernetes. Without kernel access, replay recorded flows ' +
  'with the file receiver (configs/examples/replay.yaml)';

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
 * The collection mode as one receiver: it makes the chosen receiver (conntrack or ebpf) through its own
 * factory, with this receiver's settings (logger, meter, status, id as origin), so the wrapped receiver's
 * self-metrics, /status details and logs are this one's. `auto` probes the node first and says what it
 * chose and why; a mode named in the config is never replaced by another.
 */
export class FlowsReceiver implements Receiver {
  private running?: Running;
  private stopping = false;
  /** What /status shows beside the wrapped receiver's own facts. */
  private facts: Record<string, unknown> = {};

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
    const log = this.settings.logger;
    if (mode === 'cilium') {
      this.facts = { mode, reason: 'not available in this version' };
      throw new Error(
        'mode: cilium needs the cilium receiver, which this version of netmon does not have. Available modes: ' +
          'netfilter, ebpf, and auto (which probes the node and picks one of them)',
      );
    }
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

    const probes = probeNode(this.deps.files, { cgroupPath: this.config.ebpf.cgroup_path });
    const choice = chooseAuto(probes);
    if (choice.mode === undefined) {
      this.facts = { mode: 'none', reason: choice.reason, probes };
      throw new Error(`mode: auto: ${choice.reason}. ${NOTHING_USABLE_ADVICE}`);
    }
    this.facts = { mode: choice.mode, reason: choice.reason, probes };
    log.info(
      { mode: choice.mode, reason: choice.reason, probes },
      `mode auto chose ${choice.mode}: ${choice.reason}`,
    );
    try {
      await this.run(choice.mode);
      return;
    } catch (err) {
      // Only auto falls back, and only from ebpf: the kernel refusing the program is what the probes
      // cannot foresee (a verifier, a locked-down kernel, a memlock limit), while conntrack was seen usable.
      if (choice.mode !== 'ebpf' || !probes.netfilter.usable || this.stopping) {
        throw new Error(
          `mode: auto chose ${choice.mode} (${choice.reason}), which cannot start: ${errorMessage(err)}` +
            (choice.mode === 'ebpf' && !this.stopping
              ? `; netfilter is not usable either (${probes.netfilter.found}). ${NOTHING_USABLE_ADVICE}`
              : ''),
        );
      }
      await this.fallBack(err, choice.reason, probes);
    }
  }

  async shutdown(): Promise<void> {
    this.stopping = true;
    const running = this.running;
    this.running = undefined;
    await running?.receiver.shutdown?.();
    running?.reporter.detach();
  }

  private async fallBack(ebpfError: unknown, reason: string, probes: NodeProbes): Promise<void> {
    const error = errorMessage(ebpfError);
    const fallback = { from: 'ebpf', error };
    this.facts = {
      mode: 'netfilter',
      reason: `${reason}; but the ebpf receiver failed to start, and conntrack is usable: ${probes.netfilter.found}`,
      probes,
      fallback,
    };
    this.settings.logger.warn(
      { mode: 'netfilter', fallback },
      `mode auto chose ebpf, whose receiver failed to start (${error}): falling back to netfilter (conntrack)`,
    );
    try {
      await this.run('netfilter');
    } catch (err) {
      throw new Error(
        `mode: auto: the ebpf receiver failed to start (${error}), and so did the netfilter one it fell back to: ${errorMessage(err)}`,
      );
    }
    // The ebpf receiver may have reported an error while it tried; the framework keeps an error reported
    // during start, but the one that replaced it runs.
    if (this.running && !this.running.reporter.reportedError) this.settings.status.ok();
  }

  /** Makes and starts the mode's receiver; on failure shuts it down, cuts it off, and rethrows. */
  private async run(mode: RunnableMode): Promise<void> {
    const reporter = innerReporter(this.settings.status);
    const settings: ComponentSettings = {
      ...this.settings,
      logger: this.settings.logger.child({ mode }),
      status: reporter,
    };
    const receiver =
      mode === 'ebpf'
        ? await this.deps.factories.ebpf.create(settings, this.config.ebpf, this.next)
        : await this.deps.factories.netfilter.create(settings, this.config.netfilter, this.next);
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

  /** After a named mode failed: what the probes say about the other one, which netmon will not switch to. */
  private otherModes(failed: RunnableMode): string {
    const probes = probeNode(this.deps.files, { cgroupPath: this.config.ebpf.cgroup_path });
    const other: RunnableMode = failed === 'ebpf' ? 'netfilter' : 'ebpf';
    const verdict = probes[other].usable
      ? `${other} looks usable on this node (${probes[other].found}): set mode: ${other}, or auto to let netmon pick`
      : `${other} does not look usable either (${probes[other].found})`;
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
