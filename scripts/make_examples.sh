#!/usr/bin/env bash
# Regenerate the committed example data deterministically (see examples/README.md).
# Usage: scripts/make_examples.sh [OUT_ROOT]   (default: examples/; the unit tests pass a temporary directory)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$repo/examples}"
python="${PYTHON:-python}"

# Reference: what the model was validated on. 6,000 events, no drift, a day before the stream.
"$python" "$repo/scripts/synth_stream.py" --out "$out/reference" --events 6000 --seed 1 \
    --numeric 5 --categorical 2 --rate 4 --start-ts 1763679600 --label-delay 60 >/dev/null

# Live stream: 7,200 events at 4 events/s (30 minutes from 1763766000, aligned to 5- and 10-minute windows).
# Clean for 10 minutes, then a 0.75 sd mean shift on num_00 (+600 s), 20 % of cat_00 taking the new
# category "new_value" (+1000 s), and +1.0 on the logit of every score (+1200 s).
"$python" "$repo/scripts/synth_stream.py" --out "$out/stream" --events 7200 --seed 2 \
    --numeric 5 --categorical 2 --rate 4 --start-ts 1763766000 --label-delay 60 \
    --drift mean_shift:num_00:start=+600:magnitude=0.75 \
    --drift new_category:cat_00:start=+1000:magnitude=0.2 \
    --drift score_shift:start=+1200:magnitude=1.0 >/dev/null

ls -l "$out"/reference/*.jsonl "$out"/stream/*.jsonl
