#!/usr/bin/env bash
# The long runs the default test command leaves out (pytest's `nightly` marker): the 100k-input fuzzing of
# the decoders, parsers and config. Run on demand or from a scheduled job: bash scripts/nightly.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ci_setup.sh && .venv/bin/python -m pytest -q -m nightly "$@"
