// The whole agent on a realistic node, measured: CPU, memory (peak, end, growth), heap and event-loop
// lag, wire-to-metrics latency, against two references (an idle Node.js, `conntrack -L`). README.md
// says what it builds and how to read the output. Needs root.
//
//   node bench/footprint/run.mjs [--flows 10000] [--mode netfilter|ebpf] [--soak <minutes>] … (--help)
import {
  createWriteStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import {
  agentArgv,
  agentFigures,
  fmt,
  MiB,
  parseDuration,
  parseTimes,
  podTxBytes,
  rounded,
  slope,
  summary,
} from './figures.mjs';
import {
  CLK_TCK,
  cleanup,
  findNodeProcess,
  installSignalHandlers,
  machine,
  machineTicks,
  onCleanup,
  readCpu,
  readMemory,
  run,
  sh,
  startProcess,
  treeCpu,
} from './lib.mjs';
import { makePlan, NODE_IP, SERVER_PORT, SERVER_PORTS } from './plan.mjs';

const HERE = import.meta.dirname;
const ROOT = path.resolve(HERE, '..', '..');
const METRICS_PORT = 9464;
const HEALTH_PORT = 8081;

const HELP = `Usage: node bench/footprint/run.mjs [options]      (root; Linux)

Builds a node in network namespaces of its own (N live TCP connections, short ones coming and going,
a Kubernetes API stand-in with the cluster those addresses belong to), runs the whole agent on
configs/default.yaml in it, and measures it. Durations: a number of seconds, or 500ms, 30s, 2m, 1h.

Traffic and cluster
  --flows <n>           live TCP connections, each talking every --talk-every          [10000]
  --talk-every <dur>    each connection sends 100–300 bytes and reads a reply this often,
                        the sends spread evenly over the period                         [5s]
  --churn <n>           short connections per second (connect, send, reply, close)      [20]
  --pods <n>            pods in the cluster (workloads of 10 pods over all nodes)       [1000]
  --nodes <n>           nodes in the cluster; this node is the first                    [10]
  --pod-churn <n>       pods replaced per minute (deleted, a new one of the workload
                        added, its EndpointSlice updated)                  [0; 10 with --soak]

Agent
  --mode <mode>         NETMON_COLLECTION_MODE: netfilter, ebpf or auto                 [netfilter]
  --interval <dur>      NETMON_READ_INTERVAL                                            [5s]
  --agent "<command>"   the agent's command line, run in the node's network namespace
                        [bin/netmon run --config configs/default.yaml]
  --node-flags=<flags>  flags for Node.js: put after the executable when the command
                        starts with node, else added to NODE_OPTIONS (e.g. for bin/netmon);
                        write it with = as they start with a dash:
                        "--node-flags=--max-old-space-size=128 --max-semi-space-size=1"

Measurement
  --warmup <dur>        after the first flows, before the window                        [30s]
  --duration <dur>      the measured window                                             [120s]
  --scrape-every <dur>  /metrics read this often during warm-up and window (heap, lag,
                        flows), as Prometheus would                                     [15s]
  --markers <n>         wire-to-metrics latency probes after the window, one per
                        interval                                                        [5]
  --soak <minutes>      a long window (instead of --duration) with flow and pod churn;
                        RSS and heap printed once a minute, the growth slope at the end
  --json <file>         where the figures go     [/tmp/netmon-footprint/<mode>-<flows>[-soak].json]
  --keep                keep the temporary folder (agent logs, delta state, kubeconfig)
  -h, --help            this text
`;

const log = (() => {
  const t0 = performance.now();
  return (msg) => console.error(`[${((performance.now() - t0) / 1000).toFixed(1).padStart(6)}s] ${msg}`);
})();

/** A duration option: a bare number is seconds. */
function seconds(name, text) {
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text);
  try {
    return parseDuration(text) / 1000;
  } catch (err) {
    throw new Error(`--${name}: ${err.message}`);
  }
}

function count(name, text, min = 0) {
  const n = Number(text);
  if (!Number.isFinite(n) || n < min) throw new Error(`--${name}: expected a number ≥ ${min}, got "${text}"`);
  return n;
}

