#!/usr/bin/env bash
# Runs every test: typecheck, then vitest (unit, GPU kernels and model on SwiftShader, goldens
# from llama.cpp). The tests read ../shared/models and ../shared/goldens (or $WGSERVE_SHARED).
set -euo pipefail
cd "$(dirname "$0")/.."
export WGSERVE_SHARED=${WGSERVE_SHARED:-$(cd .. && pwd)/shared}
for d in models goldens; do
  if [ ! -d "$WGSERVE_SHARED/$d" ]; then
    echo "test: $WGSERVE_SHARED/$d is missing: the model and golden tests need it (set WGSERVE_SHARED)" >&2
    exit 1
  fi
done
# A real GPU's driver is kept if set; otherwise Dawn uses Chromium's SwiftShader.
if [ -z "${VK_ICD_FILENAMES:-}" ] && [ -f /usr/lib/chromium/vk_swiftshader_icd.json ]; then
  export VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json
fi
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
echo "test: typecheck" >&2
npx tsc --noEmit
npx vitest run "$@"
