#!/usr/bin/env bash
# Builds netmon's container image from this checkout's Dockerfile with docker, or podman when docker is not
# installed (`make image`). Needs a running engine, not a local build: everything is built inside it.
#
# Usage: scripts/image-build.sh [--engine CMD] [--tag NAME:TAG] [--version V] [--revision R]
#                               [--node-image IMAGE] [-- ENGINE-BUILD-ARG...]
#
#   --engine      the engine's command (default: docker if on PATH, else podman)
#   --version     the image's version label (default: packages/agent/package.json's version, which is
#                 what `netmon --version` prints)
#   --revision    the commit (default: git rev-parse HEAD, with -dirty when tracked files have changes)
#   --tag         the image's name (default: netmon:VERSION)
#   --node-image  the base image of both stages (default: the Dockerfile's NODE_IMAGE, the Node of
#                 .node-version on Debian 12 slim), e.g. pinned by digest
#   after --       passed to `ENGINE build` as they are (e.g. --platform linux/arm64, --push)
set -Eeuo pipefail

ROOT=$(cd -- "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")/.." && pwd)

die() {
  printf 'image-build: %s\n' "$*" >&2
  exit 1
}

engine='' tag='' version='' revision='' node_image=''
extra=()
while (($#)); do
  case $1 in
    --engine | --tag | --version | --revision | --node-image)
      (($# >= 2)) && [[ -n $2 ]] || die "$1 needs a value"
      case $1 in
        --engine) engine=$2 ;;
        --tag) tag=$2 ;;
        --version) version=$2 ;;
        --revision) revision=$2 ;;
        --node-image) node_image=$2 ;;
      esac
      shift
      ;;
    --)
      shift
      extra=("$@")
      break
      ;;
    -h | --help)
      awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"
      exit 0
      ;;
    *) die "unknown argument '$1' (see scripts/image-build.sh --help)" ;;
  esac
  shift
done

if [[ -z $engine ]]; then
  engine=$(command -v docker || command -v podman || true)
  [[ -n $engine ]] || die 'no container engine: neither docker nor podman is on PATH; install one, or name it with --engine (make image ENGINE=...)'
fi
command -v "$engine" >/dev/null || die "no container engine: '$engine' is not a command"
# A client without its daemon (or a user not allowed to use it) fails here, before a long build would.
if ! out=$("$engine" info 2>&1 >/dev/null); then
  die "no container engine: $engine info failed (is the daemon running, and may this user reach it?): $(head -n 3 <<<"$out")"
fi

if [[ -z $version ]]; then
  version=$(sed -n 's/^  "version": "\([^"]*\)",\{0,1\}$/\1/p' "$ROOT/packages/agent/package.json")
  [[ -n $version ]] || die "no version in $ROOT/packages/agent/package.json: give --version"
fi
if [[ -z $revision ]] && revision=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null); then
  git -C "$ROOT" diff --quiet HEAD -- 2>/dev/null || revision+=-dirty
fi
# The origin's URL as the source label, without credentials (https://user:token@host/…) and as https.
source=$(git -C "$ROOT" remote get-url origin 2>/dev/null || true)
source=$(sed -E 's#^git@([^:]+):#https://\1/#; s#^(https?://)[^/@]*@#\1#; s#\.git$##' <<<"$source")

args=(build -f "$ROOT/Dockerfile" -t "${tag:-netmon:$version}"
  --build-arg "VERSION=$version" --build-arg "REVISION=${revision:-unknown}" --build-arg "SOURCE=$source")
[[ -z $node_image ]] || args+=(--build-arg "NODE_IMAGE=$node_image")
# podman writes OCI images by default, which have no HEALTHCHECK field: it would warn about the Dockerfile's.
[[ $(basename -- "$engine") != podman ]] || args+=(--format docker)
args+=("${extra[@]}" "$ROOT")
printf 'image-build: %s %s\n' "$engine" "${args[*]}"
exec "$engine" "${args[@]}"
