#!/usr/bin/env bash
# Everything wgserve needs on a fresh Debian machine, installed once and skipped after:
# npm packages, and for WebGPU without a GPU, Debian's chromium (which brings SwiftShader, a
# CPU Vulkan driver, and is the browser of the end-to-end tests) and libvulkan1 (the Vulkan
# loader that the `webgpu` package, Dawn for Node, loads).
# Use: bash scripts/setup.sh [--quiet]
set -euo pipefail
cd "$(dirname "$0")/.."
quiet=${1:-}
say() { [ "$quiet" = "--quiet" ] || echo "setup: $*" >&2; }

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm packages (npm ci)" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
fi

need=()
{ [ -x /usr/bin/chromium ] && [ -f /usr/lib/chromium/vk_swiftshader_icd.json ]; } || need+=(chromium)
ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1' || need+=(libvulkan1)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${need[*]}" >&2
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq >&2
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi

node scripts/gen-shaders.mjs
say "ready"
