// Double buffer (native/bpf/flows.bpf.c) against per-CPU values (bench/ebpf/percpu.bpf.c), measured in
// one process so both see the same machine state. Driven by buffers.mjs, which builds it and prints the
// tables; prints one JSON object on stdout.
//
//   buffers <flows.bpf.o> <percpu.bpf.o> <max_flows> <rounds> <N> [<N> ...]
//
// (a) per-packet cost with BPF_PROG_TEST_RUN on a crafted IPv4/TCP packet: one flow repeated (the
//     counters' update), the same on both CPUs at once (atomic adds on one shared value against each
//     CPU's own copy), and one new flow per run (the insert every active flow pays once per interval
//     with a double buffer, once per lifetime with a cumulative map);
// (b) user-space read cost for each N: swap + lookup_and_delete_batch against lookup_batch + summing the
//     CPUs' copies + the delta against the previous reading + deleting idle entries;
// (c) kernel memory per flow: the maps' memlock from fdinfo, and /proc/meminfo's slab, vmalloc and per-CPU deltas
//     (measured first, on maps nothing has filled yet).
#define _GNU_SOURCE
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "flows.h"

#define BATCH 4096  // entries per batch syscall, as the addon reads

static int ncpus;

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void die(const char* what) {
  fprintf(stderr, "buffers: %s: %s\n", what, strerror(errno));
  exit(1);
}

