#include "bpf_object.h"

#include <bpf/bpf.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <mutex>

namespace netmon {

std::string Errno(const std::string& what, int err) { return what + ": " + std::strerror(err); }

namespace {

// libbpf's messages (the verifier's log among them) are collected while an object loads, so a refusal
// reaches the user in the error instead of on stderr. Loads are serialised by g_loadMutex; the callback
// runs on the loading thread.
std::mutex g_loadMutex;
std::string* g_loadLog = nullptr;

int CollectLibbpfLog(enum libbpf_print_level level, const char* fmt, va_list args) {
  if (level == LIBBPF_DEBUG || g_loadLog == nullptr) return 0;
  char line[1024];
  int n = vsnprintf(line, sizeof line, fmt, args);
  if (n > 0 && g_loadLog->size() < 16384) g_loadLog->append(line, std::min<size_t>(n, sizeof line - 1));
  return 0;
}

// The last lines of libbpf's log: the verifier's verdict comes last.
std::string LogTail(const std::string& log) {
  if (log.empty()) return "";
  size_t start = log.size() > 2000 ? log.find('\n', log.size() - 2000) : 0;
  return "\n" + log.substr(start == std::string::npos ? 0 : start);
}

}  // namespace

void CgroupObject::Destroy() {
  for (auto* l : links) {
    if (l) bpf_link__destroy(l);
  }
  links.clear();
  if (obj) bpf_object__close(obj);
  obj = nullptr;
  if (cgroupFd >= 0) close(cgroupFd);
  cgroupFd = -1;
}

std::string LoadOnCgroup(const std::string& objectPath, const std::string& cgroupPath, const ObjectStep& size,
                         const std::vector<MapSpec>& maps, const ObjectStep& ready,
                         const std::vector<const char*>& programs, CgroupObject* out) {
  std::lock_guard<std::mutex> lock(g_loadMutex);
  std::string log;
  g_loadLog = &log;
  libbpf_print_fn_t previous = libbpf_set_print(CollectLibbpfLog);
  auto finish = [&](std::string err) {
    libbpf_set_print(previous);
    g_loadLog = nullptr;
    if (!err.empty()) out->Destroy();
    return err;
  };

  out->cgroupFd = open(cgroupPath.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (out->cgroupFd < 0) return finish(Errno("cannot open the cgroup " + cgroupPath, errno));

  out->obj = bpf_object__open_file(objectPath.c_str(), nullptr);
  if (!out->obj) {
    int err = errno;
    out->obj = nullptr;
    return finish(Errno("cannot open the BPF object " + objectPath, err) + LogTail(log));
  }
  std::string sized = size(out->obj);
  if (!sized.empty()) return finish(sized);
  if (bpf_object__load(out->obj) != 0) {
    int err = errno;
    return finish(Errno("the kernel refused the BPF programs", err) + LogTail(log));
  }

  for (const MapSpec& e : maps) {
    bpf_map* m = bpf_object__find_map_by_name(out->obj, e.name);
    if (!m) return finish(std::string("the BPF object lacks the map ") + e.name);
    if (bpf_map__key_size(m) != e.key || bpf_map__value_size(m) != e.value) {
      return finish(std::string("the map ") + e.name + " has key/value sizes " + std::to_string(bpf_map__key_size(m)) +
                    "/" + std::to_string(bpf_map__value_size(m)) + ", not " + std::to_string(e.key) + "/" +
                    std::to_string(e.value) + ": the BPF object and the addon were built from different sources");
    }
    *e.fd = bpf_map__fd(m);
  }
  std::string prepared = ready ? ready(out->obj) : "";
  if (!prepared.empty()) return finish(prepared);

  for (const char* name : programs) {
    bpf_program* p = bpf_object__find_program_by_name(out->obj, name);
    if (!p) return finish(std::string("the BPF object lacks the program ") + name);
    bpf_link* link = bpf_program__attach_cgroup(p, out->cgroupFd);
    if (!link) {
      int err = errno;
      return finish(Errno(std::string("cannot attach ") + name + " to " + cgroupPath, err) + LogTail(log));
    }
    out->links.push_back(link);
  }

  return finish("");
}

void SumPerCpu(int fd, uint32_t count, uint64_t* out) {
  int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return;
  std::vector<uint64_t> perCpu(cpus);
  for (uint32_t i = 0; i < count; i++) {
    if (bpf_map_lookup_elem(fd, &i, perCpu.data()) != 0) continue;
    uint64_t sum = 0;
    for (uint64_t v : perCpu) sum += v;
    out[i] = sum;
  }
}

}  // namespace netmon
