// Double buffer against per-CPU values: the receiver's program (native/bpf/flows.bpf.c: two hash maps
// swapped through an ARRAY_OF_MAPS, atomic adds, drained with lookup_and_delete_batch) against
// bench/ebpf/percpu.bpf.c (same parsing and key; one BPF_MAP_TYPE_PERCPU_HASH with plain adds, read with
// lookup_batch, the CPUs' copies summed, the previous reading subtracted, idle entries deleted), both
// without preallocation as the receiver's maps are, and the per-CPU map preallocated as well. Measured
// by buffers.c in one process with BPF_PROG_TEST_RUN and batch map calls; no traffic, no namespace.
//
//   make build && .tools/bin/node bench/ebpf/buffers.mjs      # root; FLOWS=10000,100000 ROUNDS=5
import {
  buildBpf,
  buildC,
  fmt,
  main,
  objectCopy,
  preflight,
  sh,
  table,
  tempDir,
  writeResults,
} from './lib.mjs';

const FLOWS = (process.env.FLOWS ?? '10000,100000').split(',').map(Number);
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const MAX_FLOWS = 2 ** Math.ceil(Math.log2(Math.max(...FLOWS) * 1.25));

preflight('bench/ebpf/buffers.mjs', { tools: ['clang', 'llvm-strip', 'cc'], object: true, libbpf: true });

await main(async () => {
  const dir = tempDir();
  const percpu = buildBpf(dir, 'percpu.bpf.c');
  const buffers = buildC(dir, 'buffers.c', ['-lbpf', '-lpthread']);
  const r = JSON.parse(
    sh(buffers, [objectCopy(dir), percpu, String(MAX_FLOWS), String(ROUNDS), ...FLOWS.map(String)], {
      timeout: 600_000,
    }),
  );
  const v = ['double_buffer', 'percpu', 'percpu_prealloc'];
  const title = {
    double_buffer: 'double buffer (receiver)',
    percpu: 'per-CPU hash',
    percpu_prealloc: 'per-CPU hash, preallocated',
  };
  const pass = r.per_packet_ns.pass;

  console.log(
    `${r.possible_cpus} possible CPUs, max_flows ${r.max_flows}; medians of ${r.rounds} rounds\n\n` +
      `(a) per packet, BPF_PROG_TEST_RUN on an IPv4/TCP ACK of 104 bytes (ns per run; an empty program: ` +
      `${fmt(pass.one_flow, 0)} ns, ${fmt(pass.new_flow, 0)} ns with repeat 1)\n`,
  );
  table(
    [
      '',
      'one flow, 1 CPU',
      `one flow, all ${r.online_cpus} CPUs at once`,
      'new flow (insert)',
      'packets lost',
    ],
    v.map((k) => {
      const x = r.per_packet_ns[k];
      return [
        title[k],
        fmt(x.one_flow, 0),
        fmt(x.one_flow_all_cpus, 0),
        fmt(x.new_flow, 0),
        `${x.lost_packets} of ${r.rounds * r.test_run.new_flows}`,
      ];
    }),
  );

  console.log(
    '\n(b) user-space read of N flows (ms; per-CPU: a tenth of the flows idle and deleted each round)\n',
  );
  table(
    ['flows', 'variant', 'swap / lookup', 'drain / sum + delta', 'delete idle', 'total'],
    r.reads.flatMap((x) => [
      [
        x.flows.toLocaleString('en-US'),
        title.double_buffer,
        fmt(x.double_buffer.swap_ms, 2),
        fmt(x.double_buffer.lookup_and_delete_ms, 1),
        '—',
        fmt(x.double_buffer.total_ms, 1),
      ],
      ...['percpu', 'percpu_prealloc'].map((k) => [
        '',
        title[k],
        fmt(x[k].lookup_ms, 1),
        fmt(x[k].sum_and_delta_ms, 1),
        fmt(x[k].delete_idle_ms, 1),
        fmt(x[k].total_ms, 1),
      ]),
    ]),
  );

  const m = r.memory;
  const perFlow = (bytes, n = m.flows) => `${fmt(bytes / n, 0)} B`;
  console.log(
    `\n(c) kernel memory for ${m.flows.toLocaleString('en-US')} flows (bytes per flow; the origins LRU map, the same ` +
      `in both, is preallocated: ${fmt(m.origins_memlock / 2 ** 20, 1)} MiB for ${2 * r.max_flows} entries)\n`,
  );
  table(
    [
      '',
      'counter maps',
      'memlock empty',
      'memlock full',
      'per flow (memlock)',
      'meminfo Δ at load',
      'meminfo Δ full',
    ],
    v.map((k) => {
      const x = m[k];
      return [
        title[k],
        String(x.counters),
        `${fmt(x.memlock_empty / 2 ** 20, 1)} MiB`,
        `${fmt(x.memlock_full / 2 ** 20, 1)} MiB`,
        // A preallocated map holds max_flows entries from the start: its cost is per entry it can hold.
        k === 'percpu_prealloc'
          ? `${perFlow(x.memlock_full, r.max_flows)} per slot`
          : perFlow(x.memlock_full - x.memlock_empty),
        `${fmt(x.meminfo_delta_load / 2 ** 20, 1)} MiB`,
        `${fmt(x.meminfo_delta_full / 2 ** 20, 1)} MiB`,
      ];
    }),
  );
  if (r.fill_enomem_retries > 0) {
    console.log(
      `\nbpf_map_update_batch found the kernel's element caches empty ${r.fill_enomem_retries} times while filling (ENOMEM; waited and went on)`,
    );
  }
  writeResults('buffers', {
    command: `FLOWS=${FLOWS.join(',')} ROUNDS=${ROUNDS} node bench/ebpf/buffers.mjs`,
    ...r,
  });
});
