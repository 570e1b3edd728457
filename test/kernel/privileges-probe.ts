// One kernel operation of a collection mode, done straight through the native addon and printed as one
// JSON line: {"op", "ok", "error", "capEff"}. test/kernel/privileges.test.ts runs it inside an emulated
// container (privileges-container.sh) to see what the kernel itself refuses without a capability, beneath
// the agent's own checks (which refuse to start earlier, with a message, when CapEff lacks one).
//   node test/kernel/privileges-probe.ts conntrack-dump
//   node test/kernel/privileges-probe.ts conntrack-events
//   node test/kernel/privileges-probe.ts flows-attach CGROUP
//   node test/kernel/privileges-probe.ts dns-attach CGROUP
//   node test/kernel/privileges-probe.ts pinned-read PIN KEY_SIZE VALUE_SIZE
// Run by Node's own TypeScript support; the addon comes from the build (native/dist, native/build).
import { readFileSync } from 'node:fs';
import {
  attachCgroupDns,
  attachCgroupFlows,
  openConntrack,
  readPinnedMap,
  subscribeConntrackEvents,
} from '@netmon/native';

const [op, ...args] = process.argv.slice(2);

async function run(): Promise<void> {
  switch (op) {
    case 'conntrack-dump': {
      const h = openConntrack();
      try {
        await h.dump(0, null);
      } finally {
        h.close();
      }
      return;
    }
    case 'conntrack-events': {
      // The bind to the event groups and SO_RCVBUFFORCE happen in the constructor.
      const h = subscribeConntrackEvents(
        { newEvents: true, receiveBuffer: 1 << 20, batchSize: 64, flushMs: 50 },
        () => {},
      );
      h.close();
      return;
    }
    case 'flows-attach': {
      const h = attachCgroupFlows({ cgroupPath: args[0], maxFlows: 1024 });
      try {
        await h.read();
      } finally {
        h.close();
      }
      return;
    }
    case 'dns-attach': {
      const h = attachCgroupDns({ cgroupPath: args[0], ringBytes: 1 << 16, captureBytes: 512 });
      try {
        await h.read();
      } finally {
        h.close();
      }
      return;
    }
    case 'pinned-read':
      await readPinnedMap({ path: args[0], keySize: Number(args[1]), valueSize: Number(args[2]) });
      return;
    default:
      throw new Error(`unknown operation ${op}`);
  }
}

const capEff = /^CapEff:\s*(\S+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '';
try {
  await run();
  console.log(JSON.stringify({ op, ok: true, capEff }));
} catch (err) {
  console.log(JSON.stringify({ op, ok: false, error: String((err as Error).message ?? err), capEff }));
}
