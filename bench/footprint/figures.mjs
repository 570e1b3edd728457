// Pure helpers of run.mjs: the Prometheus text the agent serves, durations, command lines, `times`
// output, and the statistics of the samples. No I/O, so footprint.test.mjs covers them.

/**
 * Parses the Prometheus text exposition format into samples. `only` (a metric-name prefix) skips other
 * lines before their labels are parsed: the flow families can be large.
 */
export function parsePrometheus(text, only) {
  const samples = [];
  for (const line of text.split('\n')) {
    if (line === '' || line[0] === '#') continue;
    if (only && !line.startsWith(only)) continue;
    const brace = line.indexOf('{');
    const space = line.indexOf(' ');
    let name;
    const labels = {};
    let rest;
    if (brace >= 0 && (space < 0 || brace < space)) {
      name = line.slice(0, brace);
      let i = brace + 1;
      while (i < line.length && line[i] !== '}') {
        const eq = line.indexOf('=', i);
        const key = line.slice(i, eq).trim();
        let value = '';
        let j = eq + 2; // after ="
        for (; j < line.length && line[j] !== '"'; j++) {
          if (line[j] === '\\') {
            j++;
            value += line[j] === 'n' ? '\n' : line[j];
          } else {
            value += line[j];
          }
        }
        labels[key] = value;
        i = j + 1;
        if (line[i] === ',') i++;
      }
      rest = line.slice(i + 1).trim();
    } else {
      name = line.slice(0, space);
      rest = line.slice(space + 1).trim();
    }
    const value = Number(rest.split(/\s+/)[0]);
    samples.push({ name, labels, value });
  }
  return samples;
}

/** Sum of the samples named `name` whose labels include every pair of `match`; undefined when none. */
export function sumOf(samples, name, match = {}) {
  let sum;
  for (const s of samples) {
    if (s.name !== name) continue;
    if (!Object.entries(match).every(([k, v]) => s.labels[k] === v)) continue;
    sum = (sum ?? 0) + s.value;
  }
  return sum;
}

/** The figures run.mjs reads from one scrape of the agent's /metrics. */
export function agentFigures(text) {
  const samples = parsePrometheus(text, 'netmon_');
  const first = (name) => sumOf(samples, name);
  return {
    heapUsed: first('netmon_process_heap_used_bytes'),
    heapTotal: first('netmon_process_heap_total_bytes'),
    external: first('netmon_process_external_memory_bytes'),
    rss: first('netmon_process_resident_memory_bytes'),
    lagP99: first('netmon_process_event_loop_lag_p99_seconds'),
    lagMax: first('netmon_process_event_loop_lag_max_seconds'),
    conntrackEntries: first('netmon_conntrack_entries'),
    ebpfFlows: first('netmon_ebpf_flows'),
    deltaTracked: first('netmon_delta_flows_tracked'),
    receiverItems: sumOf(samples, 'netmon_component_items_total', {
      kind: 'receiver',
      direction: 'out',
      outcome: 'success',
    }),
    queueDropped: first('netmon_queue_dropped_items_total'),
    flowSeries: sumOf(samples, 'netmon_prometheus_series', { table: 'flows' }),
    flowBytes: first('netmon_flow_bytes_total'),
  };
}

/** Bytes the flows of source pod `pod` sent (direction tx), summed over their series; 0 when none. */
export function podTxBytes(text, pod) {
  const needle = `src_pod="${pod}"`;
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith('netmon_flow_bytes_total{') || !line.includes(needle)) continue;
    const s = parsePrometheus(line)[0];
    if (s.labels.src_pod === pod && s.labels.direction === 'tx') sum += s.value;
  }
  return sum;
}

/** "5s", "500ms", "2m", "1h", "1.5s" → milliseconds (Go/OpenTelemetry-style durations, one unit). */
export function parseDuration(text) {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(String(text).trim());
  if (!m) throw new Error(`"${text}" is not a duration (expected e.g. 500ms, 5s, 2m, 1h)`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2]];
}

/** Splits a command line on blanks, honouring single and double quotes and backslashes (no expansion). */
export function splitCommand(line) {
  const out = [];
  let cur = '';
  let has = false;
  let quote = '';
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote) {
      if (c === quote) quote = '';
      else if (c === '\\' && quote === '"' && i + 1 < line.length) cur += line[++i];
      else cur += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      has = true;
    } else if (c === '\\' && i + 1 < line.length) {
      cur += line[++i];
      has = true;
    } else if (/\s/.test(c)) {
      if (has) out.push(cur);
      cur = '';
      has = false;
    } else {
      cur += c;
      has = true;
    }
  }
  if (quote) throw new Error(`unbalanced ${quote} in: ${line}`);
  if (has) out.push(cur);
  return out;
}

/**
 * The agent's argv and environment additions: `nodeFlags` go right after the executable when it is
 * Node.js itself, else into NODE_OPTIONS (bin/netmon execs Node.js, which reads them from there).
 */
export function agentArgv(command, nodeFlags, env = {}) {
  const argv = splitCommand(command);
  if (argv.length === 0) throw new Error('--agent: empty command');
  const flags = nodeFlags ? splitCommand(nodeFlags) : [];
  if (flags.length === 0) return { argv, env: {} };
  if (/^node(\d+(\.\d+)*)?$/.test(argv[0].split('/').pop())) {
    return { argv: [argv[0], ...flags, ...argv.slice(1)], env: {} };
  }
  return { argv, env: { NODE_OPTIONS: [env.NODE_OPTIONS, ...flags].filter(Boolean).join(' ') } };
}

/** Children's user and system seconds from bash's `times` (its second line: "0m0.120s 0m0.040s"). */
export function parseTimes(text) {
  const lines = text.trim().split('\n');
  const line = lines[lines.length - 1] ?? '';
  const parts = [...line.matchAll(/(\d+)m(\d+(?:\.\d+)?)s/g)].map((m) => Number(m[1]) * 60 + Number(m[2]));
  if (lines.length < 2 || parts.length !== 2) throw new Error(`unexpected output of times: ${text}`);
  return { user: parts[0], system: parts[1] };
}

/** min, mean and max of a list; undefined values left out. */
export function summary(values) {
  const v = values.filter((x) => Number.isFinite(x));
  if (v.length === 0) return { min: Number.NaN, avg: Number.NaN, max: Number.NaN, n: 0 };
  return {
    min: Math.min(...v),
    avg: v.reduce((a, b) => a + b, 0) / v.length,
    max: Math.max(...v),
    n: v.length,
  };
}

/** Least-squares slope of y over x (units of y per unit of x); NaN with fewer than two distinct x. */
export function slope(points) {
  const n = points.length;
  if (n < 2) return Number.NaN;
  let sx = 0;
  let sy = 0;
  for (const [x, y] of points) {
    sx += x;
    sy += y;
  }
  const mx = sx / n;
  const my = sy / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return den === 0 ? Number.NaN : num / den;
}

export const MiB = 2 ** 20;

/** A number for the table: fixed digits, thousands separated; — for none. */
export function fmt(x, digits = 1) {
  return Number.isFinite(x)
    ? x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
    : '—';
}

/** Rounds every number of a JSON-bound value to `digits` decimals (NaN and ±Infinity become null). */
export function rounded(value, digits = 3) {
  return JSON.parse(
    JSON.stringify(value, (_, v) => {
      if (typeof v !== 'number') return v;
      if (!Number.isFinite(v)) return null;
      return Number(v.toFixed(digits));
    }),
  );
}
