// Kernel test kit: two network namespaces joined by a veth pair, conntrack switched on in them, and
// `conntrack -L` as the oracle. Needs root; see privileged() for how tests skip or fail without it.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Why kernel tests cannot run here, or null when they can. */
export function kernelSkipReason(): string | null {
  if (process.platform !== 'linux') return `kernel tests need Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return 'kernel tests need root (network namespaces, conntrack)';
  return null;
}

/**
 * Whether kernel tests run. Without the privilege they skip with the reason — unless
 * NETMON_REQUIRE_PRIVILEGED=1 (CI), where a missing privilege is a failure, never a silent skip.
 */
export function privileged(): boolean {
  const reason = kernelSkipReason();
  if (reason === null) return true;
  if (process.env.NETMON_REQUIRE_PRIVILEGED === '1') {
    throw new Error(`NETMON_REQUIRE_PRIVILEGED=1 but ${reason}`);
  }
  console.warn(`skipping kernel tests: ${reason}`);
  return false;
}

export async function sh(cmd: string, args: string[]): Promise<string> {
  try {
    const { stdout } = await run(cmd, args, { maxBuffer: 256 << 20 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${e.stderr?.trim() || e.message}`);
  }
}

/** One conntrack entry as `conntrack -L -o id` prints it. */
export interface CtEntry {
  protocol: number;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  txPackets: number;
  txBytes: number;
  rxPackets: number;
  rxBytes: number;
  /** Reply source (the real backend after DNAT). */
  replySrc: string;
  replySport: number;
  id: number;
}

/** Parses `conntrack -L -o id` lines (key=value pairs; the first src/dst/… are the original tuple). */
export function parseConntrackList(text: string): CtEntry[] {
  const entries: CtEntry[] = [];
  for (const line of text.split('\n')) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 4) continue;
    const kv: Record<string, string[]> = {};
    for (const f of fields) {
      const eq = f.indexOf('=');
      if (eq <= 0) continue;
      const k = f.slice(0, eq);
      kv[k] ??= [];
      kv[k].push(f.slice(eq + 1));
    }
    if (!kv.src) continue;
    const num = (k: string, i: number) => Number(kv[k]?.[i] ?? 0);
    // ICMP: our addon reports id as the source port and type<<8|code as the destination port.
    const icmp = kv.type !== undefined;
    entries.push({
      // `-o extended` starts with the family (`ipv4 2 tcp 6 …`), plain output with the protocol.
      protocol: Number(fields[0].startsWith('ipv') ? fields[3] : fields[1]),
      src: kv.src[0],
      dst: kv.dst[0],
      sport: icmp ? num('id', 0) : num('sport', 0),
      dport: icmp ? (num('type', 0) << 8) | num('code', 0) : num('dport', 0),
      txPackets: num('packets', 0),
      txBytes: num('bytes', 0),
      rxPackets: num('packets', 1),
      rxBytes: num('bytes', 1),
      replySrc: kv.src[1],
      replySport: icmp ? num('id', 1) : num('sport', 1),
      // `-o id` appends the conntrack id last (ICMP tuples carry id= fields of their own before it).
      id: Number(kv.id?.at(-1) ?? 0),
    });
  }
  return entries;
}

let counter = 0;

/**
 * Two namespaces, `a` (server: 10.200.0.1, fd00:200::1) and `b` (client: 10.200.0.2, fd00:200::2), on a
 * veth pair. Conntrack tracks in `b` (one nft rule), with accounting and events on.
 */
export class NetnsPair {
  readonly a: string;
  readonly b: string;
  readonly ipA = '10.200.0.1';
  readonly ipB = '10.200.0.2';
  readonly ip6A = 'fd00:200::1';
  readonly ip6B = 'fd00:200::2';
  private readonly children = new Set<ChildProcess>();

  private constructor(prefix: string) {
    const id = `${process.pid.toString(36)}${(counter++).toString(36)}`;
    this.a = `${prefix}a${id}`;
    this.b = `${prefix}b${id}`;
  }

