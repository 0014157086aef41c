#!/usr/bin/env bash
# The transcriber's training campaign (issue: keep its training going, resume every session).
# Rerunning this script resumes from runs/tr_campaign/checkpoint/ (the loop resumes from its out_dir);
# it runs at the lowest CPU priority on THREADS threads (default 1) so other work on the machine goes first.
#   bash scripts/transcriber_campaign.sh            # start or resume, in the foreground
#   nohup bash scripts/transcriber_campaign.sh > runs/tr_campaign.out 2>&1 &   # in the background
# Stage 6: from the shipped weights (stage 5 + grafted pedal head), stage 5's recipe at a lower learning rate,
# on every MAPS software-piano piece that may be used (MAPS_ROOT: scripts/prepare_maps.py's output, 121 pieces,
# 343 min; default: ../shared's 54 pieces).
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS="${THREADS:-1}"
SHARED_MAPS='${data_root}/audio/maps_synth'
MAPS_ROOT="${MAPS_ROOT:-$SHARED_MAPS}"
G='[${data_root}/midi/asap/**/*.mid,${data_root}/midi/supra/**/*.mid,${data_root}/midi/pop909/**/*.mid]'
exec nice -n 19 python -m w2m2w.train train=transcriber train.midi_globs="$G" train.midi_max_files=120 \
  train.model.pedal=true train.init_weights=weights/onsets_frames.safetensors train.bf16=true train.threads="$THREADS" \
  train.validate_every=500 train.learning_rate=1e-4 train.lr_decay=0.7 train.lr_decay_steps=2000 \
  train.loss_weights.frame=2 train.loss_weights.offset=2 train.max_steps=100000 \
  'train.room_rt60=[0.15,2.0]' 'train.room_far_distance=[2.0,15.0]' train.room_p=0.8 \
  train.maps_root="$MAPS_ROOT" train.out_dir=runs/tr_campaign "$@"
