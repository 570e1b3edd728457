// Running work inside a network namespace given by path (/run/netns/NAME, /proc/PID/ns/net).
//
// setns(CLONE_NEWNET) changes only the calling thread, so the work runs on a short-lived thread of its
// own: the libuv pool and the JS thread never change namespace. A netlink socket keeps the namespace it
// was created in for its whole life, so "open the socket in the namespace" is all a dump needs; the
// per-netns /proc/sys/net files are likewise resolved at open time.
#pragma once

#include <functional>
#include <string>

namespace netmon {

// Runs fn on a thread that has joined the namespace at `path` (empty: the process's own namespace,
// on the calling thread). Returns "" on success, or an error message naming the path and errno.
std::string RunInNetns(const std::string& path, const std::function<std::string()>& fn);

// Joins the namespace at `path` on the calling thread (for threads the addon owns). "" on success.
std::string EnterNetns(const std::string& path);

// Reads / writes a sysctl under /proc/sys (e.g. "net/netfilter/nf_conntrack_acct") as seen from the
// namespace at `path`. "" on success, else an error message.
std::string ReadSysctl(const std::string& netns, const std::string& name, std::string* value);
std::string WriteSysctl(const std::string& netns, const std::string& name, const std::string& value);

}  // namespace netmon
