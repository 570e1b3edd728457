// Orderings between dumps and events that the kernel produces on its own: a dump reaps expired entries
// and emits their DESTROY while it runs, so the snapshot that no longer lists a connection and the event
// with its final counters race to the pipeline. The receiver and the delta processor run in-process here,
// in the order the pipeline would run them. Root only.
import { type FlowBatch, FlowFlags } from '@netmon/core';
import { testSettings } from '@netmon/core/testkit';
import { deltaProcessorFactory } from '@netmon/processors';
import { type ConntrackReceiver, conntrackReceiverFactory } from '@netmon/receivers';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { privileged, sh } from '../harness/netns.js';

describe.runIf(privileged())('dumps racing events', () => {
  let ns: string;
  let n = 0;
  const inNs = (cmd: string, args: string[]) => sh('ip', ['netns', 'exec', ns, cmd, ...args]);
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  beforeEach(async () => {
    ns = `nmrace${process.pid.toString(36)}${n++}`;
    await sh('ip', ['netns', 'add', ns]);
    await inNs('ip', ['link', 'set', 'lo', 'up']);
    await inNs('sysctl', ['-qw', 'net.netfilter.nf_conntrack_acct=1', 'net.netfilter.nf_conntrack_events=1']);
    await inNs('sysctl', ['-qw', 'net.netfilter.nf_conntrack_udp_timeout=1']);
    await inNs('nft', [
      'add table inet t; add chain inet t out { type filter hook output priority 0; }; add rule inet t out ct state new',
    ]);
  });
  afterEach(async () => {
    await sh('ip', ['netns', 'del', ns]).catch(() => {});
  });

  /** Receiver → delta, batch by batch in arrival order; sums what delta emits and what DESTROYs said. */
  async function pipeline(config: Record<string, unknown>) {
    const delta = await deltaProcessorFactory.create(
      testSettings('processor', 'delta'),
      deltaProcessorFactory.config.parse({}),
      'flows',
    );
    const emitted = new Map<number, number>();
    const finals = new Map<number, number>();
    const families: number[] = [];
    let chain = Promise.resolve();
    const sink = {
      consume(b: FlowBatch) {
        for (let i = 0; i < b.length; i++) {
          families.push(b.family[i]);
          if (b.flags[i] & FlowFlags.Closed) finals.set(b.srcPort[i], b.txBytes[i]);
        }
        chain = chain.then(async () => {
          const out = (await delta.process(b.seal())) as FlowBatch | null;
          for (let i = 0; i < (out?.length ?? 0); i++) {
            emitted.set(out!.srcPort[i], (emitted.get(out!.srcPort[i]) ?? 0) + out!.txBytes[i]);
          }
        });
      },
      ready: () => Promise.resolve(),
    };
    const receiver = (await conntrackReceiverFactory.create(
      testSettings('receiver', 'conntrack'),
      conntrackReceiverFactory.config.parse({ netns: `/run/netns/${ns}`, ...config }),
      sink,
    )) as ConntrackReceiver;
    await delta.start?.();
    receiver.start();
    return {
      emitted,
      finals,
      families,
      async stop() {
        await receiver.shutdown();
        await chain;
        await delta.shutdown?.();
      },
    };
  }

  const udp = (count: number, firstPort: number, rounds: number, gapS: number) =>
    inNs('python3', [
      '-c',
      `import socket, time
socks = []
for i in range(${count}):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", ${firstPort} + i)); socks.append(s)
for k in range(${rounds}):
    for s in socks: s.sendto(b"x" * 1000, ("127.0.0.1", 9))
    time.sleep(${gapS})`,
    ]);

  it('connections that expire and are reaped by a dump are counted once, exactly', async () => {
    const p = await pipeline({ read_interval: '300ms' });
    await sleep(300);
    // 30 connections, seen by several dumps while they send, then silent: they expire after 1 s and the
    // next dump reaps them (DESTROY during the dump, absent from its snapshot).
    await udp(30, 41000, 3, 0.4);
    await sleep(2500);
    await p.stop();
    expect(p.finals.size).toBe(30);
    for (const [port, final] of p.finals) expect(p.emitted.get(port), `port ${port}`).toBe(final);
  });

  it('connections older than the agent that its first dump reaps are not reported', async () => {
    await udp(30, 42000, 1, 0);
    await sleep(1500); // expired, not yet reaped: the agent's first dump will reap them
    const p = await pipeline({ read_interval: '5s' });
    await sleep(800);
    await p.stop();
    // The kernel's own garbage collector may reap some first (it runs on its own schedule, sooner on a
    // busy machine): those the agent never sees. Whatever it saw end, none of their bytes is reported.
    expect(p.finals.size).toBeLessThanOrEqual(30);
    expect([...p.emitted.values()].reduce((a, b) => a + b, 0)).toBe(0);
  });

  it('families applies to events too', async () => {
    const p = await pipeline({ read_interval: '500ms', families: ['ipv4'] });
    await sleep(200);
    await inNs('python3', [
      '-c',
      'import socket\ns=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM);s.sendto(b"hi",("::1",9999))',
    ]);
    await inNs('python3', [
      '-c',
      'import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.sendto(b"hi",("127.0.0.1",9999))',
    ]);
    await inNs('conntrack', ['-D', '-f', 'ipv6']);
    await sleep(600);
    await p.stop();
    expect(p.families).toContain(4);
    expect(p.families).not.toContain(6);
  });
});
