{
  "targets": [
    {
      "target_name": "netmon_native",
      "sources": ["cc/addon.cc", "cc/ctnetlink.cc", "cc/netns.cc", "cc/conntrack.cc"],
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "conditions": [
        ["OS=='linux'", {
          "cflags_cc": ["<!@(pkg-config --cflags libmnl)"],
          "libraries": ["<!@(pkg-config --libs libmnl)", "-lpthread"]
        }]
      ]
    }
  ]
}
