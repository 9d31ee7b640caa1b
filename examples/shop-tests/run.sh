#!/usr/bin/env bash
# Runs the example's tests against the BUILT storekeeper package (dist/), as another project would
# use it: build the root first (npm ci && npm run build there). Installs this project's own
# dependencies from its lockfile (npm registry only); storekeeper itself is linked from ../..
# and brings its dependencies from the root's node_modules. `npm test` runs the type check, then
# vitest, node:test and jest.
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -f ../../dist/testing/index.js ] || [ ! -f ../../dist/client/index.js ]; then
  echo "examples/shop-tests: build storekeeper first (npm run build at the repository root)" >&2
  exit 1
fi

npm ci --no-audit --no-fund
npm test
