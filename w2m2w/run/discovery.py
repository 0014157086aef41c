"""Finding input files: a file, a folder (recursive), a glob or a text file of paths.

find_files is the one routine every command uses to turn an input specification into
files: the pipeline (discover_inputs, which adds piece ids), and `evaluate`'s transcription,
generation and synthesis tasks. Each says which extensions it wants and whether globs and
lists are allowed; the rest is shared: hidden files and folders are never inputs (they are
temporaries of atomic writes, or editor files), folders are walked following symlinked
folders, but never around a symlink loop (it is skipped with a warning) and never into the
same folder twice; the same file reached twice (listed twice, or through a symlinked folder)
is found once; and a specification that finds nothing is an InputError naming it.
Piece ids follow piece_ids.
"""

from __future__ import annotations

import fnmatch
import glob
import heapq
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

from w2m2w.audio import AUDIO_EXTENSIONS
from w2m2w.run.piece_ids import assign_ids, relative_posix

MIDI_EXTENSIONS = (".mid", ".midi")
INPUT_EXTENSIONS = AUDIO_EXTENSIONS + MIDI_EXTENSIONS  # what the pipeline takes
LIST_EXTENSIONS = (".txt", ".lst", ".list")
log = logging.getLogger("w2m2w")


class InputError(ValueError):
    """The input specification found nothing usable; the message names it."""


def input_kind(path: str | os.PathLike) -> str | None:
    """'audio', 'midi' or None by extension."""
    ext = Path(path).suffix.lower()
    if ext in AUDIO_EXTENSIONS:
        return "audio"
    if ext in MIDI_EXTENSIONS:
        return "midi"
    return None


def walk(root: Path, descend: Callable[[tuple[str, ...]], bool]) -> Iterator[tuple[Path, tuple[str, ...], bool]]:
    """(path, parts relative to root, is_dir) of everything under `root`, entering the folders `descend(parts)` allows.

    Symlinked folders are followed; a folder is entered once however many ways lead to it,
    and a symlink that leads back to a folder above it (a loop) is skipped with a warning.
    Folders without symlinks on the way are entered first, so a folder reached both ways is
    walked under its real path.
    """
    try:
        st = root.stat()
    except OSError:
        return
    # (symlinks on the way, path text, ...): a heap, so real folders come first and the walk is deterministic
    queue: list[tuple[int, str, Path, tuple[str, ...], frozenset, tuple[int, int]]] = [(0, str(root), root, (), frozenset(), (st.st_dev, st.st_ino))]
    seen: set[tuple[int, int]] = set()
    while queue:
        links, _, folder, parts, ancestors, key = heapq.heappop(queue)
        if key in seen:
            continue  # reached another way already
        seen.add(key)
        if parts:
            yield folder, parts, True
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            log.warning("%s: cannot list this folder (%s), skipped", folder, exc.strerror or exc)
            continue
        for e in entries:
            path, sub = Path(e.path), (*parts, e.name)
            is_link = e.is_symlink()
            try:
                is_dir = e.is_dir()
            except OSError:  # ELOOP: a link that leads to itself
                is_dir = False
            if not is_dir:
                try:
                    is_file = e.is_file()
                except OSError:
                    is_file = False
                if is_file:
                    yield path, sub, False
                elif is_link and descend(sub):
                    log.warning("%s: broken symlink or symlink loop, skipped", path)
                continue
            if not descend(sub):
                continue
            try:
                st = path.stat()
            except OSError as exc:
                log.warning("%s: cannot enter (%s), skipped", path, exc.strerror or exc)
                continue
            sub_key = (st.st_dev, st.st_ino)
            if sub_key in ancestors or sub_key == key:
                log.warning("%s: symlink loop (it leads back to a folder above it), skipped", path)
                continue
            heapq.heappush(queue, (links + is_link, str(path), path, sub, ancestors | {key}, sub_key))


def _visible(parts: tuple[str, ...]) -> bool:
    return not parts[-1].startswith(".")


