#!/usr/bin/env bash
# The test command (README, .ci/run): builds and runs every test. Integration tests that
# need root (capabilities, namespaces) run when this is run as root and say so otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/opt/swift/usr/bin:$PATH
swift build --build-tests
swift test --skip-build "$@"
