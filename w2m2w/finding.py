"""Finding files: a file, a folder (recursive), a glob or a text file of paths.

find_files is the one routine every command uses to turn a specification into files: the
pipeline (run/discovery.py's discover_inputs, which adds piece ids), `evaluate`'s
transcription, generation and synthesis tasks, and the training corpora. Each says which extensions it wants and whether globs and
lists are allowed; the rest is shared: hidden files and folders are never inputs (they are
temporaries of atomic writes, or editor files), folders are walked following symlinked
folders, but never around a symlink loop (it is skipped with a warning) and never into the
same folder twice; the same file reached twice (listed twice, or through a symlinked folder)
is found once; and a specification that finds nothing is an InputError naming it.
"""

from __future__ import annotations

import fnmatch
import glob
import heapq
import logging
import os
import re
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

from w2m2w.audio import AUDIO_EXTENSIONS

MIDI_EXTENSIONS = (".mid", ".midi")
INPUT_EXTENSIONS = AUDIO_EXTENSIONS + MIDI_EXTENSIONS  # what the pipeline takes
LIST_EXTENSIONS = (".txt", ".lst", ".list")
REFERENCE_EXTENSIONS = (".mid", ".midi", ".tsv")  # note labels, in order of preference (ReferenceIndex)
log = logging.getLogger("w2m2w")


class InputError(ValueError):
    """The input specification found nothing usable; the message names it."""


def relative_posix(path: str | os.PathLike, root: str | os.PathLike) -> str:
    """`path` relative to `root` as POSIX text, taken as written (symlinks not followed); its name alone if it lies outside."""
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    if rel == os.curdir or rel.split(os.sep)[0] == os.pardir:
        return Path(path).name
    return Path(rel).as_posix()


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
    queue: list[tuple[int, str, Path, tuple[str, ...], frozenset, tuple[int, int]]] = [
        (0, str(root), root, (), frozenset(), (st.st_dev, st.st_ino))
    ]
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


def never(_: Path) -> bool:
    return False


def _walk_files(folder: Path, extensions: tuple[str, ...], skip_folder: SkipFolder = never) -> list[Path]:
    """Files with one of `extensions` under `folder`; hidden files and folders, and folders `skip_folder` names, are left out."""

    def descend(parts: tuple[str, ...]) -> bool:
        return _visible(parts) and not skip_folder(folder.joinpath(*parts))

    return [
        p for p, parts, is_dir in walk(folder, descend) if not is_dir and _visible(parts) and _has_ext(p, extensions)
    ]


@lru_cache(maxsize=4096)
def _match(pattern: tuple[str, ...], parts: tuple[str, ...], partial: bool) -> bool:
    """glob semantics over path components; `partial`: `parts` could still lead to a match further down."""
    if not parts:
        return partial or all(p == "**" for p in pattern)
    if not pattern:
        return False
    head = pattern[0]
    if head == "**":  # zero or more folders, hidden ones excluded (as glob.glob does)
        return _match(pattern[1:], parts, partial) or (
            not parts[0].startswith(".") and _match(pattern, parts[1:], partial)
        )
    if parts[0].startswith(".") and not head.startswith("."):
        return False
    return fnmatch.fnmatchcase(parts[0], head) and _match(pattern[1:], parts[1:], partial)


def _glob(spec: str, extensions: tuple[str, ...], skip_folder: SkipFolder = never) -> tuple[list[Path], Path]:
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
    skip_folder: SkipFolder = never,
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


def find_corpus(specs: Sequence[str], extensions: Sequence[str], what: str) -> dict[Path, Path]:
    """Each file that folders, files or glob patterns find (find_files' rules: hidden names skipped,
    symlink loops walked once), resolved, -> the folder it was found under (the folder, the
    pattern's fixed part, or a file's own folder), resolved; sorted by path. A file several
    specs find keeps the first one's folder. InputError names a spec that finds nothing.
    """
    out: dict[Path, Path] = {}
    for spec in specs:
        for f in find_files(spec, extensions, what=what, lists=False, globs=True, named_any_type=False):
            root = f.path.parents[f.rel.count("/")]
            out.setdefault(f.path.resolve(), root.resolve())
    return dict(sorted(out.items()))


def _normalise(key: str) -> str:
    # run directories sanitise piece ids, so compare names with punctuation and case folded away
    return re.sub(r"[^0-9a-z/]+", "_", key.lower()).strip("_")


class ReferenceIndex:
    """Reference files by relative path without extension, with looser fallbacks.

    Lookup order: exact relative path, normalised relative path, then the file
    name alone (exact, then normalised) when it names exactly one reference. Of a piece's
    references in several formats, the first of REFERENCE_EXTENSIONS wins: a MIDI file
    carries the sustain pedal, a .tsv note list does not. `evaluate` and the peers'
    benchmark both match references with it.
    """

    def __init__(self, root: str | os.PathLike):
        root = Path(root)
        self.root = root
        try:  # find_files' rules: hidden names (temporaries of atomic writes) are never references
            found = find_files(root, REFERENCE_EXTENSIONS, what="reference", lists=False, named_any_type=False)
        except InputError:
            found = []
        files = [(f.path, f.rel[: -len(f.path.suffix)]) for f in found]
        rank = {e: i for i, e in enumerate(REFERENCE_EXTENSIONS)}
        files.sort(key=lambda f: (f[1], rank[f[0].suffix.lower()]))
        self.exact: dict[str, Path] = {}
        self.norm: dict[str, Path] = {}
        self.stem: dict[str, list[Path]] = {}
        self.norm_stem: dict[str, list[Path]] = {}
        for path, key in files:
            if key in self.exact:
                continue  # a .tsv beside a .mid of the same piece: the .mid wins
            self.exact[key] = path
            self.norm.setdefault(_normalise(key), path)
            stem = key.rsplit("/", 1)[-1]
            self.stem.setdefault(stem, []).append(path)
            self.norm_stem.setdefault(_normalise(stem), []).append(path)

    def __len__(self) -> int:
        return len(self.exact)

    def find(self, key: str) -> Path | None:
        if key in self.exact:
            return self.exact[key]
        if _normalise(key) in self.norm:
            return self.norm[_normalise(key)]
        stem = key.rsplit("/", 1)[-1]
        for table, k in ((self.stem, stem), (self.norm_stem, _normalise(stem))):
            hits = table.get(k, [])
            if len(hits) == 1:
                return hits[0]
        return None
