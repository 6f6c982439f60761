#!/usr/bin/env bash
# The long runs the default test command leaves out (pytest's `nightly` marker): the 100k-input fuzzing of
# the decoders, parsers and config, and the service soaks on a real broker (3 and 30 minutes at 500 events/s,
# a worker killed half way; tests/integration/test_service_soak.py). Run on demand or from a scheduled job:
# bash scripts/nightly.sh (pytest arguments pass through: -k 3min for the short soak only). The 30-minute
# soak's figures as one JSON line: python scripts/soak.py
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ci_setup.sh && .venv/bin/python -m pytest -q -m nightly "$@"
