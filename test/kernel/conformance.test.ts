// The conntrack receiver through the conformance suite every component passes (start → shutdown leaves
// no handles, timers, threads' handles or fds behind), on a namespace of its own so the host's sysctls
// are never touched. Root only.
import { execFileSync } from 'node:child_process';
import { describeConformance } from '@netmon/core/testkit';
import { conntrackReceiverFactory } from '@netmon/receivers';
import { afterAll, beforeAll, describe, it } from 'vitest';
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
