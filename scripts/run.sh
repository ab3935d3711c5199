#!/usr/bin/env bash
# Set up (if needed), then train + evaluate + report: `bash scripts/run.sh --data PATH [fedcl run options]`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
exec "$root/.venv/bin/fedcl" run "$@"
