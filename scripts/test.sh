#!/bin/sh
# The whole test suite: types (src, tests, benches, scripts), the import layers
# (docs/architecture.md), the API contract (npm run lint:api: Redocly's lint, compatibility with
# the released spec), then every test file. Tests needing root or system packages
# skip with a one-line reason.
set -e
cd "$(dirname "$0")/.."
npx tsc -p tsconfig.test.json
npx depcruise src --config .dependency-cruiser.cjs
npm run --silent lint:api
# Daemon process tests start the compiled daemon (much faster to start than through tsx).
npx tsc -p tsconfig.json
export CARPD_TEST_DIST=1
files=$(find test -name '*.test.ts' | sort)
# TAP when the output is not a terminal (CI, pipes), on every Node line: 20 picks it by itself,
# 22 and 24 would print the spec reporter's format instead.
reporter=
[ -t 1 ] || reporter=--test-reporter=tap
exec node --import tsx --test --test-concurrency=1 $reporter $files
