// Stand-ins for the conntrack, ebpf and cilium receivers, made through factories that keep the real ones' type,
// schema and metrics: they record what the wrapper gave them (settings, config) and use it the way the
// real receivers do (status facts, a self-metric, a log line, a batch), and their start can fail.
import {
  type BatchSink,
  type ComponentSettings,
  defineReceiver,
  type MetricDeclaration,
  observeMetrics,
  type Receiver,
  type ReceiverFactory,
} from '@netmon/core';
import { sampleFlows } from '@netmon/core/testkit';
import { ciliumReceiverFactory } from '../../cilium/factory.js';
import { CILIUM_METRICS } from '../../cilium/metrics.js';
import { conntrackReceiverFactory } from '../../conntrack/factory.js';
import { CONNTRACK_METRICS } from '../../conntrack/metrics.js';
import { ebpfReceiverFactory } from '../../ebpf/factory.js';
import { EBPF_METRICS } from '../../ebpf/metrics.js';

export interface FakeBehaviour {
  /** The start rejects with it. */
  startError?: Error;
  /** Reported as a recoverable error before the start fails (as a receiver may while it tries). */
  reportBeforeFailing?: boolean;
}

export class FakeReceiver implements Receiver {
  started = false;
  shutdowns = 0;
  private unobserve?: () => void;

  constructor(
    readonly type: string,
    readonly settings: ComponentSettings,
    readonly config: unknown,
    private readonly next: BatchSink,
    private readonly behaviour: FakeBehaviour,
    private readonly reads: MetricDeclaration,
  ) {}

  async start(): Promise<void> {
    const { settings } = this;
    settings.status.describe(() => ({ receiver_fact: `${this.type} is here` }));
    this.unobserve = observeMetrics(settings.meter, { reads: this.reads }, (r) => r.reads(7)).close;
    if (this.behaviour.startError) {
      if (this.behaviour.reportBeforeFailing) settings.status.recoverableError(this.behaviour.startError);
      throw this.behaviour.startError;
    }
    settings.logger.info(`${this.type} receiver started`);
    this.started = true;
    const batch = sampleFlows();
    batch.origin = settings.id;
    this.next.consume(batch);
  }

  shutdown(): void {
    this.shutdowns++;
    this.unobserve?.();
    this.unobserve = undefined;
  }
}

/** A factory like `real` (type, schema, checks, metrics) that makes FakeReceivers, keeping each it made. */
export function fakeFactory<C>(
  real: ReceiverFactory<C>,
  behaviour: FakeBehaviour = {},
): ReceiverFactory<C> & { made: FakeReceiver[] } {
  const made: FakeReceiver[] = [];
  const reads =
    real.type === 'ebpf'
      ? EBPF_METRICS.reads
      : real.type === 'cilium'
        ? CILIUM_METRICS.reads
        : CONNTRACK_METRICS.reads;
  const factory = defineReceiver<C>({
    ...real,
    create: (settings, config, next) => {
      const r = new FakeReceiver(real.type, settings, config, next, behaviour, reads);
      made.push(r);
      return r;
    },
  });
  return Object.assign(factory, { made });
}

export function fakeFactories(
  behaviour: { netfilter?: FakeBehaviour; ebpf?: FakeBehaviour; cilium?: FakeBehaviour } = {},
) {
  return {
    netfilter: fakeFactory(conntrackReceiverFactory, behaviour.netfilter),
    ebpf: fakeFactory(ebpfReceiverFactory, behaviour.ebpf),
    cilium: fakeFactory(ciliumReceiverFactory, behaviour.cilium),
  };
}
