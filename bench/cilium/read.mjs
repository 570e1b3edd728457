// What the cilium receiver's read costs at a million entries, against the read alone: a map in the layout
// of Cilium's IPv4 TCP conntrack map (fill.c: LRU hash, 14-byte keys, 56-byte values, a node's mix of OUT,
// IN, local-pair and SERVICE entries), pinned on a bpffs of the bench's own, then per round
//   (a) readPinnedMap alone: the addon's batch lookups copying every key and value out, and
//   (b) the receiver's whole read: the same call, then the decoding into a FlowBatch (opener, ports,
//       counters per layout, the local pair's IN twin found and skipped, expiry) handed to a sink,
// alternating which goes first, medians over the rounds. The receiver is the real one, made by its
// factory; (b) calls the read its timer calls, after a first read that settles the layout and the clock.
// For scale, the floor: fill.c's plain bpf_map_lookup_batch over the same map, in C, into buffers
// allocated once.
//
//   make build && .tools/bin/node --expose-gc bench/cilium/read.mjs [--json [FILE]]
//
// Root. ENTRIES=1000000 ROUNDS=9 LAYOUT=split (or total). `--json` prints the figures as JSON instead of
// tables; `--json FILE` writes them there as well as printing the tables.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { readPinnedMap } from '@netmon/native';
import { ciliumReceiverFactory } from '@netmon/receivers';
import { gc, settings } from '../common.mjs';
import { buildC, fmt, machine, main, median, onCleanup, preflight, sh, table } from '../ebpf/lib.mjs';

const ENTRIES = Number(process.env.ENTRIES ?? 1_000_000);
const ROUNDS = Number(process.env.ROUNDS ?? 9);
const LAYOUT = process.env.LAYOUT ?? 'split';
const jsonAt = process.argv.indexOf('--json');
const jsonFile =
  jsonAt >= 0 && process.argv[jsonAt + 1] && !process.argv[jsonAt + 1].startsWith('-')
    ? process.argv[jsonAt + 1]
    : undefined;
const jsonOnly = jsonAt >= 0 && !jsonFile;
// An LRU map evicts before it is full (free lists per CPU): room to spare, as Cilium's maps have.
const MAX_ENTRIES = Math.ceil(ENTRIES * 1.25);

if (!['split', 'total'].includes(LAYOUT)) throw new Error(`LAYOUT is split or total, not ${LAYOUT}`);
preflight('bench/cilium/read.mjs', { tools: ['cc'], libbpf: true });

const log = (...a) => {
  if (!jsonOnly) console.log(...a);
};

