// Creates a map in the layout of Cilium's IPv4 TCP conntrack map (cilium_ct4_global: an LRU hash, the
// 14-byte `struct ipv4_ct_tuple` key, the 56-byte `struct ct_entry` value; bpf/lib/common.h in
// https://github.com/cilium/cilium), fills it with N entries by bpf_map_update_batch and pins it. The
// fastest honest way to a full map: `bpftool batch` runs one update syscall per line after parsing its
// hex, which at a million entries takes minutes; one batch call per 4,096 entries takes about a second.
// Built and run by read.mjs; prints one JSON object.
//
//   fill <pin> <N> <max_entries> <split|total>
//   fill read <pin> <rounds>     the floor: plain bpf_map_lookup_batch over the pinned map, into buffers
//                                allocated once, no copy (4,096 entries per call, as the addon)
//
// The entries are a node's mix: per 20, one SERVICE entry, two IN entries, one IN entry that is the twin
// of the OUT entry before it (a connection between two pods of the node), sixteen OUT entries. Every
// lifetime is an hour ahead on the monotonic clock (Cilium's default ktime unit).
#include <bpf/bpf.h>
#include <endian.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BATCH 4096

struct ct_key {
  uint8_t daddr[4];
  uint8_t saddr[4];
  uint16_t dport;  // network byte order
  uint16_t sport;
  uint8_t nexthdr;
  uint8_t flags;
} __attribute__((packed));

struct ct_value {
  uint64_t first;   // split: rx_packets; total: reserved (0)
  uint64_t second;  // split: rx_bytes; total: a SERVICE entry's backend id
  uint64_t packets; // split: tx_packets
  uint64_t bytes;   // split: tx_bytes
  uint32_t lifetime;
  uint16_t flags;
  uint16_t rev_nat_index;
  uint16_t ifindex;
  uint8_t tx_flags_seen;
  uint8_t rx_flags_seen;
  uint32_t src_sec_id;
  uint32_t last_tx_report;
  uint32_t last_rx_report;
};

_Static_assert(sizeof(struct ct_key) == 14, "ipv4_ct_tuple is 14 bytes");
_Static_assert(sizeof(struct ct_value) == 56, "ct_entry is 56 bytes");

