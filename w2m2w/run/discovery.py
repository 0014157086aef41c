"""The pipeline's inputs: the files an input specification names (finding.find_files), each with its piece id (piece_ids)."""

from __future__ import annotations

import os
from pathlib import Path

from w2m2w.finding import INPUT_EXTENSIONS, SkipFolder, find_files, never
from w2m2w.run.piece_ids import assign_ids


def discover_inputs(spec: str | os.PathLike, skip_folder: SkipFolder = never) -> dict[str, Path]:
    """Piece id -> input path for an audio/MIDI file, a folder (recursive), a glob or a text file of paths.

    Piece ids mirror the tree under the input root (piece_ids.assign_ids says how clashes
    are told apart). Files of other types given explicitly are kept, so the pipeline reports
    them by name. Sorted by path. Folders `skip_folder` names (run folders) are not searched.
    """
    found = sorted(
        find_files(spec, INPUT_EXTENSIONS, what="audio or MIDI", globs=True, skip_folder=skip_folder),
        key=lambda f: str(f.path),
    )
    ids = assign_ids([f.rel for f in found])
    return {ids[f.rel]: f.path for f in found}
