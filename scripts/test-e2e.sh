#!/bin/sh
# The browser suite (test/e2e/) in Debian's chromium: `npm run test:e2e` runs it and fails without chromium;
# `npm test` calls it with --if-available, which skips it with one line on a machine without chromium
# (but not in CI, where .ci/run has installed chromium and a missing one is a failure).
set -eu
cd "$(dirname "$0")/.."
chromium_path="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [ ! -x "$chromium_path" ]; then
  if [ "${1:-}" = "--if-available" ] && [ "${CI:-}" != "true" ]; then
    echo "e2e: skipped, chromium not found at $chromium_path; install it (apt-get install chromium) or set CHROMIUM_PATH, then npm run test:e2e"
    exit 0
  fi
  echo "e2e: chromium not found at $chromium_path; install it with apt-get install chromium, or set CHROMIUM_PATH" >&2
  exit 1
fi
exec node --import tsx --test --test-reporter=tap test/e2e/*.test.ts
