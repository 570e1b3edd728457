// Attaches the count_egress and count_ingress programs of a BPF object (bench/ebpf/percpu.bpf.c, or the
// receiver's program with a padded value) to a cgroup with BPF links, for throughput.mjs to time them in
// real traffic beside the receiver's. Prints
// "attached <egress id> <ingress id>", then holds the links until a signal ends it; the kernel detaches
// them when this process ends, however it ends. Nothing is pinned.
//
//   attach <object> <cgroup> <max_flows>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: attach <object> <cgroup> <max_flows>\n");
    return 2;
  }
  unsigned max_flows = strtoul(argv[3], NULL, 10);
  libbpf_set_print(NULL);
  struct bpf_object* obj = bpf_object__open_file(argv[1], NULL);
  if (!obj) {
    fprintf(stderr, "attach: cannot open %s: %s\n", argv[1], strerror(errno));
    return 1;
  }
  // Sized as the receiver sizes its maps: the counters max_flows, origins twice that.
  const char* counters[] = {"flows", "buffer_a", "buffer_b"};
  struct bpf_map* m;
  for (int i = 0; i < 3; i++)
    if ((m = bpf_object__find_map_by_name(obj, counters[i]))) bpf_map__set_max_entries(m, max_flows);
  m = bpf_object__find_map_by_name(obj, "origins");
  if (m) bpf_map__set_max_entries(m, max_flows * 2);
  if (bpf_object__load(obj)) {
    fprintf(stderr, "attach: the kernel refused %s: %s\n", argv[1], strerror(errno));
    return 1;
  }
  int cg = open(argv[2], O_RDONLY | O_DIRECTORY);
  if (cg < 0) {
    fprintf(stderr, "attach: cannot open the cgroup %s: %s\n", argv[2], strerror(errno));
    return 1;
  }
  const char* names[2] = {"count_egress", "count_ingress"};
  unsigned ids[2];
  for (int i = 0; i < 2; i++) {
    struct bpf_program* p = bpf_object__find_program_by_name(obj, names[i]);
    if (!p || !bpf_program__attach_cgroup(p, cg)) {
      fprintf(stderr, "attach: cannot attach %s: %s\n", names[i], strerror(errno));
      return 1;
    }
    struct bpf_prog_info info;
    unsigned len = sizeof info;
    memset(&info, 0, sizeof info);
    bpf_obj_get_info_by_fd(bpf_program__fd(p), &info, &len);
    ids[i] = info.id;
  }
  printf("attached %u %u\n", ids[0], ids[1]);
  fflush(stdout);
  for (;;) pause();
}
