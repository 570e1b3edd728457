// The kernel receivers through the conformance suite every component passes (start → shutdown leaves
// no handles, timers, threads' handles or fds behind): conntrack on a namespace of its own so the host's
// sysctls are never touched, ebpf and dns on cgroups of their own. Root only.
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmdirSync } from 'node:fs';
import path from 'node:path';
import { describeConformance } from '@netmon/core/testkit';
import { conntrackReceiverFactory, dnsReceiverFactory, ebpfReceiverFactory } from '@netmon/receivers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attachedPrograms, cgroup2Root } from '../harness/cgroup.js';
import { privileged } from '../harness/netns.js';

const ok = privileged();

describe.runIf(ok)('conntrack receiver', () => {
  if (!ok) {
    // The body runs at collection even when skipped: set nothing up without root.
    it.skip('needs root', () => {});
    return;
  }
  // The suite takes its config (the namespace's path) when it is defined; the namespace itself is made
  // before its tests run, so a run that filters them out (-t) leaves nothing behind.
  const ns = `nmconf${process.pid.toString(36)}`;
  beforeAll(() => {
    execFileSync('ip', ['netns', 'add', ns]);
    execFileSync('ip', [
      'netns',
      'exec',
      ns,
      'nft',
      'add table inet t; add chain inet t c { type filter hook output priority 0; }; add rule inet t c ct state new',
    ]);
  });
  afterAll(() => {
    execFileSync('ip', ['netns', 'del', ns]);
  });

  describeConformance(conntrackReceiverFactory, {
    config: { netns: `/run/netns/${ns}`, read_interval: '100ms' },
    runMs: 350,
  });
});

describe.runIf(ok)('ebpf receiver', () => {
  if (!ok) {
    it.skip('needs root', () => {});
    return;
  }
  // A cgroup of its own (made when the tests run, removed after): the real programs attach to it and the
  // suite checks that shutdown leaves no handle, timer or fd — and no program attached.
  const cgroup = path.join(cgroup2Root(), `netmon-conformance-${process.pid}`);
  beforeAll(() => mkdirSync(cgroup));
  afterAll(async () => {
    // The cgroup goes whatever the check finds: a failed assertion must not leave it behind.
    let left: Awaited<ReturnType<typeof attachedPrograms>>;
    try {
      left = await attachedPrograms(cgroup);
    } finally {
      rmdirSync(cgroup);
    }
    expect(left).toEqual([]);
  });

  describeConformance(ebpfReceiverFactory, {
    config: { cgroup_path: cgroup, read_interval: '100ms' },
    runMs: 350,
  });
});

describe.runIf(ok)('dns receiver', () => {
  if (!ok) {
    it.skip('needs root', () => {});
    return;
  }
  // As for ebpf: the DNS tracer's programs and ring buffer on a cgroup of its own, gone after shutdown.
  const cgroup = path.join(cgroup2Root(), `netmon-conformance-dns-${process.pid}`);
  beforeAll(() => mkdirSync(cgroup));
  afterAll(async () => {
    let left: Awaited<ReturnType<typeof attachedPrograms>>;
    try {
      left = await attachedPrograms(cgroup);
    } finally {
      rmdirSync(cgroup);
    }
    expect(left).toEqual([]);
  });

  describeConformance(dnsReceiverFactory, {
    config: { cgroup_path: cgroup, read_interval: '100ms' },
    runMs: 350,
  });
});