def _has_ext(path: Path, extensions: tuple[str, ...]) -> bool:
    return path.suffix.lower() in extensions


SkipFolder = Callable[[Path], bool]


def _never(_: Path) -> bool:
    return False


def _walk_files(folder: Path, extensions: tuple[str, ...], skip_folder: SkipFolder = _never) -> list[Path]:
    """Files with one of `extensions` under `folder`; hidden files and folders, and folders `skip_folder` names, are left out."""

    def descend(parts: tuple[str, ...]) -> bool:
        return _visible(parts) and not skip_folder(folder.joinpath(*parts))

    return [p for p, parts, is_dir in walk(folder, descend) if not is_dir and _visible(parts) and _has_ext(p, extensions)]


@lru_cache(maxsize=4096)
def _match(pattern: tuple[str, ...], parts: tuple[str, ...], partial: bool) -> bool:
    """glob semantics over path components; `partial`: `parts` could still lead to a match further down."""
    if not parts:
        return partial or all(p == "**" for p in pattern)
    if not pattern:
        return False
    head = pattern[0]
    if head == "**":  # zero or more folders, hidden ones excluded (as glob.glob does)
        return _match(pattern[1:], parts, partial) or (not parts[0].startswith(".") and _match(pattern, parts[1:], partial))
    if parts[0].startswith(".") and not head.startswith("."):
        return False
    return fnmatch.fnmatchcase(parts[0], head) and _match(pattern[1:], parts[1:], partial)


def _glob(spec: str, extensions: tuple[str, ...], skip_folder: SkipFolder = _never) -> tuple[list[Path], Path]:
    """Files matched by a glob pattern (a matched folder gives its files with `extensions`) and the pattern's root.

    Not glob.glob: that follows symlinked folders without end (a loop yields each file
    dozens of times, two loops never finish) and pathlib raises on a looping file.
    """
    first_magic = min(spec.find(c) for c in "*?[" if c in spec)
    cut = spec.rfind(os.sep, 0, first_magic) + 1  # the folder part before the first wildcard
    root = Path(spec[:cut]) if cut else Path(".")
    pattern = tuple(p for p in spec[cut:].split(os.sep) if p)
    matched: set[tuple[str, ...]] = set()  # folders the pattern matched: all their inputs count

    def in_matched(parts: tuple[str, ...]) -> bool:
        return any(parts[:k] in matched for k in range(1, len(parts)))

    def descend(parts: tuple[str, ...]) -> bool:
        if skip_folder(root.joinpath(*parts)):
            return False
        return _visible(parts) if in_matched(parts) else _match(pattern, parts, True)

    files = []
    for path, parts, is_dir in walk(root, descend):
        if is_dir:
            if not in_matched(parts) and _match(pattern, parts, False):
                matched.add(parts)
        elif _match(pattern, parts, False) or (in_matched(parts) and _visible(parts) and _has_ext(path, extensions)):
            files.append(path)
    return files, root


def _read_list(p: Path) -> tuple[list[Path], Path]:
    """The paths a list names (one a line; blank lines and # comments skipped) and their common folder.

    A relative entry is taken next to the list; if it is not there but exists as written
    (relative to the working folder, as a training run writes its held-out lists), as written.
    An entry found nowhere is kept next to the list, so the caller reports it by name.
    """
    base = p.parent
    files = []
    for line in p.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            q = Path(line).expanduser()
            files.append(q if q.is_absolute() or (q.exists() and not (base / q).exists()) else base / q)
    if not files:
        raise InputError(f"{p}: list of inputs is empty")
    return files, Path(os.path.commonpath([os.path.dirname(os.path.abspath(f)) for f in files]))


def _identity(path: Path) -> tuple:
    try:
        st = path.stat()
        return ("inode", st.st_dev, st.st_ino)
    except OSError:  # missing or unreadable: kept so the pipeline reports it by name
        return ("path", os.path.realpath(path))