await main(async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'netmon-bench-cilium-'));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  const fill = buildC(dir, '../cilium/fill.c');

  // The bench's own bpffs: unmounting it frees the map whatever happens to the process.
  const bpffs = mkdtempSync(path.join(os.tmpdir(), 'netmon-bench-cilium-bpffs-'));
  sh('mount', ['-t', 'bpf', 'bpf', bpffs]);
  onCleanup(() => {
    sh('umount', [bpffs]);
    rmSync(bpffs, { recursive: true, force: true });
  });
  const pin = path.join(bpffs, 'cilium_ct4_global');
  const filled = JSON.parse(
    sh(fill, [pin, String(ENTRIES), String(MAX_ENTRIES), LAYOUT], { timeout: 600_000 }),
  );
  const connections = filled.out + filled.in - filled.twins;
  log(
    `${ENTRIES.toLocaleString('en-US')} entries (${LAYOUT} layout) in an LRU hash of ${MAX_ENTRIES.toLocaleString('en-US')}: ` +
      `${filled.out.toLocaleString('en-US')} OUT, ${filled.in.toLocaleString('en-US')} IN (${filled.twins.toLocaleString('en-US')} ` +
      `of them the twin of an OUT entry), ${filled.service.toLocaleString('en-US')} SERVICE; filled with bpf_map_update_batch ` +
      `in ${fmt(filled.fill_ms / 1000, 2)} s\n`,
  );

  let last;
  const sink = {
    consume(batch) {
      last = batch;
    },
    ready: () => Promise.resolve(),
  };
  const receiver = await ciliumReceiverFactory.create(
    settings('receiver', 'cilium'),
    ciliumReceiverFactory.config.parse({
      maps_dir: bpffs,
      read_interval: '1h',
      map_names: { any4: '', tcp6: '', any6: '' },
    }),
    sink,
  );
  onCleanup(() => {
    receiver.shutdown();
  });
  // Start measures HZ and schedules the first read at once; its timer then waits an hour.
  await receiver.start();
  const until = Date.now() + 120_000;
  while (!last) {
    if (Date.now() > until) throw new Error('the receiver handed on no batch within 2 minutes');
    await new Promise((r) => setTimeout(r, 10));
  }
  const check = (batch) => {
    if (batch.length !== connections) {
      throw new Error(`the receiver emitted ${batch.length} rows, not the ${connections} connections filled`);
    }
  };
  check(last);

  const raw = [];
  const whole = [];
  const addon = [];
  let rssPeak = process.memoryUsage().rss;
  const timeRaw = async () => {
    gc();
    const t = performance.now();
    const r = await readPinnedMap({ path: pin, keySize: 14, valueSize: 56 });
    raw.push(performance.now() - t);
    addon.push(r.durationMs);
    if (r.count !== ENTRIES || !r.batched) {
      throw new Error(`readPinnedMap read ${r.count} entries (batched: ${r.batched}), not ${ENTRIES}`);
    }
  };
  const timeWhole = async () => {
    gc();
    last = undefined;
    const t = performance.now();
    // The read the receiver's timer runs: every map once, decoded, handed to the sink.
    await receiver.read();
    whole.push(performance.now() - t);
    check(last);
  };
  for (let r = 0; r < ROUNDS; r++) {
    if (r % 2 === 0) {
      await timeRaw();
      await timeWhole();
    } else {
      await timeWhole();
      await timeRaw();
    }
    rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
  }
  await receiver.shutdown();
  const floor = JSON.parse(sh(fill, ['read', pin, String(ROUNDS)], { timeout: 600_000 }));

  const a = median(raw);
  const b = median(whole);
  const decode = median(whole.map((w, i) => w - raw[i]));
  const ns = (ms) => (ms * 1e6) / ENTRIES;
  const result = {
    command: `ENTRIES=${ENTRIES} ROUNDS=${ROUNDS} LAYOUT=${LAYOUT} node --expose-gc bench/cilium/read.mjs`,
    entries: ENTRIES,
    connections,
    layout: LAYOUT,
    value_layout_in_use: receiver.valueLayout ?? 'undetermined (decoded as total)',
    rounds: ROUNDS,
    fill: { method: 'bpf_map_update_batch, 4096 entries per call (bench/cilium/fill.c)', ms: filled.fill_ms },
    lookup_batch_floor_ms: floor.lookup_batch_ms,
    read_pinned_map_ms: a,
    read_pinned_map_addon_ms: median(addon),
    receiver_read_ms: b,
    decode_ms: decode,
    ns_per_entry: {
      lookup_batch_floor: ns(floor.lookup_batch_ms),
      read_pinned_map: ns(a),
      receiver_read: ns(b),
      decode: ns(decode),
    },
    ratio_receiver_to_read: b / a,
    rss_peak_mib: rssPeak / 2 ** 20,
    gc_forced_between_reads: typeof globalThis.gc === 'function',
    all_rounds_ms: { read_pinned_map: raw, receiver_read: whole },
    machine: machine(),
  };

  if (jsonOnly) {
    console.log(JSON.stringify(result, null, 2));
    return;
  }
  console.log(`medians of ${ROUNDS} rounds, each read alone and then whole (or the other way round)\n`);
  table(
    ['', 'ms', 'ns per entry'],
    [
      [
        'bpf_map_lookup_batch in C (the floor)',
        fmt(floor.lookup_batch_ms, 1),
        fmt(ns(floor.lookup_batch_ms), 1),
      ],
      ['(a) readPinnedMap alone', fmt(a, 1), fmt(ns(a), 1)],
      ['    of which inside the addon (durationMs)', fmt(median(addon), 1), fmt(ns(median(addon)), 1)],
      ['(b) the receiver’s whole read', fmt(b, 1), fmt(ns(b), 1)],
      ['    (b) − (a): decoding into the FlowBatch', fmt(decode, 1), fmt(ns(decode), 1)],
    ],
  );
  console.log(
    `\n(b) / (a) = ${fmt(b / a, 2)}; ${connections.toLocaleString('en-US')} rows per read, layout ${result.value_layout_in_use}; ` +
      `peak RSS ${fmt(result.rss_peak_mib, 0)} MiB${result.gc_forced_between_reads ? '' : ' (run with --expose-gc to collect between reads)'}`,
  );
  const m = result.machine;
  console.log(
    `machine: ${m.cpus} × ${m.cpu_model}, kernel ${m.kernel}; CPUs busy ${m.busy_percent_during_run}% of the run (all work), load ${m.load_average.join(' ')}`,
  );
  if (jsonFile) {
    writeFileSync(jsonFile, `${JSON.stringify(result, null, 2)}\n`);
    console.log(`JSON: ${jsonFile}`);
  }
});
