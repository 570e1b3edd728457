{
  "targets": [
    {
      "target_name": "netmon_native",
      "sources": ["cc/addon.cc", "cc/ctnetlink.cc", "cc/netns.cc", "cc/conntrack.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS",
                  "NODE_ADDON_API_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fno-exceptions"],
      "conditions": [
        ["OS=='linux'", {
          "cflags_cc": ["<!@(pkg-config --cflags libmnl)"],
          "libraries": ["<!@(pkg-config --libs libmnl)", "-lpthread"]
        }]
      ]
    }
  ]
}
