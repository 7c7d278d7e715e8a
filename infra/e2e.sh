#!/usr/bin/env bash
# The browser test: starts a fresh local stack (moto, the Stripe simulator, the bundle) on
# its own ports, drives Chromium through tests/e2e/checkout.mjs, and stops everything it
# started. Screenshots land in tests/e2e/artifacts.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mkdir -p .local tests/e2e/artifacts

# Its own process group, so one signal stops moto and the server together.
# The binary `make e2e` built, wherever cargo put it (CARGO_TARGET_DIR).
stack_bin=${LOCAL_STACK:-$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/debug/local-stack}
setsid infra/with-moto.sh "$stack_bin" >.local/e2e-stack.log 2>&1 &
stack=$!
trap 'kill -INT -- -"$stack" 2>/dev/null || true; wait "$stack" 2>/dev/null || true' EXIT

shop="http://127.0.0.1:${PORT:?PORT must be set}"
for _ in $(seq 1 120); do
  if curl -fs -o /dev/null "$shop/"; then break; fi
  if ! kill -0 "$stack" 2>/dev/null; then
    echo "the local stack exited; its log:" >&2; cat .local/e2e-stack.log >&2; exit 1
  fi
  sleep 0.5
done
if ! SHOP_URL="$shop" ARTIFACTS=tests/e2e/artifacts node tests/e2e/checkout.mjs; then
  echo "--- local stack log (.local/e2e-stack.log), last 60 lines ---" >&2
  tail -n 60 .local/e2e-stack.log >&2
  exit 1
fi