static int cmp_double(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

static double median(double* v, int n) {
  qsort(v, n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// ---------------------------------------------------------------------------------------------------
// Loading

struct prog {
  struct bpf_object* obj;
  int egress, pass;                // program fds (pass: only in the per-CPU object)
  int active, buffer[2], current;  // double buffer
  int flows;                       // per-CPU map
  int origins, stats;
};

static int map_fd(struct bpf_object* o, const char* name) {
  struct bpf_map* m = bpf_object__find_map_by_name(o, name);
  return m ? bpf_map__fd(m) : -1;
}

static void load(const char* path, uint32_t max_flows, int prealloc, struct prog* p) {
  memset(p, 0, sizeof *p);
  p->obj = bpf_object__open_file(path, NULL);
  if (!p->obj) die(path);
  if (prealloc) {
    struct bpf_map* m = bpf_object__find_map_by_name(p->obj, "flows");
    if (!m || bpf_map__set_map_flags(m, bpf_map__map_flags(m) & ~BPF_F_NO_PREALLOC)) die("preallocating flows");
  }
  // Sized as the addon sizes them (cc/cgroup_flows.cc): the counters max_flows, origins twice that.
  const char* sized[] = {"buffer_a", "buffer_b", "flows"};
  for (int i = 0; i < 3; i++) {
    struct bpf_map* m = bpf_object__find_map_by_name(p->obj, sized[i]);
    if (m) bpf_map__set_max_entries(m, max_flows);
  }
  struct bpf_map* o = bpf_object__find_map_by_name(p->obj, "origins");
  if (o) bpf_map__set_max_entries(o, max_flows * 2 > 1024 ? max_flows * 2 : 1024);
  if (bpf_object__load(p->obj)) die("bpf_object__load");
  struct bpf_program* e = bpf_object__find_program_by_name(p->obj, "count_egress");
  struct bpf_program* s = bpf_object__find_program_by_name(p->obj, "pass");
  p->egress = e ? bpf_program__fd(e) : -1;
  p->pass = s ? bpf_program__fd(s) : -1;
  p->active = map_fd(p->obj, "active");
  p->buffer[0] = map_fd(p->obj, "buffer_a");
  p->buffer[1] = map_fd(p->obj, "buffer_b");
  p->flows = map_fd(p->obj, "flows");
  p->origins = map_fd(p->obj, "origins");
  p->stats = map_fd(p->obj, "stats");
}

// Packets the program could not count since load (FLOW_STAT_LOST_PACKETS, summed over CPUs): an insert
// refused because the map was full or the kernel had no memory at hand.
static uint64_t lost_packets(struct prog* p) {
  uint64_t per[256] = {0}, sum = 0;
  uint32_t key = FLOW_STAT_LOST_PACKETS;
  if (bpf_map_lookup_elem(p->stats, &key, per)) die("stats");
  for (int c = 0; c < ncpus && c < 256; c++) sum += per[c];
  return sum;
}

// ---------------------------------------------------------------------------------------------------
// (a) BPF_PROG_TEST_RUN

// Ethernet + IPv4 + TCP (ACK, not SYN: an established flow) + 64 bytes. A cgroup_skb test run strips the
// Ethernet header, so the program sees the IP packet as on a socket's path.
struct __attribute__((packed)) tcp_packet {
  uint8_t eth[14];
  uint8_t ip[20];
  uint8_t tcp[20];
  uint8_t payload[64];
};

static void craft(struct tcp_packet* p, uint32_t n) {
  memset(p, 0, sizeof *p);
  p->eth[12] = 0x08;  // ETH_P_IP
  uint8_t* ip = p->ip;
  ip[0] = 0x45;
  uint16_t total = 20 + 20 + 64;
  ip[2] = total >> 8;
  ip[3] = total & 0xff;
  ip[8] = 64;
  ip[9] = 6;  // TCP
  uint8_t src[4] = {10, 231, (uint8_t)(n >> 24), (uint8_t)(n >> 16)};
  uint8_t dst[4] = {10, 231, 0, 1};
  memcpy(ip + 12, src, 4);
  memcpy(ip + 16, dst, 4);
  uint16_t sport = 1024 + (n & 0xffff) % 64000, dport = 5201;
  p->tcp[0] = sport >> 8;
  p->tcp[1] = sport & 0xff;
  p->tcp[2] = dport >> 8;
  p->tcp[3] = dport & 0xff;
  p->tcp[12] = 5 << 4;
  p->tcp[13] = 0x10;  // ACK
}

// Average ns per run of `repeat` runs on one packet, as the kernel measures it (syscall not included).
static double test_run(int fd, const struct tcp_packet* pkt, int repeat) {
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = pkt, .data_size_in = sizeof *pkt, .repeat = repeat);
  if (bpf_prog_test_run_opts(fd, &opts)) die("bpf_prog_test_run_opts");
  if (opts.retval != 1) {
    fprintf(stderr, "buffers: the program returned %u, not 1 (pass)\n", opts.retval);
    exit(1);
  }
  return opts.duration;
}

struct runner {
  int fd, cpu, repeat;
  const struct tcp_packet* pkt;
  pthread_barrier_t* go;
  double ns;
};

static void* run_pinned(void* arg) {
  struct runner* r = arg;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(r->cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
  pthread_barrier_wait(r->go);
  r->ns = test_run(r->fd, r->pkt, r->repeat);
  return NULL;
}

// The same flow counted on every CPU at once: both threads run `repeat` times; the mean of their ns.
static double test_run_all_cpus(int fd, const struct tcp_packet* pkt, int repeat, int cpus) {
  pthread_t t[64];
  struct runner r[64];
  pthread_barrier_t go;
  if (cpus > 64) cpus = 64;
  pthread_barrier_init(&go, NULL, cpus);
  for (int i = 0; i < cpus; i++) {
    r[i] = (struct runner){.fd = fd, .cpu = i, .repeat = repeat, .pkt = pkt, .go = &go};
    pthread_create(&t[i], NULL, run_pinned, &r[i]);
  }
  double sum = 0;
  for (int i = 0; i < cpus; i++) {
    pthread_join(t[i], NULL);
    sum += r[i].ns;
  }
  pthread_barrier_destroy(&go);
  return sum / cpus;
}

// One run per new flow: the insert path. Averaged over `flows` packets, each a flow not yet in the map.
static double test_run_new_flows(int fd, int flows, uint32_t salt) {
  struct tcp_packet pkt;
  double sum = 0;
  for (int i = 0; i < flows; i++) {
    craft(&pkt, ((uint32_t)i << 16 | (i & 0xffff)) ^ salt);
    sum += test_run(fd, &pkt, 1);
  }
  return sum / flows;
}

// Empties a map (between measurements) with batch lookup-and-delete, or element by element for maps
// whose batch delete the kernel lacks.
static uint32_t drain(int fd, size_t value_size) {
  static struct flow_key keys[BATCH];
  uint8_t* values = malloc(value_size * BATCH);
  uint64_t token = 0;
  uint32_t total = 0;
  int first = 1;
  for (;;) {
    uint32_t count = BATCH;
    int rc = bpf_map_lookup_and_delete_batch(fd, first ? NULL : &token, &token, keys, values, &count, NULL);
    if (rc && errno != ENOENT) die("lookup_and_delete_batch");
    total += count;
    if (rc) break;
    first = 0;
  }
  free(values);
  return total;
}

// ---------------------------------------------------------------------------------------------------
// (b) reads

static void make_key(struct flow_key* k, uint32_t i) {
  memset(k, 0, sizeof *k);
  k->cgroup_id = 4242;
  k->family = 4;
  k->protocol = 17;
  k->local[10] = k->local[11] = k->remote[10] = k->remote[11] = 0xff;
  uint8_t l[4] = {10, 231, 0, 2}, r[4] = {10, 232, (uint8_t)(i >> 16), (uint8_t)(i >> 8)};
  memcpy(k->local + 12, l, 4);
  memcpy(k->remote + 12, r, 4);
  k->local_port = 20000 + (i & 0xff);
  k->remote_port = 30000 + (i >> 8) % 1000;
  // Every i gives its own key: (remote address, remote port, local port) encode i.
  k->remote[15] = (uint8_t)i;
}

// Maps without preallocation take their elements from per-CPU caches that the kernel refills
// asynchronously; a burst of inserts can find them empty (ENOMEM). The fill then waits and goes on from
// where it stopped, and counts how often that happened.
static uint64_t fill_retries;

static void update_batch(int fd, const struct flow_key* keys, const void* values, size_t value_size, uint32_t n) {
  for (uint32_t off = 0; off < n;) {
    uint32_t count = n - off < BATCH ? n - off : BATCH;
    int rc = bpf_map_update_batch(fd, keys + off, (const uint8_t*)values + off * value_size, &count, NULL);
    if (rc && errno != ENOMEM) die("bpf_map_update_batch");
    if (rc) {
      fill_retries++;
      if (fill_retries > 100000) die("bpf_map_update_batch keeps failing");
      usleep(1000);
    }
    off += count;
  }
}

struct entry {
  struct flow_key key;
  struct flow_value value;
};

// The double buffer's read, as cc/cgroup_flows.cc does it: swap, then drain the old buffer into entries.
static void double_read(struct prog* p, uint32_t n, struct entry* out, double* swap_ms, double* drain_ms) {
  static struct flow_key keys[BATCH];
  static struct flow_value values[BATCH];
  double t0 = now_ms();
  uint32_t zero = 0, next = p->buffer[1 - p->current];
  if (bpf_map_update_elem(p->active, &zero, &next, BPF_ANY)) die("swap");
  double t1 = now_ms();
  int drained = p->buffer[p->current];
  p->current = 1 - p->current;
  uint64_t token = 0;
  uint32_t total = 0;
  int first = 1;
  for (;;) {
    uint32_t count = BATCH;
    int rc = bpf_map_lookup_and_delete_batch(drained, first ? NULL : &token, &token, keys, values, &count, NULL);
    if (rc && errno != ENOENT) die("lookup_and_delete_batch");
    for (uint32_t i = 0; i < count; i++) {
      out[total + i].key = keys[i];
      out[total + i].value = values[i];
    }
    total += count;
    if (rc) break;
    first = 0;
  }
  double t2 = now_ms();
  if (total != n) {
    fprintf(stderr, "buffers: drained %u entries, expected %u\n", total, n);
    exit(1);
  }
  *swap_ms = t1 - t0;
  *drain_ms = t2 - t1;
}

// The previous reading of each flow, for the per-CPU variant's deltas: open addressing on the key.
struct prev {
  struct flow_key key;
  uint64_t tx_bytes, tx_packets, rx_bytes, rx_packets;
  uint8_t state;  // 0 empty, 1 used, 2 deleted
};
struct table {
  struct prev* slots;
  size_t mask;
};

static uint64_t hash_key(const struct flow_key* k) {
  const uint64_t* w = (const uint64_t*)k;
  uint64_t h = 0x9E3779B97F4A7C15ull;
  for (int i = 0; i < 6; i++) h = (h ^ w[i]) * 0xff51afd7ed558ccdull;
  return h ^ (h >> 29);
}

static struct prev* table_find(struct table* t, const struct flow_key* k, int insert) {
  size_t i = hash_key(k) & t->mask;
  struct prev* tomb = NULL;
  for (;;) {
    struct prev* s = &t->slots[i];
    if (s->state == 0) {
      if (!insert) return NULL;
      if (tomb) s = tomb;
      memset(s, 0, sizeof *s);
      s->key = *k;
      s->state = 1;
      return s;
    }
    if (s->state == 2) {
      if (!tomb) tomb = s;
    } else if (memcmp(&s->key, k, sizeof *k) == 0) {
      return s;
    }
    i = (i + 1) & t->mask;
  }
}

struct percpu_times {
  double lookup_ms, sum_ms, delete_ms;
  uint32_t rows, idle;
};

// The per-CPU variant's read: lookup_batch (a value per possible CPU), sum the copies, subtract the
// previous reading, delete the entries that did not move.
static void percpu_read(struct prog* p, uint32_t n, struct table* t, struct entry* out, struct flow_key* idle,
                        struct percpu_times* times) {
  static struct flow_key keys[BATCH];
  struct flow_key* all = malloc(sizeof(struct flow_key) * (n + BATCH));
  struct flow_value* values = malloc(sizeof(struct flow_value) * (size_t)ncpus * (n + BATCH));
  double t0 = now_ms();
  uint64_t token = 0;
  uint32_t total = 0;
  int first = 1;
  for (;;) {
    uint32_t count = BATCH;
    int rc = bpf_map_lookup_batch(p->flows, first ? NULL : &token, &token, keys, values + (size_t)total * ncpus,
                                  &count, NULL);
    if (rc && errno != ENOENT) die("lookup_batch");
    memcpy(all + total, keys, count * sizeof *keys);
    total += count;
    if (rc) break;
    first = 0;
  }
  double t1 = now_ms();
  uint32_t rows = 0, nidle = 0;
  for (uint32_t i = 0; i < total; i++) {
    const struct flow_value* v = values + (size_t)i * ncpus;
    uint64_t tb = 0, tp = 0, rb = 0, rp = 0;
    uint32_t flags = 0;
    for (int c = 0; c < ncpus; c++) {
      tb += v[c].tx_bytes;
      tp += v[c].tx_packets;
      rb += v[c].rx_bytes;
      rp += v[c].rx_packets;
      flags |= v[c].flags;
    }
    struct prev* s = table_find(t, &all[i], 1);
    if (tp == s->tx_packets && rp == s->rx_packets) {
      idle[nidle++] = all[i];
      s->state = 2;
      continue;
    }
    struct entry* e = &out[rows++];
    e->key = all[i];
    memset(&e->value, 0, sizeof e->value);
    e->value.tx_bytes = tb - s->tx_bytes;
    e->value.tx_packets = tp - s->tx_packets;
    e->value.rx_bytes = rb - s->rx_bytes;
    e->value.rx_packets = rp - s->rx_packets;
    e->value.flags = flags;
    s->tx_bytes = tb;
    s->tx_packets = tp;
    s->rx_bytes = rb;
    s->rx_packets = rp;
  }
  double t2 = now_ms();
  for (uint32_t off = 0; off < nidle; off += BATCH) {
    uint32_t count = nidle - off < BATCH ? nidle - off : BATCH;
    if (bpf_map_delete_batch(p->flows, idle + off, &count, NULL)) die("delete_batch");
  }
  double t3 = now_ms();
  if (total != n) {
    fprintf(stderr, "buffers: per-CPU read %u entries, expected %u\n", total, n);
    exit(1);
  }
  times->lookup_ms = t1 - t0;
  times->sum_ms = t2 - t1;
  times->delete_ms = t3 - t2;
  times->rows = rows;
  times->idle = nidle;
  free(all);
  free(values);
}

// ---------------------------------------------------------------------------------------------------
// (c) memory

// "memlock:" of a map's fdinfo: what the kernel charges for it (for hash maps without preallocation,
// computed from the entries it holds).
static long memlock(int fd) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
  FILE* f = fopen(path, "r");
  if (!f) return -1;
  long v = -1;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "memlock: %ld", &v) == 1) break;
  fclose(f);
  return v;
}

