// The conformance suite on the flows receiver, with the real conntrack and cilium receivers on stand-ins
// for the kernel (no privilege needed) and a made-up node: auto choosing netfilter, ebpf or cilium, and
// auto falling back from an ebpf or a cilium receiver that fails to start. The kernel runs of the real
// modes are in test/kernel/.
import { defineReceiver } from '@netmon/core';
import { describeConformance } from '@netmon/core/testkit';
import { ciliumReceiverFactory } from '../cilium/factory.js';
import { CiliumReceiver } from '../cilium/receiver.js';
import { conntrackReceiverFactory } from '../conntrack/factory.js';
import { ConntrackReceiver } from '../conntrack/receiver.js';
import { dumpResult, FakeKernel } from '../conntrack/testdata/fake-kernel.js';
import { makeFlowsReceiverFactory } from './factory.js';
import { fakeCiliumKernel } from './testdata/fake-cilium.js';
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

/** The shipped cilium factory, its receiver on a stand-in for the addon whose maps hold one connection. */
const ciliumOnFakeMaps = defineReceiver({
  ...ciliumReceiverFactory,
  create: (settings, config, next) =>
    new CiliumReceiver(
      settings,
      config,
      next,
      fakeCiliumKernel(config.maps_dir, [
        { opener: ['10.0.1.5', 40000], answerer: ['10.0.2.7', 443], tx: 1500, rx: 9000 },
      ]),
    ),
});

const flows = (node: FakeNodeOptions, fails: { ebpf?: boolean; cilium?: boolean } = {}) => {
  const fakes = fakeFactories({
    ebpf: fails.ebpf ? { startError: new Error('EPERM') } : {},
    cilium: fails.cilium ? { startError: new Error('no Cilium conntrack map') } : {},
  });
  return makeFlowsReceiverFactory(
    {
      netfilter: conntrackOnFakeKernel,
      ebpf: fakes.ebpf,
      cilium: fails.cilium ? fakes.cilium : ciliumOnFakeMaps,
    },
    { files: fakeNode(node) },
  );
};

describeConformance(flows({ cgroup2: false }), { runMs: 50, expectItems: 1 });
describeConformance(flows({}), { runMs: 20, expectItems: 2 });
describeConformance(flows({}, { ebpf: true }), { runMs: 50, expectItems: 1 });
describeConformance(flows({ cilium: ['ct4', 'ct6'] }), { runMs: 50, expectItems: 1 });
describeConformance(flows({ cilium: ['ct4'] }, { cilium: true }), { runMs: 20, expectItems: 2 });
