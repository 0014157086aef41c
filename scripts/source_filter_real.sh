#!/usr/bin/env bash
# The source-filter WaveNet on a real piano: ../shared's CC0 Bosendorfer recordings with their teacher labels
# (scripts/label_real_teacher.py, then scripts/real_piano_folder.py --part all --out ~/.cache/w2m2w/real_cc0_all),
# the real validation pieces (scripts/real_cc0_split.json) held out whole. Rerunning resumes from runs/sf_real.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS="${THREADS:-1}"
HELD=$(python -c "import json; print(','.join(json.load(open('scripts/real_cc0_split.json'))['val']))")
exec nice -n "${NICE:-19}" python -m w2m2w.train train=source_filter train.maps_root= \
  "train.audio_dirs=[$HOME/.cache/w2m2w/real_cc0_all]" "train.holdout_pieces=[$HELD]" \
  train.threads="$THREADS" train.max_minutes=1200 train.out_dir=runs/sf_real "$@"
