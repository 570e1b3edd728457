// The conformance suite on the flows receiver, with the real conntrack receiver on a stand-in kernel (no
// privilege needed) and a made-up node: auto choosing netfilter, auto choosing ebpf, and auto falling
// back from an ebpf receiver that fails to start. The kernel runs of the real modes are in test/kernel/.
import { defineReceiver } from '@netmon/core';
import { describeConformance } from '@netmon/core/testkit';
import { conntrackReceiverFactory } from '../conntrack/factory.js';
import { ConntrackReceiver } from '../conntrack/receiver.js';
import { dumpResult, FakeKernel } from '../conntrack/testdata/fake-kernel.js';
import { makeFlowsReceiverFactory } from './factory.js';
import { type FakeNodeOptions, fakeNode } from './testdata/fake-node.js';
import { fakeFactories } from './testdata/fake-receivers.js';

/** The shipped conntrack factory, its receiver on a fresh stand-in kernel that holds one connection. */
const conntrackOnFakeKernel = defineReceiver({
  ...conntrackReceiverFactory,
  create: (settings, config, next) => {
    const kernel = new FakeKernel();
    kernel.dumper.fallback = () =>
      dumpResult([{ src: '10.0.0.1', dst: '10.0.0.2', srcPort: 40000, dstPort: 443, tx: 1500, rx: 9000 }]);
    return new ConntrackReceiver(settings, config, next, kernel);
  },
});

const flows = (node: FakeNodeOptions, ebpfFails = false) =>
  makeFlowsReceiverFactory(
    {
      netfilter: conntrackOnFakeKernel,
      ebpf: fakeFactories({ ebpf: ebpfFails ? { startError: new Error('EPERM') } : {} }).ebpf,
    },
    { files: fakeNode(node) },
  );

describeConformance(flows({ cgroup2: false }), { runMs: 50, expectItems: 1 });
describeConformance(flows({}), { runMs: 20, expectItems: 2 });
describeConformance(flows({}, true), { runMs: 50, expectItems: 1 });