// SUnreclaim + Percpu + VmallocUsed of /proc/meminfo, in bytes: where map elements (slab when allocated
// one by one, vmalloc when preallocated) and per-CPU values live.
static long kernel_bytes(void) {
  char line[256];
  FILE* f = fopen("/proc/meminfo", "r");
  long total = 0, v;
  while (fgets(line, sizeof line, f)) {
    if (sscanf(line, "SUnreclaim: %ld kB", &v) == 1 || sscanf(line, "Percpu: %ld kB", &v) == 1 ||
        sscanf(line, "VmallocUsed: %ld kB", &v) == 1)
      total += v * 1024;
  }
  fclose(f);
  return total;
}

// ---------------------------------------------------------------------------------------------------

// The variants compared: the receiver's double buffer, the per-CPU map as declared (no preallocation,
// like the receiver's buffers), and the same preallocated (max_flows × possible CPUs values, reserved at
// load).
enum { PASS = 0, DOUBLE = 1, PERCPU = 2, PERCPU_PREALLOC = 3, VARIANTS = 4 };
static const char* names[VARIANTS] = {"pass", "double_buffer", "percpu", "percpu_prealloc"};

int main(int argc, char** argv) {
  if (argc < 6) {
    fprintf(stderr, "usage: buffers <flows.bpf.o> <percpu.bpf.o> <max_flows> <rounds> <N> [<N> ...]\n");
    return 2;
  }
  const char* double_path = argv[1];
  const char* percpu_path = argv[2];
  uint32_t max_flows = strtoul(argv[3], NULL, 10);
  int rounds = atoi(argv[4]);
  if (rounds < 1 || rounds > 20) {
    fprintf(stderr, "buffers: rounds must be 1..20\n");
    return 2;
  }
  for (int a = 5; a < argc; a++) {
    if (strtoul(argv[a], NULL, 10) > max_flows) {
      fprintf(stderr, "buffers: N %s exceeds max_flows %u\n", argv[a], max_flows);
      return 2;
    }
  }
  ncpus = libbpf_num_possible_cpus();
  int online = sysconf(_SC_NPROCESSORS_ONLN);
  libbpf_set_print(NULL);

  printf("{\"possible_cpus\":%d,\"online_cpus\":%d,\"max_flows\":%u,\"rounds\":%d,", ncpus, online, max_flows,
         rounds);

  // (c) memory first, on maps no earlier fill has touched: freed elements and per-CPU chunks stay with
  // the kernel's allocators for a while and would hide a later fill from /proc/meminfo. Each object's
  // load is measured too (the preallocated maps take their memory there). The largest N is used, both
  // buffers full (the moment of a swap when every flow is active) against one per-CPU map holding each
  // flow once. meminfo moves with the whole machine's work: the memlock figures are the kernel's own
  // accounting of each map.
  struct prog p[VARIANTS];
  const char* paths[VARIANTS] = {NULL, double_path, percpu_path, percpu_path};
  long loaded[VARIANTS];
  for (int k = DOUBLE; k < VARIANTS; k++) {
    long k0 = kernel_bytes();
    load(paths[k], max_flows, k == PERCPU_PREALLOC, &p[k]);
    loaded[k] = kernel_bytes() - k0;
  }
  p[PASS] = p[PERCPU];
  p[PASS].egress = p[PERCPU].pass;
  {
    uint32_t n = strtoul(argv[argc - 1], NULL, 10);
    struct flow_key* keys = malloc(sizeof *keys * n);
    for (uint32_t i = 0; i < n; i++) make_key(&keys[i], i);
    struct flow_value* single = calloc(n, sizeof *single);
    struct flow_value* per = calloc((size_t)n * ncpus, sizeof *per);
    printf("\"memory\":{\"flows\":%u,\"origins_memlock\":%ld", n, memlock(p[DOUBLE].origins));
    for (int k = DOUBLE; k < VARIANTS; k++) {
      int fd = k == DOUBLE ? p[k].buffer[0] : p[k].flows;
      long empty = memlock(fd);
      long k0 = kernel_bytes();
      if (k == DOUBLE) {
        update_batch(p[k].buffer[0], keys, single, sizeof *single, n);
        update_batch(p[k].buffer[1], keys, single, sizeof *single, n);
      } else {
        update_batch(p[k].flows, keys, per, sizeof *per * ncpus, n);
      }
      long k1 = kernel_bytes();
      long full = memlock(fd) + (k == DOUBLE ? memlock(p[k].buffer[1]) : 0);
      if (k == DOUBLE) {
        drain(p[k].buffer[0], sizeof(struct flow_value));
        drain(p[k].buffer[1], sizeof(struct flow_value));
      } else {
        drain(p[k].flows, sizeof(struct flow_value) * ncpus);
      }
      printf(",\"%s\":{\"counters\":%d,\"memlock_empty\":%ld,\"memlock_full\":%ld,\"meminfo_delta_load\":%ld,"
             "\"meminfo_delta_full\":%ld}",
             names[k], k == DOUBLE ? 2 : 1, empty * (k == DOUBLE ? 2 : 1), full, loaded[k], k1 - k0);
    }
    printf("},");
    free(keys);
    free(single);
    free(per);
  }

  // (a) per packet: each figure the median of `rounds` test runs.
  const int repeat = 1000000;
  const int new_flows = 20000;
  struct tcp_packet pkt;
  craft(&pkt, 7);
  double one[VARIANTS][20], all[VARIANTS][20], fresh[VARIANTS][20];
  uint64_t lost[VARIANTS] = {0};
  for (int r = 0; r < rounds; r++) {
    for (int k = 0; k < VARIANTS; k++) {
      one[k][r] = test_run(p[k].egress, &pkt, repeat);
      all[k][r] = test_run_all_cpus(p[k].egress, &pkt, repeat / 4, online);
      fresh[k][r] = test_run_new_flows(p[k].egress, new_flows, 0x5a5a0000u + r);
    }
    // Back to empty counters for the next round's new flows.
    drain(p[DOUBLE].buffer[0], sizeof(struct flow_value));
    drain(p[DOUBLE].buffer[1], sizeof(struct flow_value));
    drain(p[PERCPU].flows, sizeof(struct flow_value) * ncpus);
    drain(p[PERCPU_PREALLOC].flows, sizeof(struct flow_value) * ncpus);
  }
  for (int k = DOUBLE; k < VARIANTS; k++) lost[k] = lost_packets(&p[k]);
  printf("\"per_packet_ns\":{");
  for (int k = 0; k < VARIANTS; k++) {
    printf("%s\"%s\":{\"one_flow\":%.1f,\"one_flow_all_cpus\":%.1f,\"new_flow\":%.1f,\"lost_packets\":%llu}",
           k ? "," : "", names[k], median(one[k], rounds), median(all[k], rounds), median(fresh[k], rounds),
           (unsigned long long)lost[k]);
  }
  printf("},\"test_run\":{\"repeat\":%d,\"repeat_all_cpus\":%d,\"new_flows\":%d},", repeat, repeat / 4,
         new_flows);

  // (b) reads, for each N.
  printf("\"reads\":[");
  for (int a = 5; a < argc; a++) {
    uint32_t n = strtoul(argv[a], NULL, 10);
    struct flow_key* keys = malloc(sizeof *keys * n);
    for (uint32_t i = 0; i < n; i++) make_key(&keys[i], i);
    struct flow_value* single = calloc(n, sizeof *single);
    struct flow_value* per = calloc((size_t)n * ncpus, sizeof *per);
    struct entry* out = malloc(sizeof *out * (n + BATCH));
    struct flow_key* idle = malloc(sizeof *idle * (n + BATCH));

    double swap[20], dr[20], tot[20];
    for (int r = 0; r < rounds; r++) {
      for (uint32_t i = 0; i < n; i++) {
        single[i].tx_bytes = 1000 * (r + 1) + i;
        single[i].tx_packets = r + 1;
      }
      update_batch(p[DOUBLE].buffer[p[DOUBLE].current], keys, single, sizeof *single, n);
      double_read(&p[DOUBLE], n, out, &swap[r], &dr[r]);
      tot[r] = swap[r] + dr[r];
    }
    printf("%s{\"flows\":%u,\"double_buffer\":{\"swap_ms\":%.3f,\"lookup_and_delete_ms\":%.3f,\"total_ms\":%.3f}",
           a > 5 ? "," : "", n, median(swap, rounds), median(dr, rounds), median(tot, rounds));

    // Per-CPU: a first reading fills the table of previous values; then every round a tenth of the
    // flows (a different tenth each time) stays idle, is found unchanged and deleted, and comes back
    // the round after as a new entry.
    for (int k = PERCPU; k <= PERCPU_PREALLOC; k++) {
      double lk[20], sm[20], dl[20];
      struct table t;
      size_t cap = 1;
      while (cap < (size_t)n * 4) cap <<= 1;
      t.slots = calloc(cap, sizeof *t.slots);
      t.mask = cap - 1;
      struct percpu_times pt = {0};
      for (int r = -1; r < rounds; r++) {
        uint32_t moved = 0;
        for (uint32_t i = 0; i < n; i++) {
          if (r >= 0 && (i + r) % 10 == 0) continue;
          keys[moved] = keys[i];
          for (int cpu = 0; cpu < ncpus; cpu++) {
            struct flow_value* x = &per[(size_t)moved * ncpus + cpu];
            x->tx_bytes = 1000 * (r + 2) + i + cpu;
            x->tx_packets = r + 2;
          }
          moved++;
        }
        update_batch(p[k].flows, keys, per, sizeof *per * ncpus, moved);
        for (uint32_t i = 0; i < n; i++) make_key(&keys[i], i);
        percpu_read(&p[k], n, &t, out, idle, &pt);
        if (r < 0) continue;
        lk[r] = pt.lookup_ms;
        sm[r] = pt.sum_ms;
        dl[r] = pt.delete_ms;
        tot[r] = pt.lookup_ms + pt.sum_ms + pt.delete_ms;
      }
      drain(p[k].flows, sizeof(struct flow_value) * ncpus);
      free(t.slots);
      printf(",\"%s\":{\"lookup_ms\":%.3f,\"sum_and_delta_ms\":%.3f,\"delete_idle_ms\":%.3f,\"total_ms\":%.3f,"
             "\"rows\":%u,\"idle_deleted\":%u}",
             names[k], median(lk, rounds), median(sm, rounds), median(dl, rounds), median(tot, rounds), pt.rows,
             pt.idle);
    }
    printf("}");
    free(keys);
    free(single);
    free(per);
    free(out);
    free(idle);
  }
  printf("],\"fill_enomem_retries\":%llu}\n", (unsigned long long)fill_retries);
  for (int k = DOUBLE; k < VARIANTS; k++) bpf_object__close(p[k].obj);
  return 0;
}
