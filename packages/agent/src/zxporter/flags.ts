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

/** What normalizeArgs needs to know of a command (commander's Command has it): its name and options. */
export interface CommandShape {
  name(): string;
  readonly options: readonly { short?: string; long?: string; required: boolean }[];
}

/** The arguments commander is to parse, and the first option to report as unknown before it does. */
export interface NormalizedArgs {
  args: string[];
  /** An option of `command` that commander would misread or not explain, as typed, and the option meant. */
  unknown?: { command: string; arg: string; suggestion?: string };
}

/**
 * The arguments (after `node netmon.js`) in the form commander parses. `-collector-mode=x` becomes
 * `--collector-mode=x` where the command takes `--collector-mode` (run, validate), and nowhere else: a command
 * that does not take it then reports the option as it was typed. A command line that starts with an option
 * and has one of zxporter-netmon's flags but no command, as its container args (`-collector-mode=netfilter`),
 * runs the agent: `run` goes in front.
 */
export function normalizeArgs(args: readonly string[], commands: readonly CommandShape[]): NormalizedArgs {
  const end = args.indexOf('--');
  const head = end < 0 ? args : args.slice(0, end);
  const tail = end < 0 ? [] : args.slice(end);
  const named = commands.find((c) => c.name() === head[0]);
  if (named) return rewrite(head.slice(1), named, [head[0]], tail);
  // `netmon`, `netmon foo`, `netmon help …`: commander says what they mean.
  const run = commands.find((c) => c.name() === 'run');
  if (!run || head.length === 0 || !head[0].startsWith('-')) return { args: [...args] };
  const zxporter = head.some((a) => zxporterFlag(a) !== undefined || a === '--zxporter');
  // A command further on (`-standalone validate`) is not one Go's flag package could mean: commander then
  // reports the options before it as the program's, as typed.
  const read = rewrite(head, run, [], []).args;
  const later = read.some((a, i) => commands.some((c) => c.name() === a) && !takesValue(run, read[i - 1]));
  if (later) return { args: [...args] };
  if (!zxporter) {
    // Container args with a typo in one of zxporter-netmon's flags (`-colector-mode=ebpf`): no command
    // follows, so commander would only call it unknown; say which flag was meant.
    for (const arg of head) {
      const [, dashes, name] = LONG.exec(arg) ?? [];
      const suggestion = name ? suggest(name, dashes, NAMES) : undefined;
      if (suggestion) return { args: [...args], unknown: { command: '', arg, suggestion } };
    }
    return { args: [...args] };
  }
  return rewrite(head, run, ['run'], tail);
}

/** Whether `arg` is an option of `command` whose value is the next argument (`-c`, `--log-level`). */
function takesValue(command: CommandShape, arg: string | undefined): boolean {
  return arg !== undefined && command.options.some((o) => o.required && (o.short === arg || o.long === arg));
}

// `-name` and `-name=value` (Go's long flags; commander reads `-cfoo` as `-c foo`), and `--name=value`.
const LONG = /^(--?)([a-z][a-z-]*[a-z])(=.*)?$/s;

/**
 * `args` of `command` with its zxporter flags spelled as commander reads them, after `prefix` and before
 * `tail`. The value of an option that takes one is left as typed (`-metrics-kubeconfig -standalone` names a
 * file, as in Go). The first option the command would misread (`-colector-mode=ebpf` as
 * `-c olector-mode=ebpf`, `-config a.yaml`), or call unknown without saying what was meant (`-standalon`,
 * `--colector-mode=ebpf`), is returned as unknown, with the nearest option.
 */
function rewrite(
  args: readonly string[],
  command: CommandShape,
  prefix: string[],
  tail: readonly string[],
): NormalizedArgs {
  const out = [...prefix];
  const longs = command.options.flatMap((o) => (o.long ? [o.long.slice(2)] : []));
  let unknown: NormalizedArgs['unknown'];
  for (let i = 0; i < args.length; i++) {
    let arg = args[i];
    const flag = zxporterFlag(arg);
    if (flag && !arg.startsWith('--') && longs.includes(flag)) arg = `-${arg}`;
    else if (!unknown && !flag) {
      const [, dashes, name, value] = LONG.exec(arg) ?? [];
      const suggestion = name ? suggest(name, dashes, longs) : undefined;
      // Where the command has `-c`, commander reads `-cfoo` as `-c foo`: there only a name with a dash, a value
      // after `=` or one of the command's long names (`-config`) is taken for a Go-style long option.
      // Elsewhere commander calls it unknown too, but says what was meant only for `--name` without a value.
      const misread = dashes === '-' && command.options.some((o) => o.short === arg.slice(0, 2));
      if (
        name &&
        !(dashes === '--' && longs.includes(name)) &&
        (misread
          ? name.includes('-') || value !== undefined || longs.includes(name)
          : suggestion !== undefined && (dashes === '-' || value !== undefined))
      ) {
        unknown = { command: command.name(), arg, suggestion };
      }
    }
    out.push(arg);
    if (takesValue(command, arg) && i + 1 < args.length) out.push(args[++i]);
  }
  out.push(...tail);
  return unknown ? { args: out, unknown } : { args: out };
}

/**
 * The option `name` most likely meant, as it is to be typed: zxporter-netmon's flags with the `dashes` the
 * user wrote, netmon's own with two. Near means at most a third of its letters differ.
 */
function suggest(name: string, dashes: string, longs: readonly string[]): string | undefined {
  let best: { long: string; d: number } | undefined;
  for (const long of longs) {
    const d = distance(name, long);
    if (d <= Math.floor(long.length / 3) && (!best || d < best.d)) best = { long, d };
  }
  if (!best) return undefined;
  return `${(NAMES as string[]).includes(best.long) ? dashes : '--'}${best.long}`;
}

/** Levenshtein distance. */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++)
      row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length];
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
