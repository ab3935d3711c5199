#!/usr/bin/env bash
# Set up (if needed), then run the whole test suite: `bash scripts/test.sh [pytest options]`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
cd "$root"
exec .venv/bin/python -m pytest "$@"
