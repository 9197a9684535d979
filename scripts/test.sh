#!/usr/bin/env bash
# `npm test`: everything CI checks, in order of cost. Installs the Debian packages the tests need when missing
# (CI runs as root on a fresh machine; nothing here downloads a browser from the internet).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
/usr/bin/python3 -c 'import torch, numpy, scipy, sklearn, skimage, PIL, onnx' 2>/dev/null ||
  need_apt+=(python3-torch python3-numpy python3-scipy python3-sklearn python3-skimage python3-pil python3-onnx)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "test: installing Debian packages: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

step() { echo; echo "== $1"; }
step 'lint (biome)';            npx biome check .
step 'typecheck (tsc)';         npx tsc --noEmit -p tsconfig.json
step 'unit tests (node)';       npx vitest run --project unit
step 'PyTorch reference self-tests'; /usr/bin/python3 training/reference/test_reference.py
step 'metrics against sklearn/skimage (npm run metrics:check)'; npm run --silent metrics:check
step 'parity with the official goldens and the reference (npm run parity)'; npm run --silent parity
step 'training step against the reference (npm run gradcheck)'; npm run --silent gradcheck
step 'reference gradients for the GPU tests'
/usr/bin/python3 training/reference/make_gradcheck_case.py --mff-oce-small --out build/gradcheck/mff_oce_small_grads.safetensors
step 'GPU kernel tests (headless Chromium, WebGPU)'; npx vitest run --project gpu
step 'build';                   npx vite build --logLevel warn
step 'e2e (Playwright)';        npx playwright test