function options() {
  const { values } = parseArgs({
    options: {
      flows: { type: 'string', default: '10000' },
      'talk-every': { type: 'string', default: '5s' },
      churn: { type: 'string', default: '20' },
      pods: { type: 'string', default: '1000' },
      nodes: { type: 'string', default: '10' },
      'pod-churn': { type: 'string' },
      mode: { type: 'string', default: 'netfilter' },
      interval: { type: 'string', default: '5s' },
      agent: { type: 'string' },
      'node-flags': { type: 'string', default: '' },
      warmup: { type: 'string', default: '30s' },
      duration: { type: 'string', default: '120s' },
      'scrape-every': { type: 'string', default: '15s' },
      markers: { type: 'string', default: '5' },
      soak: { type: 'string' },
      json: { type: 'string' },
      keep: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(HELP);
    process.exit(0);
  }
  if (!['netfilter', 'ebpf', 'auto'].includes(values.mode)) {
    throw new Error(`--mode: expected netfilter, ebpf or auto, got "${values.mode}"`);
  }
  const soak = values.soak === undefined ? undefined : count('soak', values.soak, 1);
  const o = {
    flows: Math.round(count('flows', values.flows, 1)),
    talkEvery: seconds('talk-every', values['talk-every']),
    churn: count('churn', values.churn),
    pods: Math.round(count('pods', values.pods, 1)),
    nodes: Math.round(count('nodes', values.nodes, 2)),
    podChurn: values['pod-churn'] === undefined ? (soak ? 10 : 0) : count('pod-churn', values['pod-churn']),
    mode: values.mode,
    interval: values.interval,
    intervalS: seconds('interval', values.interval),
    agent: values.agent,
    nodeFlags: values['node-flags'],
    warmup: seconds('warmup', values.warmup),
    duration: soak ? soak * 60 : seconds('duration', values.duration),
    scrapeEvery: seconds('scrape-every', values['scrape-every']),
    markers: Math.round(count('markers', values.markers)),
    soak,
    keep: values.keep,
  };
  if (o.talkEvery <= 0 || o.intervalS <= 0 || o.duration <= 0 || o.scrapeEvery <= 0) {
    throw new Error('--talk-every, --interval, --duration and --scrape-every must be positive');
  }
  o.json =
    values.json ??
    path.join(os.tmpdir(), 'netmon-footprint', `${o.mode}-${o.flows}${soak ? '-soak' : ''}.json`);
  return o;
}

function preflight(o) {
  const problems = [];
  if (process.platform !== 'linux') problems.push('needs Linux');
  else if (process.getuid() !== 0) problems.push('needs root (network namespaces, conntrack, the agent)');
  const tools = { ip: 'iproute2', nft: 'nftables', conntrack: 'conntrack', cc: 'gcc', nsenter: 'util-linux' };
  const missing = Object.keys(tools).filter((t) => !which(t));
  if (missing.length > 0) {
    problems.push(`missing ${missing.join(', ')}: apt-get install ${missing.map((t) => tools[t]).join(' ')}`);
  }
  if (!o.agent && !existsSync(path.join(ROOT, 'packages/agent/dist/bundle/netmon.js'))) {
    problems.push("the agent is not built (packages/agent/dist/bundle/netmon.js): run 'make build'");
  }
  if (problems.length > 0) {
    for (const p of problems) console.error(`footprint: ${p}`);
    process.exit(1);
  }
}

function which(tool) {
  try {
    sh('sh', ['-c', `command -v ${tool}`]);
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------------
// The node: three namespaces. The node's own (the agent, conntrack, the API stand-in) routes between
// the client pods' and the server pods' namespaces, as a node routes between its pods' veths: the
// pods' addresses are not the node's own, so the agent labels them as pods, not as itself.

function buildNetwork(plan, o) {
  const id = process.pid.toString();
  const ns = { node: `nmfp${id}`, cli: `nmfp${id}c`, srv: `nmfp${id}s` };
  for (const name of Object.values(ns)) {
    sh('ip', ['netns', 'add', name]);
    onCleanup(() => {
      // Whatever still runs in a namespace of this run was started by it (the namespace is new).
      const pids = sh('ip', ['netns', 'pids', name]).split(/\s+/).filter(Boolean);
      for (const pid of pids) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {}
      }
      sh('ip', ['netns', 'del', name]);
    });
  }
  const exec = (name, cmd, args) => sh('ip', ['netns', 'exec', name, cmd, ...args]);
  const batch = (name, lines) =>
    sh('ip', ['-n', name, '-batch', '-'], {
      input: `${lines.join('\n')}\n`,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
  const sysctl = (name, values) => {
    for (const [k, v] of Object.entries(values)) {
      exec(name, 'sysctl', ['-qw', `${k}=${v}`]);
      // Inside a namespace a global sysctl "fails" with exit 0: read it back.
      const got = exec(name, 'sysctl', ['-n', k]).trim().replace(/\s+/g, ' ');
      if (got !== v) throw new Error(`sysctl ${k} is ${got} in ${name}, not ${v}`);
    }
  };
  const links = { cli: `fpc${id}`.slice(0, 15), srv: `fps${id}`.slice(0, 15) };
  const { clients, servers, marker, churn } = plan.roles;
  const addresses = {
    cli: [...clients, marker, churn].map((p) => p.ip),
    srv: servers.map((p) => p.ip),
  };
  for (const side of ['cli', 'srv']) {
    sh('ip', [
      'link',
      'add',
      links[side],
      'netns',
      ns.node,
      'type',
      'veth',
      'peer',
      'name',
      'eth0',
      'netns',
      ns[side],
    ]);
    batch(ns[side], [
      'link set lo up',
      'link set eth0 up',
      ...addresses[side].map((ip) => `address add ${ip}/32 dev eth0`),
      `route add ${NODE_IP}/32 dev eth0 scope link`,
      `route add default via ${NODE_IP} dev eth0`,
    ]);
  }
  sysctl(ns.cli, { 'net.ipv4.ip_local_port_range': '1024 65535' });
  sysctl(ns.srv, { 'net.core.somaxconn': '65535', 'net.ipv4.tcp_max_syn_backlog': '65535' });
  // Accounting before the first packet: conntrack counts bytes only for entries made after it is on.
  sysctl(ns.node, {
    'net.ipv4.ip_forward': '1',
    'net.ipv4.conf.all.rp_filter': '0',
    'net.ipv4.ip_local_port_range': '1024 65535',
    'net.netfilter.nf_conntrack_acct': '1',
  });
  batch(ns.node, [
    'link set lo up',
    ...['cli', 'srv'].flatMap((side) => [
      `address add ${NODE_IP}/32 dev ${links[side]}`,
      `link set ${links[side]} up`,
      ...addresses[side].map((ip) => `route add ${ip}/32 dev ${links[side]}`),
    ]),
  ]);
  // A rule that uses conntrack makes the namespace track its traffic (forwarded and local).
  exec(ns.node, 'nft', [
    'add table inet netmon_footprint; add chain inet netmon_footprint track { type filter hook forward priority 0; }; add rule inet netmon_footprint track ct state new',
  ]);
  // The table limit is global, the count per namespace: raise it only when this run needs more.
  const maxFile = '/proc/sys/net/netfilter/nf_conntrack_max';
  const before = Number(readFileSync(maxFile, 'utf8'));
  const need = o.flows + Math.ceil(o.churn * 150) + 20_000;
  if (before < need) {
    const raised = 2 ** Math.ceil(Math.log2(need));
    writeFileSync(maxFile, String(raised));
    log(`nf_conntrack_max ${before} → ${raised} (put back at the end)`);
    onCleanup(() => {
      if (Number(readFileSync(maxFile, 'utf8')) === raised) writeFileSync(maxFile, String(before));
    });
  }
  return { ns, exec };
}

// ---------------------------------------------------------------------------------------------------
// HTTP to the agent's loopback endpoints, through cluster.mjs's Unix-socket relays.

const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 2 });

function get(socketPath, urlPath, timeoutMs = 20_000) {
  return new Promise((resolve, reject) => {
    const req = http.get({ socketPath, path: urlPath, agent: keepAlive, timeout: timeoutMs }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${urlPath}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

// ---------------------------------------------------------------------------------------------------

async function main() {
  const o = options();
  preflight(o);
  installSignalHandlers();
  const started = performance.now();
  const timings = {};
  const ticksAtStart = machineTicks();

  const dir = mkdtempSync(path.join(os.tmpdir(), 'netmon-footprint-'));
  onCleanup(() => {
    if (o.keep) console.error(`kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  });
  log(`building loadgen (${dir})`);
  const loadgen = path.join(dir, 'loadgen');
  sh('cc', ['-O2', '-Wall', '-Wextra', '-o', loadgen, path.join(HERE, 'loadgen.c')]);

  const plan = makePlan({ pods: o.pods, nodes: o.nodes });
  const { roles } = plan;
  log(
    `cluster: ${o.nodes} nodes, ${o.pods} pods in ${plan.workloads.length} workloads; this node ${plan.thisNode}: ` +
      `${roles.clients.length} client pods, servers on ${roles.servers.length} pods (${new Set(roles.servers.map((p) => p.node)).size} nodes) × ${SERVER_PORTS} ports`,
  );
  log('network namespaces, addresses, routes, conntrack rule');
  const { ns, exec } = buildNetwork(plan, o);

  // Children that must keep running: one dying ends the run with its last lines.
  let fatal;
  const fatalPromise = new Promise((_, reject) => {
    fatal = reject;
  });
  fatalPromise.catch(() => {});
  const watch = (proc, what) => {
    proc.exited.then((info) => {
      if (stopping.has(proc)) return;
      const why = info.signal ? `signal ${info.signal}` : `exit code ${info.code}`;
      fatal(
        new Error(
          `${what} died (${why}). Last stderr lines:\n${proc.tail('stderr', 30) || '(none)'}\nLast stdout lines:\n${proc.tail('stdout', 10) || '(none)'}`,
        ),
      );
    });
  };
  const stopping = new Set();
  const guard = (promise) => Promise.race([promise, fatalPromise]);
  const sleep = (ms) => guard(delay(ms));

  log('Kubernetes API stand-in and relays in the node namespace');
  const cluster = startProcess(
    'cluster.mjs',
    'ip',
    [
      'netns',
      'exec',
      ns.node,
      process.execPath,
      path.join(HERE, 'cluster.mjs'),
      JSON.stringify({
        pods: o.pods,
        nodes: o.nodes,
        dir,
        relays: { metrics: METRICS_PORT, health: HEALTH_PORT },
      }),
    ],
    { stdin: true },
  );
  watch(cluster, 'the Kubernetes API stand-in (cluster.mjs)');
  const apiUrl = (await guard(cluster.waitForLine(/^ready (\S+)/, 60_000)))[1];
  const sockets = { metrics: path.join(dir, 'metrics.sock'), health: path.join(dir, 'health.sock') };

  log('servers');
  const servers = startProcess('loadgen server', 'ip', [
    'netns',
    'exec',
    ns.srv,
    loadgen,
    'server',
    `flows=${o.flows}`,
    `port=${SERVER_PORT}`,
    `ports=${SERVER_PORTS}`,
    `ips=${roles.servers.map((p) => p.ip).join(',')}`,
  ]);
  watch(servers, 'the load generator (servers)');
  await guard(servers.waitForLine(/^ready/, 30_000));

  // The reference: an idle Node.js, read after 2 s, while the connections ramp up.
  const bare = startProcess('idle node', process.execPath, ['-e', 'setInterval(() => {}, 1e6)']);
  const bareRss = delay(2000).then(() => {
    const m = readMemory(bare.child.pid);
    bare.kill();
    return m.VmRSS;
  });

  log(`opening ${o.flows.toLocaleString('en-US')} connections`);
  const rampStart = performance.now();
  const clients = startProcess(
    'loadgen client',
    'ip',
    [
      'netns',
      'exec',
      ns.cli,
      loadgen,
      'client',
      `flows=${o.flows}`,
      `period=${o.talkEvery * 1000}`,
      `churn=${o.churn}`,
      `port=${SERVER_PORT}`,
      `ports=${SERVER_PORTS}`,
      `clients=${roles.clients.map((p) => p.ip).join(',')}`,
      `servers=${roles.servers.map((p) => p.ip).join(',')}`,
      `churn-from=${roles.churn.ip}`,
      `marker-from=${roles.marker.ip}`,
    ],
    {
      stdin: true,
      onLine: (line) => {
        const m = /^established (\d+) (\d+)/.exec(line);
        if (m)
          log(
            `  established ${Number(m[1]).toLocaleString('en-US')} / ${Number(m[2]).toLocaleString('en-US')}`,
          );
      },
    },
  );
  watch(clients, 'the load generator (clients)');
  const ready = await guard(clients.waitForLine(/^ready (\d+) (\d+)/, Math.max(60, o.flows / 500) * 1000));
  timings.connections_ready_s = (performance.now() - rampStart) / 1000;
  log(
    `${o.flows.toLocaleString('en-US')} connections established in ${(Number(ready[2]) / 1000).toFixed(1)} s`,
  );
  const bareNodeRss = await guard(bareRss);

  // The agent, in the node's network namespace. nsenter rather than `ip netns exec`, which mounts a
  // sysfs of the namespace over /sys and so hides the cgroup2 hierarchy the eBPF programs attach to.
  const command =
    o.agent ?? `${path.join(ROOT, 'bin/netmon')} run --config ${path.join(ROOT, 'configs/default.yaml')}`;
  const baseEnv = { ...process.env };
  delete baseEnv.KUBERNETES_SERVICE_HOST;
  delete baseEnv.KUBERNETES_SERVICE_PORT;
  for (const k of ['NETMON_CLOUD_PROVIDER', 'NETMON_CLOUD_REGION', 'NETMON_CLOUD_ZONE']) delete baseEnv[k];
  const { argv, env: extraEnv } = agentArgv(command, o.nodeFlags, baseEnv);
  const stateDir = path.join(dir, 'state');
  mkdirSync(stateDir, { mode: 0o700 });
  const agentEnv = {
    ...baseEnv,
    ...extraEnv,
    KUBECONFIG: path.join(dir, 'kubeconfig'),
    NODE_NAME: plan.thisNode,
    NETMON_COLLECTION_MODE: o.mode,
    NETMON_READ_INTERVAL: o.interval,
    NETMON_STATE_DIR: stateDir,
    NETMON_OUTPUT: path.join(stateDir, 'flows.jsonl'),
    NETMON_PROMETHEUS_ENDPOINT: `127.0.0.1:${METRICS_PORT}`,
    NETMON_HEALTH_ENDPOINT: `127.0.0.1:${HEALTH_PORT}`,
  };
  log(
    `agent: ${argv.join(' ')} (mode ${o.mode}, interval ${o.interval}, NODE_NAME ${plan.thisNode}, API ${apiUrl})`,
  );
  const agentLogs = {
    stdout: createWriteStream(path.join(dir, 'agent.stdout.log')),
    stderr: createWriteStream(path.join(dir, 'agent.stderr.log')),
  };
  const agentStart = performance.now();
  const agent = startProcess('agent', 'nsenter', [`--net=/run/netns/${ns.node}`, '--', ...argv], {
    env: agentEnv,
    onLine: (line, stream) => agentLogs[stream].write(`${line}\n`),
  });
  watch(agent, 'the agent');
  let pid;
  for (let i = 0; i < 200 && pid === undefined; i++) {
    pid = findNodeProcess(agent.child.pid);
    if (pid === undefined) await sleep(50);
  }
  if (pid === undefined)
    throw new Error(`no Node.js process under the agent's command (pid ${agent.child.pid})`);

  const scrape = async () => {
    const res = await guard(get(sockets.metrics, '/metrics'));
    if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
    return res.body;
  };
  for (let deadline = Date.now() + 90_000; ; ) {
    const res = await guard(
      get(sockets.health, '/readyz').catch((err) => ({ status: 0, body: err.message })),
    );
    if (res.status === 200) break;
    if (Date.now() > deadline)
      throw new Error(`the agent is not ready after 90 s: /readyz ${res.status} ${res.body}`);
    await sleep(200);
  }
  timings.agent_ready_s = (performance.now() - agentStart) / 1000;
  log(`agent ready in ${timings.agent_ready_s.toFixed(1)} s (pid ${pid}); waiting for the first flows`);
  for (let deadline = Date.now() + (o.intervalS * 4 + 60) * 1000; ; ) {
    const text = await scrape().catch(() => '');
    if (text.includes('netmon_flow_bytes_total{')) break;
    if (Date.now() > deadline)
      throw new Error('no netmon_flow_bytes_total in /metrics after 4 intervals + 60 s');
    await sleep(250);
  }
  timings.first_flows_s = (performance.now() - agentStart) / 1000;
  log(`first flows ${timings.first_flows_s.toFixed(1)} s after the agent started`);

  // Pod churn runs from now to the end, through warm-up, window and markers.
  let churned = 0;
  if (o.podChurn > 0) {
    const every = 60_000 / o.podChurn;
    const timer = setInterval(() => {
      cluster.child.stdin.write('churn\n');
    }, every);
    onCleanup(() => clearInterval(timer));
    cluster.child.stdout.on('data', (d) => {
      churned += (String(d).match(/^churned /gm) ?? []).length;
    });
  }

  const scrapes = [];
  const readFigures = async (phase) => {
    const t = performance.now();
    const figures = agentFigures(await scrape());
    scrapes.push({ phase, t: (t - started) / 1000, ...figures });
    return figures;
  };

  // Warm-up.
  log(`warm-up ${o.warmup} s`);
  for (let t = 0; t < o.warmup; ) {
    const step = Math.min(o.scrapeEvery, o.warmup - t);
    await sleep(step * 1000);
    t += step;
    const f = await readFigures('warmup');
    const m = readMemory(pid);
    log(
      `  warm-up ${t.toFixed(0)}/${o.warmup} s: RSS ${fmt(m.VmRSS / MiB)} MiB, heap ${fmt(f.heapUsed / MiB)} MiB`,
    );
  }

  // The window. RSS is read every second from /proc on a timer of its own, so a slow scrape (an agent
  // whose event loop lags) delays no sample; scrapes and the conntrack reference run in loops beside it.
  log(`measuring ${o.soak ? `${o.soak} min (soak)` : `${o.duration} s`}`);
  const rss = [];
  const ctRuns = [];
  const soakRows = [];
  let scrapeFailures = 0;
  let lastFigures = await readFigures('window');
  const cpu0 = readCpu(pid);
  const loadCpu0 = [clients, servers].map((p) => treeCpu(p.child.pid));
  const machine0 = machineTicks();
  const w0 = performance.now();
  const windowEnd = w0 + o.duration * 1000;
  const sampleRss = () => {
    const m = readMemory(pid);
    rss.push([(performance.now() - w0) / 1000, m.VmRSS]);
    return m;
  };
  sampleRss();
  const rssTimer = setInterval(() => {
    try {
      sampleRss();
    } catch {} // the agent is gone: its watcher reports it
  }, 1000);
  /** Runs `fn` every `seconds` (never two at once; a slot missed while one ran is skipped) until the window ends. */
  const every = async (seconds, fn, first = 0) => {
    let next = w0 + first * 1000;
    for (;;) {
      if (next > performance.now()) await sleep(next - performance.now());
      if (performance.now() >= windowEnd) return;
      await fn();
      while (next <= performance.now()) next += seconds * 1000;
    }
  };
  const conntrackList = async () => {
    const t = performance.now();
    const res = await run('ip', [
      'netns',
      'exec',
      ns.node,
      'bash',
      '-c',
      'conntrack -L >/dev/null 2>&1; times',
    ]);
    try {
      ctRuns.push({ wall: (performance.now() - t) / 1000, ...parseTimes(res.stdout) });
    } catch (err) {
      log(`  conntrack -L reference: ${err.message}`);
    }
  };
  const loops = [
    every(o.intervalS, conntrackList),
    every(
      o.scrapeEvery,
      async () => {
        try {
          lastFigures = await readFigures('window');
        } catch (err) {
          scrapeFailures++;
          log(`  /metrics: ${err.message}`);
        }
      },
      o.scrapeEvery,
    ),
  ];
  for (const l of loops) l.catch(() => {});
  const progress = setInterval(
    () => {
      const m = rss.at(-1)?.[1] ?? Number.NaN;
      const minutes = (performance.now() - w0) / 60_000;
      if (!o.soak) {
        log(`  ${(minutes * 60).toFixed(0)}/${o.duration} s: RSS ${fmt(m / MiB)} MiB`);
        return;
      }
      const row = {
        minute: Math.round(minutes),
        rss_mib: m / MiB,
        heap_used_mib: lastFigures.heapUsed / MiB,
        heap_total_mib: lastFigures.heapTotal / MiB,
      };
      soakRows.push(row);
      const sl = slope(rss.map(([x, y]) => [x / 3600, y / MiB]));
      log(
        `  soak ${row.minute}/${o.soak} min: RSS ${fmt(row.rss_mib)} MiB, heap ${fmt(row.heap_used_mib)} / ${fmt(row.heap_total_mib)} MiB, slope so far ${fmt(sl)} MiB/h, pods replaced ${churned}`,
      );
    },
    o.soak ? 60_000 : 10_000,
  );
  onCleanup(() => {
    clearInterval(rssTimer);
    clearInterval(progress);
  });
  await sleep(windowEnd - performance.now());
  clearInterval(rssTimer);
  clearInterval(progress);
  const memEnd = sampleRss();
  const wall = (performance.now() - w0) / 1000;
  const cpu1 = readCpu(pid);
  const loadCpu1 = [clients, servers].map((p) => treeCpu(p.child.pid));
  const machine1 = machineTicks();
  await guard(Promise.all(loops));
  const endFigures = await readFigures('end').catch((err) => {
    scrapeFailures++;
    log(`  /metrics at the end: ${err.message}; the last reading stands in`);
    return lastFigures;
  });
  const ctCount = Number(exec(ns.node, 'cat', ['/proc/sys/net/netfilter/nf_conntrack_count']).trim());
  if (o.soak && soakRows.at(-1)?.minute !== o.soak) {
    soakRows.push({
      minute: o.soak,
      rss_mib: memEnd.VmRSS / MiB,
      heap_used_mib: endFigures.heapUsed / MiB,
      heap_total_mib: endFigures.heapTotal / MiB,
    });
  }
  timings.window_s = wall;

  // Wire-to-metrics latency: a marker connection's bytes, from its send to the first /metrics with them.
  const latencies = [];
  if (o.markers > 0) log(`wire-to-metrics latency: ${o.markers} markers from ${roles.marker.name}`);
  const markerPod = roles.marker.name;
  for (let i = 1; i <= o.markers; i++) {
    const bytes = 1000 + i;
    const before = podTxBytes(await scrape(), markerPod);
    // A scrape that fails or times out (an agent whose event loop lags) is retried until the deadline.
    const marked = clients.waitForLine(new RegExp(`^(marked|marker-failed) ${i}\\b\\s*([\\d.]*)`), 30_000);
    clients.child.stdin.write(`mark ${bytes}\n`);
    const mk = await guard(marked);
    if (mk[1] !== 'marked') {
      latencies.push(null);
      log(`  marker ${i}: the connection failed`);
      continue;
    }
    const t0 = Number(mk[2]);
    const deadline = t0 + (o.intervalS * 3 + 15) * 1000;
    let seen;
    while (Date.now() < deadline) {
      const text = await scrape().catch(() => '');
      const at = Date.now();
      if (podTxBytes(text, markerPod) >= before + bytes) {
        seen = at;
        break;
      }
      await sleep(50);
    }
    const latency = seen === undefined ? null : (seen - t0) / 1000;
    latencies.push(latency);
    log(`  marker ${i}: ${latency === null ? 'not seen' : `${latency.toFixed(2)} s`}`);
    // One marker per interval, each starting at another point of the agent's read cycle.
    const nextAt = t0 + o.intervalS * 1000 * 1.37;
    if (i < o.markers && Date.now() < nextAt) await sleep(nextAt - Date.now());
  }

  // Stop: the agent first (its exit code says whether it drained cleanly), then the traffic.
  log('stopping the agent');
  stopping.add(agent);
  const agentExit = await agent.stop(30_000);
  for (const s of Object.values(agentLogs)) s.end();
  stopping.add(clients);
  stopping.add(servers);
  stopping.add(cluster);
  const [clientExit, serverExit] = await Promise.all([clients.stop(20_000), servers.stop(20_000)]);
  const loadStats = [clients, servers].map((p) => {
    const line = p.lines.stdout.findLast((l) => l.startsWith('{'));
    return line ? JSON.parse(line) : undefined;
  });
  cluster.child.stdin.end();
  await cluster.stop(10_000);
  void clientExit;
  void serverExit;

  // Figures.
  const ticks = (a, b) => b.utime + b.stime - a.utime - a.stime;
  const cpuPercent = (ticks(cpu0, cpu1) / CLK_TCK / wall) * 100;
  const rssValues = rss.map(([, v]) => v / MiB);
  const rssSummary = summary(rssValues);
  const rssSlope = slope(rss.map(([x, y]) => [x / 3600, y / MiB]));
  const half = rss.filter(([x]) => x >= wall / 2);
  const rssSlopeLastHalf = slope(half.map(([x, y]) => [x / 3600, y / MiB]));
  const windowScrapes = scrapes.filter((s) => s.phase !== 'warmup');
  const heapUsed = summary(windowScrapes.map((s) => s.heapUsed / MiB));
  const ctCpu = ctRuns.reduce((a, r) => a + r.user + r.system, 0);
  const firstWindow = windowScrapes[0];
  const seenLatencies = latencies.filter((x) => x !== null);
  const agentFlows =
    o.mode === 'ebpf' ? endFigures.ebpfFlows : (endFigures.conntrackEntries ?? endFigures.ebpfFlows);
  const result = {
    bench: 'footprint',
    command: process.argv
      .slice(1)
      .map((a) => (/[\s"'\\]/.test(a) ? JSON.stringify(a) : a))
      .join(' '),
    options: { ...o, json: undefined },
    machine: {
      ...machine(),
      busy_percent_during_window: ((machine1.busy - machine0.busy) / (machine1.total - machine0.total)) * 100,
      busy_percent_during_run: undefined,
    },
    cluster: {
      nodes: o.nodes,
      pods: o.pods,
      workloads: plan.workloads.length,
      this_node: plan.thisNode,
      client_pods: roles.clients.map((p) => `${p.namespace}/${p.name}`),
      server_pods: roles.servers.map((p) => `${p.namespace}/${p.name}@${plan.nodes[p.node].name}`),
      marker_pod: `${roles.marker.namespace}/${markerPod}`,
      pods_replaced: churned,
    },
    agent: {
      command: argv.join(' '),
      // Which build ran (of this checkout; --agent may run another): compare runs of the same one.
      checkout: checkoutVersion(),
      pid,
      exit: agentExit,
      cpu_percent: cpuPercent,
      cpu_user_percent: ((cpu1.utime - cpu0.utime) / CLK_TCK / wall) * 100,
      cpu_system_percent: ((cpu1.stime - cpu0.stime) / CLK_TCK / wall) * 100,
      rss_peak_mib: memEnd.VmHWM / MiB,
      rss_end_mib: memEnd.VmRSS / MiB,
      rss_anon_end_mib: memEnd.RssAnon / MiB,
      rss_file_end_mib: memEnd.RssFile / MiB,
      rss_samples: rssSummary,
      rss_slope_mib_per_hour: rssSlope,
      rss_slope_last_half_mib_per_hour: rssSlopeLastHalf,
      heap_used_end_mib: endFigures.heapUsed / MiB,
      heap_total_end_mib: endFigures.heapTotal / MiB,
      heap_used_window_mib: heapUsed,
      external_end_mib: endFigures.external / MiB,
      event_loop_lag_p99_ms: endFigures.lagP99 * 1000,
      event_loop_lag_max_ms: Math.max(...windowScrapes.map((s) => s.lagMax ?? 0)) * 1000,
      active_flows: agentFlows,
      delta_flows_tracked: endFigures.deltaTracked,
      flows_per_second:
        firstWindow && endFigures.receiverItems !== undefined
          ? (endFigures.receiverItems - firstWindow.receiverItems) / (scrapes.at(-1).t - firstWindow.t)
          : undefined,
      flow_label_sets: endFigures.flowSeries,
      queue_dropped_items: endFigures.queueDropped,
      failed_scrapes: scrapeFailures,
    },
    latency: {
      interval_s: o.intervalS,
      markers_s: latencies,
      max_s: seenLatencies.length ? Math.max(...seenLatencies) : null,
      not_seen: latencies.length - seenLatencies.length,
    },
    conntrack_count: ctCount,
    references: {
      bare_node_rss_mib: bareNodeRss / MiB,
      conntrack_list_cpu_percent: (ctCpu / wall) * 100,
      conntrack_list_runs: ctRuns.length,
      conntrack_list_mean_wall_s: summary(ctRuns.map((r) => r.wall)).avg,
    },
    load: {
      client: loadStats[0],
      server: loadStats[1],
      cpu_percent: {
        client: (ticks(loadCpu0[0], loadCpu1[0]) / CLK_TCK / wall) * 100,
        server: (ticks(loadCpu0[1], loadCpu1[1]) / CLK_TCK / wall) * 100,
      },
    },
    soak: o.soak ? { per_minute: soakRows } : undefined,
    rss_mib_per_second: rssValues,
    scrapes,
    timings: { ...timings, total_s: (performance.now() - started) / 1000 },
  };
  const machineRun = machineTicks();
  result.machine.busy_percent_during_run =
    ((machineRun.busy - ticksAtStart.busy) / (machineRun.total - ticksAtStart.total)) * 100;

  printTable(result, o);
  mkdirSync(path.dirname(o.json), { recursive: true });
  writeFileSync(o.json, `${JSON.stringify(rounded(result), null, 2)}\n`);
  console.log(`\nJSON: ${o.json}`);
  if (agentExit.code !== 0) {
    console.error(
      `the agent exited with ${agentExit.signal ?? agentExit.code}:\n${agent.tail('stderr', 20)}`,
    );
    process.exitCode = 1;
  }
}

function checkoutVersion() {
  try {
    return sh('git', ['-C', ROOT, 'describe', '--always', '--dirty']).trim();
  } catch {
    return undefined;
  }
}

function printTable(r, o) {
  const a = r.agent;
  const rows = [
    [
      'agent CPU',
      `${fmt(a.cpu_percent)} %`,
      `of one core (user ${fmt(a.cpu_user_percent)}, system ${fmt(a.cpu_system_percent)}) over ${fmt(r.timings.window_s, 0)} s`,
    ],
    ['agent RSS peak (VmHWM)', `${fmt(a.rss_peak_mib)} MiB`, 'since the agent started'],
    [
      'agent RSS at end',
      `${fmt(a.rss_end_mib)} MiB`,
      `anon ${fmt(a.rss_anon_end_mib)}, file ${fmt(a.rss_file_end_mib)}`,
    ],
    [
      'agent RSS each second',
      `${fmt(a.rss_samples.avg)} MiB`,
      `avg; min ${fmt(a.rss_samples.min)}, max ${fmt(a.rss_samples.max)} (${a.rss_samples.n} samples)`,
    ],
    [
      'agent RSS slope',
      `${fmt(a.rss_slope_mib_per_hour)} MiB/h`,
      `over the window; last half ${fmt(a.rss_slope_last_half_mib_per_hour)} MiB/h`,
    ],
    [
      'heap used / total at end',
      `${fmt(a.heap_used_end_mib)} / ${fmt(a.heap_total_end_mib)} MiB`,
      `used over the window: min ${fmt(a.heap_used_window_mib.min)}, max ${fmt(a.heap_used_window_mib.max)}; external ${fmt(a.external_end_mib)} MiB`,
    ],
    [
      'event-loop lag p99 / max',
      `${fmt(a.event_loop_lag_p99_ms, 0)} / ${fmt(a.event_loop_lag_max_ms, 0)} ms`,
      "as the agent reports them (each reading covers the last 1–2 min): p99 at the end, max of the window's readings",
    ],
    [
      'wire-to-metrics latency, max',
      r.latency.max_s === null ? '—' : `${fmt(r.latency.max_s, 2)} s`,
      `each: ${r.latency.markers_s.map((x) => (x === null ? 'not seen' : fmt(x, 2))).join(', ') || 'none'} s; read interval ${o.interval}`,
    ],
    [
      'active flows (agent)',
      fmt(a.active_flows, 0),
      `${o.mode === 'ebpf' ? 'netmon_ebpf_flows' : 'netmon_conntrack_entries'}${a.delta_flows_tracked === undefined ? '' : `; delta tracks ${fmt(a.delta_flows_tracked, 0)}`}`,
    ],
    ['conntrack entries (kernel)', fmt(r.conntrack_count, 0), 'nf_conntrack_count in the node namespace'],
    [
      'flows through the pipeline',
      `${fmt(a.flows_per_second, 0)} /s`,
      `flow label sets in Prometheus ${fmt(a.flow_label_sets, 0)}; queue drops ${fmt(a.queue_dropped_items, 0)}`,
    ],
    [
      'reference: idle Node.js RSS',
      `${fmt(r.references.bare_node_rss_mib)} MiB`,
      `${process.version}, read after 2 s`,
    ],
    [
      'reference: conntrack -L CPU',
      `${fmt(r.references.conntrack_list_cpu_percent)} %`,
      `of one core; once per interval, ${r.references.conntrack_list_runs} runs of ${fmt(r.references.conntrack_list_mean_wall_s, 2)} s`,
    ],
    [
      'load generator CPU',
      `${fmt(r.load.cpu_percent.client)} + ${fmt(r.load.cpu_percent.server)} %`,
      `clients + servers; ${fmt(r.load.client?.messages ?? Number.NaN, 0)} messages, ${fmt(r.load.client?.churn_done ?? Number.NaN, 0)} short connections in the whole run`,
    ],
    [
      'machine busy during window',
      `${fmt(r.machine.busy_percent_during_window)} %`,
      `all ${r.machine.cpus} CPUs, everybody's work`,
    ],
  ];
  console.log(
    `\nnetmon footprint: ${o.mode}, ${o.flows.toLocaleString('en-US')} connections talking every ${o.talkEvery} s, ${o.churn} new/s, ${o.pods} pods on ${o.nodes} nodes${o.podChurn ? `, ${o.podChurn} pods replaced/min` : ''}`,
  );
  if (r.machine.busy_percent_during_window >= 90) {
    rows.push([
      'warning',
      'CPUs saturated',
      'the agent competed for CPU with the load (and anything else running): its lag and latency suffer',
    ]);
  }
  const widths = [0, 1, 2].map((i) => Math.max(...rows.map((row) => row[i].length)));
  for (const row of rows)
    console.log(`${row[0].padEnd(widths[0])}  ${row[1].padStart(widths[1])}  ${row[2]}`);
  if (o.soak && r.soak) {
    console.log('\nsoak, once a minute:');
    console.log('minute  RSS MiB  heap used MiB  heap total MiB');
    for (const s of r.soak.per_minute) {
      console.log(
        `${String(s.minute).padStart(6)}  ${fmt(s.rss_mib).padStart(7)}  ${fmt(s.heap_used_mib).padStart(13)}  ${fmt(s.heap_total_mib).padStart(14)}`,
      );
    }
    console.log(
      `growth: ${fmt(a.rss_slope_mib_per_hour)} MiB/h over the soak, ${fmt(a.rss_slope_last_half_mib_per_hour)} MiB/h over its second half`,
    );
  }
  console.log(
    `timings: connections ${fmt(r.timings.connections_ready_s)} s, agent ready ${fmt(r.timings.agent_ready_s)} s, first flows ${fmt(r.timings.first_flows_s)} s, total ${fmt(r.timings.total_s)} s`,
  );
}

main()
  .catch((err) => {
    console.error(`\nfootprint: ${err instanceof Error ? err.message : err}`);
    process.exitCode = 1;
  })
  .finally(() => {
    cleanup();
    keepAlive.destroy();
    // Child pipes and the relay's keep-alive sockets would otherwise hold the loop open.
    process.exit();
  });
