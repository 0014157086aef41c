#!/usr/bin/env bash
# The transcriber's training campaign (issue: keep its training going, resume every session).
# Rerunning this script resumes from runs/tr_campaign_real/checkpoint/ (the loop resumes from its out_dir);
# it runs at CPU priority NICE (default 19) on THREADS threads (default 1) so other work on the machine goes first.
#   bash scripts/transcriber_campaign.sh            # start or resume, in the foreground
#   nohup bash scripts/transcriber_campaign.sh > runs/tr_campaign.out 2>&1 &   # in the background
# Stage 6: from the shipped weights (stage 5 + grafted pedal head), stage 5's recipe at a lower learning rate,
# on every MAPS software-piano piece that may be used (MAPS_ROOT: scripts/prepare_maps.py's output, 121 pieces,
# 343 min; default: ../shared's 54 pieces).
# Stage 7 (this one): stage 6 plus the real recordings' training part with Transkun's labels (REAL_TRAIN, made by
#   python scripts/label_real_teacher.py && python scripts/real_piano_folder.py --part train --out ~/.cache/w2m2w/real_cc0_train
#   python scripts/real_piano_folder.py --part val --out ~/.cache/w2m2w/real_cc0_val)
# at AUDIO_SHARE of the draws, validated on the real validation part (REAL_VAL), which picks best.safetensors;
# soft notes' onsets weigh up to 1 + SOFT_BOOST in the onset loss (train.soft_onset_boost).
# From step 568 (December 7, third session): the real part's pedal labels, which hold no press, weigh AUDIO_PEDAL_WEIGHT
# (default 0.1) in the pedal loss (train.audio_pedal_weight): at 1 they had cut the pedal head's recall on room_val
# from 0.91 to 0.68 by step 500. From step 812 (December 7, fourth session): 0 by default. At 0.1 the pedal head's
# frame F1 on the csound renders stayed at 0.70 (steps 600-800) against 0.76-0.77 at steps 300-400: a teacher
# that finds no press in these Bach recordings cannot say whether the pianist pressed none, so they teach the
# notes only.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS="${THREADS:-1}"
NICE="${NICE:-19}"
REAL_TRAIN="${REAL_TRAIN:-$HOME/.cache/w2m2w/real_cc0_train}"
REAL_VAL="${REAL_VAL:-$HOME/.cache/w2m2w/real_cc0_val}"
AUDIO_SHARE="${AUDIO_SHARE:-0.3}"
SOFT_BOOST="${SOFT_BOOST:-1.0}"
AUDIO_PEDAL_WEIGHT="${AUDIO_PEDAL_WEIGHT:-0}"
OUT="${OUT:-runs/tr_campaign_real}"
SHARED_MAPS='${data_root}/audio/maps_synth'
MAPS_ROOT="${MAPS_ROOT:-$SHARED_MAPS}"
G='[${data_root}/midi/asap/**/*.mid,${data_root}/midi/supra/**/*.mid,${data_root}/midi/pop909/**/*.mid]'
exec nice -n "$NICE" python -m w2m2w.train train=transcriber train.midi_globs="$G" train.midi_max_files=120 \
  train.model.pedal=true train.init_weights=weights/onsets_frames.safetensors train.bf16=true train.threads="$THREADS" \
  train.validate_every="${VALIDATE_EVERY:-200}" train.learning_rate=1e-4 train.lr_decay=0.7 train.lr_decay_steps=2000 \
  train.loss_weights.frame=2 train.loss_weights.offset=2 train.max_steps=100000 \
  'train.room_rt60=[0.15,2.0]' 'train.room_far_distance=[2.0,15.0]' train.room_p=0.8 \
  train.maps_root="$MAPS_ROOT" "train.audio_dirs=[$REAL_TRAIN]" train.audio_share="$AUDIO_SHARE" train.soft_onset_boost="$SOFT_BOOST" \
  train.audio_pedal_weight="$AUDIO_PEDAL_WEIGHT" \
  "train.val_audio_dirs=[$REAL_VAL]" train.select_by=audio_"$(basename "$REAL_VAL")" train.out_dir="$OUT" "$@"
