// Loading a BPF object onto a cgroup, shared by the flow counter (cgroup_flows.cc) and the DNS tracer
// (cgroup_dns.cc): libbpf's log captured into the error a user sees, cgroup_skb programs attached with
// BPF links (gone with the process, kill -9 included; other programs on the cgroup keep running), and
// every map's key and value sizes checked against the layout the addon was built with.
#pragma once

#include <bpf/libbpf.h>

#include <functional>
#include <string>
#include <vector>

// libbpf 1.0 returns NULL and sets errno on failure; 0.x returned error pointers, which this code would
// dereference.
#if !defined(LIBBPF_MAJOR_VERSION) || LIBBPF_MAJOR_VERSION < 1
#error "netmon's eBPF programs need libbpf 1.0 or later (Debian 12: libbpf-dev 1.1)"
#endif

namespace netmon {

std::string Errno(const std::string& what, int err);

// A map the caller reads, with the sizes its layout has.
struct MapSpec {
  const char* name;
  uint32_t key, value;
  int* fd;
};

// A loaded object and its links. Destroy() detaches and closes everything (also done on destruction).
struct CgroupObject {
  bpf_object* obj = nullptr;
  std::vector<bpf_link*> links;
  int cgroupFd = -1;

  CgroupObject() = default;
  CgroupObject(const CgroupObject&) = delete;
  CgroupObject& operator=(const CgroupObject&) = delete;
  ~CgroupObject() { Destroy(); }
  void Destroy();
};

// Called with the object; returns "" or an error.
using ObjectStep = std::function<std::string(bpf_object*)>;

// Opens `objectPath`, lets `size` set map sizes before the load, loads it, checks `maps`, lets `ready`
// fill them (settings the programs read), then attaches `programs` to the cgroup directory `cgroupPath`.
// Returns "" or what went wrong, with the end of libbpf's log (the verifier's verdict).
std::string LoadOnCgroup(const std::string& objectPath, const std::string& cgroupPath, const ObjectStep& size,
                         const std::vector<MapSpec>& maps, const ObjectStep& ready,
                         const std::vector<const char*>& programs, CgroupObject* out);

// Sums a per-CPU array of u64 counters: out[i] for every index below `count`.
void SumPerCpu(int fd, uint32_t count, uint64_t* out);

}  // namespace netmon
