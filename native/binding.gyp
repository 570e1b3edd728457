{
  "targets": [
    {
      "target_name": "netmon_native",
      "sources": ["cc/addon.cc", "cc/ctnetlink.cc", "cc/netns.cc", "cc/conntrack.cc", "cc/cgroup_flows.cc", "cc/cgroup_dns.cc", "cc/bpf_object.cc", "cc/pinned_map.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS",
                  "NODE_ADDON_API_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fno-exceptions"],
      "dependencies": ["bpf_objects"],
      "conditions": [
        ["OS=='linux'", {
          "cflags_cc": ["<!@(pkg-config --cflags libmnl libbpf)"],
          "libraries": ["<!@(pkg-config --libs libmnl libbpf)", "-lpthread"]
        }]
      ]
    },
    {
      # The BPF objects, built by clang next to the addon (build/Release/*.bpf.o). The multiarch
      # include folder holds <asm/types.h>, which the kernel's UAPI headers need; -g keeps the BTF that
      # libbpf needs for map definitions, and each object is stripped of DWARF afterwards.
      "target_name": "bpf_objects",
      "type": "none",
      "actions": [
        {
          "action_name": "clang_bpf",
          "inputs": ["bpf/flows.bpf.c", "bpf/flows.h", "bpf/packet.h"],
          "outputs": ["<(PRODUCT_DIR)/flows.bpf.o"],
          "action": ["sh", "-c", "clang -target bpf -mcpu=v3 -O2 -g -Wall -Werror -I bpf -I/usr/include/<!(gcc -dumpmachine) -c bpf/flows.bpf.c -o <(PRODUCT_DIR)/flows.bpf.o && llvm-strip -g <(PRODUCT_DIR)/flows.bpf.o"],
          "message": "clang: bpf/flows.bpf.c"
        },
        {
          "action_name": "clang_bpf_dns",
          "inputs": ["bpf/dns.bpf.c", "bpf/dns.h", "bpf/packet.h"],
          "outputs": ["<(PRODUCT_DIR)/dns.bpf.o"],
          "action": ["sh", "-c", "clang -target bpf -mcpu=v3 -O2 -g -Wall -Werror -I bpf -I/usr/include/<!(gcc -dumpmachine) -c bpf/dns.bpf.c -o <(PRODUCT_DIR)/dns.bpf.o && llvm-strip -g <(PRODUCT_DIR)/dns.bpf.o"],
          "message": "clang: bpf/dns.bpf.c"
        }
      ]
    }
  ]
}
