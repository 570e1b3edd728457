#include "netns.h"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

namespace netmon {

std::string EnterNetns(const std::string& path) {
  if (path.empty()) return "";
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "cannot open network namespace " + path + ": " + strerror(errno);
  int rc = setns(fd, CLONE_NEWNET);
  int err = errno;
  close(fd);
  if (rc != 0) {
    return "cannot enter network namespace " + path + ": " + strerror(err) +
           (err == EPERM ? " (needs CAP_SYS_ADMIN)" : err == EINVAL ? " (not a network namespace)" : "");
  }
  return "";
}

std::string RunInNetns(const std::string& path, const std::function<std::string()>& fn) {
  if (path.empty()) return fn();
  std::string result;
  std::thread worker([&] {
    result = EnterNetns(path);
    if (result.empty()) result = fn();
  });
  worker.join();
  return result;
}

static std::string SysctlPath(const std::string& name) { return "/proc/sys/" + name; }

std::string ReadSysctl(const std::string& netns, const std::string& name, std::string* value) {
  return RunInNetns(netns, [&]() -> std::string {
    std::string path = SysctlPath(name);
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return "cannot read " + path + ": " + strerror(errno);
    char buf[256];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    int err = errno;
    close(fd);
    if (n < 0) return "cannot read " + path + ": " + strerror(err);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' ')) n--;
    value->assign(buf, n);
    return "";
  });
}

std::string WriteSysctl(const std::string& netns, const std::string& name, const std::string& value) {
  return RunInNetns(netns, [&]() -> std::string {
    std::string path = SysctlPath(name);
    int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return "cannot write " + path + ": " + strerror(errno);
    ssize_t n = write(fd, value.data(), value.size());
    int err = errno;
    close(fd);
    if (n < 0) return "cannot write " + path + ": " + strerror(err);
    return "";
  });
}

}  // namespace netmon