  static async create(prefix = 'nm'): Promise<NetnsPair> {
    const p = new NetnsPair(prefix);
    try {
      await p.setup();
    } catch (err) {
      await p.destroy();
      throw err;
    }
    return p;
  }

  /** /run/netns path of a namespace, for the receiver's `netns` option. */
  path(ns: string): string {
    return `/run/netns/${ns}`;
  }

  private async setup(): Promise<void> {
    await sh('ip', ['netns', 'add', this.a]);
    await sh('ip', ['netns', 'add', this.b]);
    const va = `v${this.a}`.slice(0, 15);
    const vb = `v${this.b}`.slice(0, 15);
    await sh('ip', ['link', 'add', va, 'netns', this.a, 'type', 'veth', 'peer', 'name', vb, 'netns', this.b]);
    for (const [ns, dev, ip, ip6] of [
      [this.a, va, this.ipA, this.ip6A],
      [this.b, vb, this.ipB, this.ip6B],
    ]) {
      await this.exec(ns, 'ip', ['addr', 'add', `${ip}/24`, 'dev', dev]);
      await this.exec(ns, 'ip', ['-6', 'addr', 'add', `${ip6}/64`, 'dev', dev, 'nodad']);
      await this.exec(ns, 'ip', ['link', 'set', dev, 'up']);
      await this.exec(ns, 'ip', ['link', 'set', 'lo', 'up']);
    }
    // Accounting and events before any traffic; short UDP/ICMP timeouts keep tests quick.
    await this.sysctl(this.b, {
      'net.netfilter.nf_conntrack_acct': '1',
      'net.netfilter.nf_conntrack_events': '1',
    });
    await this.exec(this.b, 'nft', [
      'add table inet netmon_test; add chain inet netmon_test out { type filter hook output priority 0; }; add rule inet netmon_test out ct state new',
    ]);
  }

  async sysctl(ns: string, values: Record<string, string>): Promise<void> {
    for (const [k, v] of Object.entries(values)) await this.exec(ns, 'sysctl', ['-qw', `${k}=${v}`]);
  }

  exec(ns: string, cmd: string, args: string[]): Promise<string> {
    return sh('ip', ['netns', 'exec', ns, cmd, ...args]);
  }

  /** A long-running process in a namespace, killed by destroy(). */
  spawn(ns: string, cmd: string, args: string[]): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.add(child);
    child.on('exit', () => this.children.delete(child));
    return child;
  }

  /** The oracle: the conntrack table of `ns` as the conntrack tool reads it. */
  async conntrack(ns: string, family: 'ipv4' | 'ipv6' = 'ipv4'): Promise<CtEntry[]> {
    return parseConntrackList(await this.exec(ns, 'conntrack', ['-L', '-f', family, '-o', 'id']));
  }

  async destroy(): Promise<void> {
    for (const child of this.children) {
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r)).catch(() => {});
    }
    for (const ns of [this.a, this.b]) await sh('ip', ['netns', 'del', ns]).catch(() => {});
  }
}

/** test/testdata/traffic.py: the traffic generator the kernel tests run inside their namespaces. */
export const TRAFFIC = new URL('../testdata/traffic.py', import.meta.url).pathname;

/**
 * Starts the servers of namespace `a`: HTTP on port 8080 serving `dir` and a UDP echo on 5353, both on
 * IPv4 and IPv6. They live until `net.destroy()`.
 */
export async function startServers(net: NetnsPair, dir: string): Promise<void> {
  const http = net.spawn(net.a, 'python3', [TRAFFIC, 'serve-http', dir, '::', '8080']);
  await waitForOutput(http, /listening/);
  const udp = net.spawn(net.a, 'python3', [TRAFFIC, 'udp-echo', '::', '5353']);
  await waitForOutput(udp, /listening/);
}

/** Resolves when `child` prints a line matching `re` on stdout or stderr. */
export function waitForOutput(child: ChildProcess, re: RegExp, timeoutMs = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${re} in: ${seen}`)), timeoutMs);
    const on = (d: Buffer) => {
      seen += d;
      if (re.test(seen)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on('data', on);
    child.stderr?.on('data', on);
  });
}