static void die(const char* what) {
  fprintf(stderr, "fill: %s: %s\n", what, strerror(errno));
  exit(1);
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static uint32_t mix(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352d;
  x ^= x >> 15;
  x *= 0x846ca68b;
  x ^= x >> 16;
  return x;
}

// A tuple of its own for entry i: the opener (daddr:sport) a pod 10.1.x.y, the other side 10.2.x.y.
static void tuple(uint32_t i, struct ct_key* k) {
  static const uint16_t ports[] = {80, 443, 5432, 6379, 8080, 9090, 3306, 53};
  uint32_t h = mix(i);
  k->daddr[0] = 10;
  k->daddr[1] = 1;
  k->daddr[2] = (i >> 8) & 0xff;
  k->daddr[3] = i & 0xff;
  k->saddr[0] = 10;
  k->saddr[1] = 2;
  k->saddr[2] = (h >> 8) & 0xff;
  k->saddr[3] = h & 0xff;
  k->dport = htobe16(ports[(h >> 16) & 7]);
  k->sport = htobe16(32768 + (i >> 16));
  k->nexthdr = 6;
  k->flags = 0;
}

static int cmp(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

static int read_rounds(const char* pin, int rounds) {
  int fd = bpf_obj_get(pin);
  if (fd < 0) die("bpf_obj_get");
  struct bpf_map_info info;
  uint32_t len = sizeof info;
  memset(&info, 0, sizeof info);
  if (bpf_obj_get_info_by_fd(fd, &info, &len)) die("bpf_obj_get_info_by_fd");
  struct ct_key* keys = calloc(info.max_entries + BATCH, sizeof *keys);
  struct ct_value* values = calloc(info.max_entries + BATCH, sizeof *values);
  double* ms = calloc(rounds, sizeof *ms);
  if (!keys || !values || !ms) die("calloc");
  uint32_t total = 0;
  for (int r = 0; r < rounds; r++) {
    double t0 = now_ms();
    uint64_t token = 0;
    int first = 1;
    total = 0;
    for (;;) {
      uint32_t count = BATCH;
      int rc = bpf_map_lookup_batch(fd, first ? NULL : &token, &token, keys + total, values + total, &count, NULL);
      if (rc && errno != ENOENT) die("bpf_map_lookup_batch");
      total += count;
      if (rc) break;
      first = 0;
    }
    ms[r] = now_ms() - t0;
  }
  qsort(ms, rounds, sizeof *ms, cmp);
  printf("{\"entries\":%u,\"rounds\":%d,\"lookup_batch_ms\":%.2f}\n", total, rounds, ms[rounds / 2]);
  return 0;
}

int main(int argc, char** argv) {
  if (argc == 4 && strcmp(argv[1], "read") == 0) {
    int rounds = atoi(argv[3]);
    if (rounds < 1 || rounds > 1000) {
      fprintf(stderr, "fill: 1..1000 rounds\n");
      return 2;
    }
    return read_rounds(argv[2], rounds);
  }
  if (argc != 5) {
    fprintf(stderr, "usage: fill <pin> <N> <max_entries> <split|total>\n");
    return 2;
  }
  const char* pin = argv[1];
  uint32_t n = strtoul(argv[2], NULL, 10);
  uint32_t max = strtoul(argv[3], NULL, 10);
  int split = strcmp(argv[4], "split") == 0;
  if (n == 0 || max < n || n > (1u << 24)) {
    fprintf(stderr, "fill: need 0 < N <= max_entries, N <= 2^24\n");
    return 2;
  }
  struct timespec mono;
  clock_gettime(CLOCK_MONOTONIC, &mono);
  uint32_t lifetime = (uint32_t)mono.tv_sec + 3600;

  struct ct_key* keys = calloc(n, sizeof *keys);
  struct ct_value* values = calloc(n, sizeof *values);
  if (!keys || !values) die("calloc");
  uint32_t counts[4] = {0, 0, 0, 0};  // OUT, IN, SERVICE, IN twins of an OUT entry
  for (uint32_t i = 0; i < n; i++) {
    struct ct_key* k = &keys[i];
    struct ct_value* v = &values[i];
    uint32_t j = i % 20, h = mix(i ^ 0x9e3779b9);
    v->lifetime = lifetime;
    v->flags = 0x10;  // seen_non_syn
    if (j == 0) {
      // SERVICE: VIP 10.96.x.y, client, client port, service port; counts nothing, holds a backend id.
      tuple(i, k);
      k->daddr[0] = 10;
      k->daddr[1] = 96;
      k->saddr[0] = 10;
      k->saddr[1] = 1;
      k->flags = 4;
      v->second = 1 + (h & 0xfff);
      counts[2]++;
      continue;
    }
    if (j == 5 && i > 0) {
      // The twin of the OUT entry before it: same tuple, flag IN, the mirror of its counters.
      *k = keys[i - 1];
      k->flags = 1;
      *v = values[i - 1];
      if (split) {
        v->first = values[i - 1].packets;
        v->second = values[i - 1].bytes;
        v->packets = values[i - 1].first;
        v->bytes = values[i - 1].second;
      }
      counts[1]++;
      counts[3]++;
      continue;
    }
    tuple(i, k);
    k->flags = (j == 1 || j == 2) ? 1 : 0;
    counts[k->flags]++;
    uint64_t out_p = 1 + (h & 0xff), back_p = 1 + ((h >> 8) & 0xff);
    uint64_t out_b = out_p * (60 + (h >> 20)), back_b = back_p * (60 + ((h >> 12) & 0x3ff));
    if (split) {
      // Relative to the local endpoint: an OUT entry's tx is the opener's, an IN entry's rx is.
      int in = k->flags == 1;
      v->packets = in ? back_p : out_p;
      v->bytes = in ? back_b : out_b;
      v->first = in ? out_p : back_p;
      v->second = in ? out_b : back_b;
    } else {
      v->packets = out_p + back_p;
      v->bytes = out_b + back_b;
    }
  }

  int fd = bpf_map_create(BPF_MAP_TYPE_LRU_HASH, "cilium_ct4_glob", sizeof(struct ct_key), sizeof(struct ct_value),
                          max, NULL);
  if (fd < 0) die("bpf_map_create");
  double t0 = now_ms();
  for (uint32_t off = 0; off < n; off += BATCH) {
    uint32_t count = n - off < BATCH ? n - off : BATCH;
    if (bpf_map_update_batch(fd, keys + off, values + off, &count, NULL)) die("bpf_map_update_batch");
  }
  double fill_ms = now_ms() - t0;
  if (bpf_obj_pin(fd, pin)) die("bpf_obj_pin");
  printf("{\"entries\":%u,\"max_entries\":%u,\"fill_ms\":%.1f,\"out\":%u,\"in\":%u,\"service\":%u,\"twins\":%u}\n",
         n, max, fill_ms, counts[0], counts[1], counts[2], counts[3]);
  return 0;
}
