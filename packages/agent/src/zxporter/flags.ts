// zxporter-netmon's command line (github.com/devzero-inc/zxporter, cmd/zxporter-netmon/main.go), read as
// netmon's: an install that swaps zxporter-netmon's image for netmon's keeps its container args and env.
// Go's flag package takes `-name=value`, `-name value`, and the same with two dashes; a bool flag alone
// means true. Commander only knows `--name`, so the single-dash spellings are rewritten before it parses.

/** The flags, in zxporter-netmon's spelling, with what each means here (the help text of `netmon run`). */
export const ZXPORTER_FLAGS = {
  'collector-mode': {
    value: '<mode>',
    help: 'collection mode: netfilter (conntrack), ebpf, cilium, or auto (netmon probes the node); honoured exactly',
  },
  'read-interval': { value: '<duration>', help: 'how often flows are read, e.g. 5s' },
  'cleanup-interval': {
    value: '<duration>',
    help: 'accepted and ignored: netmon forgets a connection when the kernel does, not on a timer',
  },
  'metrics-bind-address': {
    value: '<address>',
    help: 'where /metrics (JSON), /healthz, /readyz and /status are served, e.g. :8081 (every interface) or 10.0.0.5:8081',
  },
  standalone: { value: '[bool]', help: 'no Kubernetes API: flows keep their addresses, without pods' },
  'metrics-kubeconfig': { value: '<file>', help: 'kubeconfig to reach the API from outside the cluster' },
} as const;

export type ZxporterFlag = keyof typeof ZXPORTER_FLAGS;
const NAMES = Object.keys(ZXPORTER_FLAGS) as ZxporterFlag[];
const FLAG = /^--?([a-z-]+)(=.*)?$/s;

/** The zxporter flag `arg` spells (`-collector-mode=x`, `--standalone`), or undefined. */
function zxporterFlag(arg: string): ZxporterFlag | undefined {
  const name = FLAG.exec(arg)?.[1];
  return NAMES.find((n) => n === name);
}

/**
 * The arguments (after `node netmon.js`) in the form commander parses: `-collector-mode=x` becomes
 * `--collector-mode=x`; and a command line that names no command (`commands`) but one of zxporter-netmon's
 * flags, as its container args do (`-collector-mode=netfilter`), runs the agent: `run` goes in front.
 */
export function normalizeArgs(args: readonly string[], commands: readonly string[]): string[] {
  const out: string[] = [];
  for (const arg of args) {
    if (arg === '--') {
      out.push(...args.slice(out.length));
      break;
    }
    out.push(zxporterFlag(arg) && !arg.startsWith('--') ? `-${arg}` : arg);
  }
  const end = out.indexOf('--');
  const before = end < 0 ? out : out.slice(0, end);
  const zxporter = before.some((a) => zxporterFlag(a) !== undefined || a === '--zxporter');
  if (zxporter && !before.some((a) => commands.includes(a))) out.unshift('run');
  return out;
}

/** The collection modes `-collector-mode` takes, and the names zxporter-netmon's docs and help also use. */
const MODES: Record<string, string> = {
  netfilter: 'netfilter',
  ebpf: 'ebpf',
  cilium: 'cilium',
  auto: 'auto',
  // netmon's receiver of netfilter's connection table is named conntrack; zxporter's help text says bpf.
  conntrack: 'netfilter',
  bpf: 'ebpf',
};

/** netfilter, ebpf, cilium or auto for what the user wrote, or a message saying what is accepted. */
export function collectionMode(value: string): { mode: string } | { error: string } {
  const mode = MODES[value.trim().toLowerCase()];
  if (mode) return { mode };
  return {
    error: `-collector-mode=${value}: expected netfilter (also conntrack), ebpf (also bpf), cilium, or auto (netmon probes the node and says what it chose)`,
  };
}

/** Go's strconv.ParseBool, which zxporter-netmon's `-standalone=<value>` goes through. */
export function parseBool(value: string | boolean): boolean | undefined {
  if (typeof value === 'boolean') return value;
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(value)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(value)) return false;
  return undefined;
}
