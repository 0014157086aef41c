"""Write an inference setting into a weights file's model config; the tensors stay as they are.

Some model settings change no tensor: the transcriber's input_level_db (the level its predict()
brings a recording to) can be chosen on validation audio after training, like the decoding
thresholds, and then belongs to the weights, since every use of the model (the transcribe stage,
evaluate, the benchmarks) must hear audio the same way. The file's training metadata keeps what
it was before, the new value and the file's sha256 before the change.

    python scripts/set_model_setting.py --weights weights/onsets_frames.safetensors \\
        --set input_level_db=-15 --out weights/onsets_frames.safetensors
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from w2m2w.checkpoint import WeightsError, load_weights, save_weights
from w2m2w.files import sha256_file  # noqa: E402
from w2m2w.settings import SettingsError, check  # noqa: E402

# per model: the config fields that no tensor depends on, and the config class that checks their values
INFERENCE_SETTINGS = {"onsets_frames": ("input_level_db",)}


def _config_class(model: str):
    if model == "onsets_frames":
        from w2m2w.models.onsets_frames import OnsetsFramesConfig

        return OnsetsFramesConfig
    raise ValueError(f"--model {model}: no inference settings are known for it (known: {sorted(INFERENCE_SETTINGS)})")


def changed_config(config: dict, model: str, assignments: list[str]) -> tuple[dict, dict]:
    """config with KEY=VALUE assignments applied (VALUE read as YAML: -15, null), and {key: [old, new]}.

    Raises ValueError for a key that is not an inference setting of `model`, and SettingsError for a
    value out of its range.
    """
    allowed = INFERENCE_SETTINGS.get(model, ())
    out, changes = dict(config), {}
    for a in assignments:
        key, sep, raw = a.partition("=")
        if not sep or key not in allowed:
            raise ValueError(
                f"--set {a!r}: write KEY=VALUE with KEY one of {list(allowed)} (settings no tensor depends on)"
            )
        value = yaml.safe_load(raw)
        changes[key] = [config.get(key), value]
        out[key] = value
    check(_config_class(model)(**out))
    return out, changes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", required=True, type=Path)
    ap.add_argument("--set", required=True, nargs="+", metavar="KEY=VALUE")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--model", default="onsets_frames")
    args = ap.parse_args(argv)
    try:
        tensors, config, training = load_weights(args.weights, args.model)
        config, changes = changed_config(config, args.model, args.set)
        before = sha256_file(args.weights)
    except (WeightsError, ValueError, SettingsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    history = [*training.get("setting_changes", []), {"changes": changes, "sha256_before": before}]
    save_weights(args.out, args.model, tensors, config, {**training, "setting_changes": history})
    print(f"{args.out}: " + ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in changes.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