def _one_per_file(files: list[Path], root: Path) -> list[Path]:
    """One path per file: of paths reaching the same file, the one without symlinks, else the shortest, else the first in order."""
    best: dict[tuple, Path] = {}

    def rank(f: Path) -> tuple:
        return (os.path.realpath(f) != os.path.abspath(f), len(relative_posix(f, root)), relative_posix(f, root))

    for f in files:
        key = _identity(f)
        if key not in best or rank(f) < rank(best[key]):
            best[key] = f
    return list(best.values())


class Found(NamedTuple):
    """One file found: its path relative to the input root (POSIX, with extension), and the path itself."""

    rel: str
    path: Path


def selected(rel: str, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> bool:
    """include/exclude globs, each matched against the relative path or the bare file name."""
    name = rel.rsplit("/", 1)[-1]

    def hit(patterns: Sequence[str]) -> bool:
        return any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(name, p) for p in patterns)

    return (not include or hit(include)) and not (exclude and hit(exclude))


def find_files(
    spec: str | os.PathLike,
    extensions: Sequence[str],
    *,
    what: str,
    lists: bool = True,
    globs: bool = False,
    named_any_type: bool = True,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    skip_folder: SkipFolder = _never,
) -> list[Found]:
    """The files `spec` names, sorted by relative path; InputError (one line naming `spec`) when there are none.

    spec: a folder (its files with `extensions`, recursively), a file, a text file listing
    paths (`lists`: .txt, .lst, .list), or a glob pattern (`globs`). A file named explicitly,
    as `spec` or in a list, is kept whatever its extension, so the caller reports it by name
    (`named_any_type`=False: it must have one of `extensions` too). Relative paths are taken
    from the folder, the list's entries' common folder, or the pattern's fixed part.
    `what` names the wanted files in messages ("MIDI", "audio or MIDI"). Folders below a folder or
    glob root for which `skip_folder(path)` is true are not entered (the root itself always is).
    """
    spec_s = str(spec)
    exts = tuple(e.lower() for e in extensions)
    p = Path(spec_s).expanduser()
    if p.is_dir():
        files, root, none = _walk_files(p, exts, skip_folder), p, f"{p}: folder holds no {what} files"
    elif p.is_file() and lists and _has_ext(p, LIST_EXTENSIONS):
        files, root = _read_list(p)
        none = f"{p}: list names no {what} files"
    elif p.is_file():
        files, root, none = [p], p.parent, f"{p}: not a {what} file"
        if not named_any_type and not _has_ext(p, exts):
            files = []
    elif globs and glob.has_magic(spec_s):
        files, root = _glob(spec_s, exts, skip_folder)
        none = f"{spec_s}: pattern matches no files"
    elif os.path.islink(p):
        raise InputError(f"{spec_s}: broken symlink or symlink loop")
    else:
        raise InputError(f"{spec_s}: no such file or folder")
    found = sorted((Found(relative_posix(f, root), f) for f in _one_per_file(files, root)), key=lambda f: f.rel)
    found = [f for f in found if selected(f.rel, include, exclude)]
    if not found:
        filters = " ".join(f"{k}={list(v)}" for k, v in (("include", include), ("exclude", exclude)) if v)
        raise InputError(f"{none} matching {filters}" if filters else none)
    return found


def discover_inputs(spec: str | os.PathLike, skip_folder: SkipFolder = _never) -> dict[str, Path]:
    """Piece id -> input path for an audio/MIDI file, a folder (recursive), a glob or a text file of paths.

    Piece ids mirror the tree under the input root (piece_ids.assign_ids says how clashes
    are told apart). Files of other types given explicitly are kept, so the pipeline reports
    them by name. Sorted by path. Folders `skip_folder` names (run folders) are not searched.
    """
    found = sorted(find_files(spec, INPUT_EXTENSIONS, what="audio or MIDI", globs=True, skip_folder=skip_folder), key=lambda f: str(f.path))
    ids = assign_ids([f.rel for f in found])
    return {ids[f.rel]: f.path for f in found}
