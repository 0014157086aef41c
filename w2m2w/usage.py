"""`w2m2w --help`: what the command does, its stages, examples and where outputs go, for a musician.

Hydra's generic help lists every config group, the internal `schema/*` and `train` ones too, and dumps the
whole config; this page names only the choices a user makes. Hydra's own help stays reachable:
`w2m2w --hydra-help` (its flags) and `w2m2w --cfg job` (every setting with its value).
"""

from __future__ import annotations

from pathlib import Path

HELP_FLAGS = ("-h", "--help")
HIDDEN_GROUPS = ("train", "schema", "hydra")  # training has its own command; schemas are internal

_PAGE = """\
w2m2w: piano recordings in, new piano music out.
It writes down what a recording plays as MIDI, continues that music with a Music Transformer,
and plays the result back as audio through a WaveNet piano.

usage: w2m2w [PATH | demo] [KEY=VALUE ...]
  PATH: a recording (wav, flac, ogg, mp3, ...), a MIDI file, a folder (searched recursively),
  a glob or a text file listing paths; also written input=PATH

stages (stages=[...] runs any contiguous part; MIDI inputs skip transcribe):
  1 transcribe   audio -> MIDI       Onsets and Frames, with the sustain pedal
  2 generate     MIDI  -> MIDI       Music Transformer: the last 20 s and 20 s of new music (generate.seconds)
  3 synthesize   MIDI  -> WAV        source-filter WaveNet (synthesize=wavenet | fluidsynth for the others)

examples:
  w2m2w                                              the bundled demo (Bach, Prelude in C), into runs/demo
  w2m2w my_takes/waltz.ogg                           one recording, into runs/waltz
  w2m2w my_takes                                     every recording in a folder, into runs/my_takes
  w2m2w tune.mid stages=[generate]                   continue a MIDI file, into runs/tune
  w2m2w tune.mid stages=[synthesize] synthesize.sample_rate=44100    render a MIDI file as audio
  w2m2w run_dir=runs/waltz stages=[generate,synthesize] generate.temperature=0.9   rerun a stage (and what follows)
  w2m2w my_takes device=cuda                         on a GPU (device=auto, the default, takes one when torch has one)

outputs: runs/<input name>/ in the current folder (run_dir=DIR for another):
  1-transcribe/<piece>.mid  2-generate/<piece>.mid  3-synthesize/<piece>.wav  (16 kHz unless synthesize.sample_rate)
  report.html (open it in a browser: players, piano rolls, links to every file), summary.json, run.log
  A rerun skips what is current and recomputes what changed (force=true: everything).

choices (KEY=OPTION):
{groups}
settings: GROUP.KEY=VALUE in Hydra's override syntax, e.g. generate.seconds=30 transcribe.pedal=false;
  every setting and its value: w2m2w --cfg job;  Hydra's own flags (-m sweeps, ...): w2m2w --hydra-help

More in README.md ("Running it", "The run directory", "Batches"), beside the source of w2m2w.
"""


def config_groups(conf: Path) -> dict[str, list[str]]:
    """The config groups a user chooses from (conf/'s folders, hidden ones left out) and their options."""
    return {
        d.name: sorted(p.stem for p in d.glob("*.yaml"))
        for d in sorted(Path(conf).iterdir())
        if d.is_dir() and d.name not in HIDDEN_GROUPS and any(d.glob("*.yaml"))
    }


def _defaults(conf: Path) -> dict[str, str]:
    """Group -> the option conf/config.yaml's defaults list picks."""
    from omegaconf import OmegaConf

    chosen: dict[str, str] = {}
    for entry in OmegaConf.to_container(OmegaConf.load(Path(conf) / "config.yaml")).get("defaults", []):
        if isinstance(entry, dict):
            chosen.update({str(k): str(v) for k, v in entry.items()})
    return chosen


def usage(conf: Path) -> str:
    """The help page, its config groups read from `conf` (the default option first)."""
    chosen = _defaults(conf)
    lines = []
    for group, options in config_groups(conf).items():
        default = chosen.get(group)
        ordered = [o for o in options if o == default] + [o for o in options if o != default]
        shown = " | ".join(f"{o} (default)" if o == default else o for o in ordered)
        lines.append(f"  {group}={shown}")
    return _PAGE.format(groups="\n".join(lines))
