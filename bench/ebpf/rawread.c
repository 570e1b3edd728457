// The floor for the receiver's map read: a plain bpf_map_lookup_batch over a hash map of the receiver's
// key/value layout (native/bpf/flows.h; no preallocation, as the program declares its buffers), filled
// with N entries by bpf_map_update_batch. Also the same with lookup_and_delete_batch, the call the addon
// drains a buffer with (refilled, untimed, before each round). Built and run by receiver.mjs; prints one
// JSON object.
//
//   rawread <N> <rounds> [max_entries]
#include <bpf/bpf.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "flows.h"

#define BATCH 4096  // as the addon (cc/cgroup_flows.cc)

static double clock_ms(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}
static double now_ms(void) { return clock_ms(CLOCK_MONOTONIC); }
static double cpu_ms(void) { return clock_ms(CLOCK_THREAD_CPUTIME_ID); }

static void die(const char* what) {
  fprintf(stderr, "rawread: %s: %s\n", what, strerror(errno));
  exit(1);
}

static int cmp(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

static void fill(int fd, const struct flow_key* keys, const struct flow_value* values, uint32_t n) {
  for (uint32_t off = 0; off < n; off += BATCH) {
    uint32_t count = n - off < BATCH ? n - off : BATCH;
    if (bpf_map_update_batch(fd, keys + off, values + off, &count, NULL)) die("bpf_map_update_batch");
  }
}

// One pass over the whole map, copied out as the addon copies entries; returns the entries read.
static uint32_t read_all(int fd, int and_delete, struct flow_key* keys, struct flow_value* values) {
  uint64_t token = 0;
  uint32_t total = 0;
  int first = 1;
  for (;;) {
    uint32_t count = BATCH;
    int rc = and_delete ? bpf_map_lookup_and_delete_batch(fd, first ? NULL : &token, &token, keys + total,
                                                          values + total, &count, NULL)
                        : bpf_map_lookup_batch(fd, first ? NULL : &token, &token, keys + total, values + total,
                                               &count, NULL);
    if (rc && errno != ENOENT) die(and_delete ? "lookup_and_delete_batch" : "lookup_batch");
    total += count;
    if (rc) return total;
    first = 0;
  }
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: rawread <N> <rounds> [max_entries]\n");
    return 2;
  }
  uint32_t n = strtoul(argv[1], NULL, 10);
  int rounds = atoi(argv[2]);
  uint32_t max = argc > 3 ? strtoul(argv[3], NULL, 10) : n;
  if (rounds < 1 || rounds > 100 || n == 0 || max < n) {
    fprintf(stderr, "rawread: need 1..100 rounds and 0 < N <= max_entries\n");
    return 2;
  }
  LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_NO_PREALLOC);
  int fd = bpf_map_create(BPF_MAP_TYPE_HASH, "rawread", sizeof(struct flow_key), sizeof(struct flow_value), max,
                          &opts);
  if (fd < 0) die("bpf_map_create");

  struct flow_key* keys = calloc(n, sizeof *keys);
  struct flow_value* values = calloc(n, sizeof *values);
  for (uint32_t i = 0; i < n; i++) {
    struct flow_key* k = &keys[i];
    k->cgroup_id = 4242;
    k->family = 4;
    k->protocol = 17;
    k->local[10] = k->local[11] = k->remote[10] = k->remote[11] = 0xff;
    k->local[12] = 10, k->local[13] = 231, k->local[15] = 2;
    k->remote[12] = 10, k->remote[13] = 232, k->remote[14] = (uint8_t)(i >> 16), k->remote[15] = (uint8_t)i;
    k->local_port = 20000 + (i >> 8) % 256;
    k->remote_port = 30000 + (i >> 16);
    values[i].tx_bytes = 100 + i;
    values[i].tx_packets = 1;
  }
  struct flow_key* outk = calloc(n + BATCH, sizeof *outk);
  struct flow_value* outv = calloc(n + BATCH, sizeof *outv);

  // Wall time, as the addon reports its reads, and this thread's CPU time, which other work on the
  // machine does not stretch.
  double lookup[100], drain[100], lookup_cpu[100], drain_cpu[100];
  fill(fd, keys, values, n);
  for (int r = 0; r < rounds; r++) {
    double t0 = now_ms(), c0 = cpu_ms();
    uint32_t got = read_all(fd, 0, outk, outv);
    lookup[r] = now_ms() - t0;
    lookup_cpu[r] = cpu_ms() - c0;
    if (got != n) {
      fprintf(stderr, "rawread: lookup_batch read %u entries, expected %u\n", got, n);
      return 1;
    }
  }
  for (int r = 0; r < rounds; r++) {
    if (r > 0) fill(fd, keys, values, n);
    double t0 = now_ms(), c0 = cpu_ms();
    uint32_t got = read_all(fd, 1, outk, outv);
    drain[r] = now_ms() - t0;
    drain_cpu[r] = cpu_ms() - c0;
    if (got != n) {
      fprintf(stderr, "rawread: lookup_and_delete_batch read %u entries, expected %u\n", got, n);
      return 1;
    }
  }
  double* all[4] = {lookup, drain, lookup_cpu, drain_cpu};
  for (int i = 0; i < 4; i++) qsort(all[i], rounds, sizeof(double), cmp);
  printf("{\"flows\":%u,\"rounds\":%d,\"lookup_batch_ms\":{\"median\":%.3f,\"min\":%.3f,\"max\":%.3f,"
         "\"cpu_median\":%.3f},\"lookup_and_delete_batch_ms\":{\"median\":%.3f,\"min\":%.3f,\"max\":%.3f,"
         "\"cpu_median\":%.3f}}\n",
         n, rounds, lookup[rounds / 2], lookup[0], lookup[rounds - 1], lookup_cpu[rounds / 2], drain[rounds / 2],
         drain[0], drain[rounds - 1], drain_cpu[rounds / 2]);
  return 0;
}
