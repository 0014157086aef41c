"""Piece ids: an input's path under its input root, without extension, as a safe relative path.

The rule (README, "The run directory"):

- Every path component keeps its letters, of every script, and everything else a file
  system takes; only what some common file system refuses is replaced by `_`: control
  characters, bytes that are not UTF-8, and / \\ : * ? " < > |. Leading dots (hidden
  names) and outer spaces and trailing dots go; a component longer than
  MAX_COMPONENT_BYTES is cut and gets a hash of the whole name.
- A folder whose name ends like a run-folder file (`x.mid/`) gets `_` for that dot, so a
  folder of one piece never sits where another piece's output file goes.
- Ids that clash (equal, or equal up to case and Unicode normalisation, as some file
  systems see them) are told apart: first by the extension (`a.wav`, `a.flac` -> `a_wav`,
  `a_flac`), then, if that is not enough, every clashing id gets `~` and 8 hex digits of
  the sha256 of its path relative to the root. Either way the ids depend only on the set
  of inputs, never on the order they were found in.

Ids read back from run.json or a summary are checked with check_piece_id before any path
is made of them.
"""

from __future__ import annotations

import hashlib
import os
import unicodedata
from pathlib import PurePosixPath

# '/' splits paths everywhere; the rest is refused by Windows file systems (and SMB shares of them)
_FORBIDDEN = frozenset('/\\:*?"<>|\x00')
# Cc: control characters; Cs: lone surrogates, Python's stand-ins for bytes of a name that is not UTF-8;
# Zl/Zp: line and paragraph separators, which would split a log line
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
# what a run folder writes next to a piece's output: a folder with such a name could be another piece's file
RUN_FILE_SUFFIXES = (".mid", ".midi", ".wav", ".json", ".lock", ".html")
# NAME_MAX is 255 bytes; a temporary name adds about 40 bytes and a clash tag 9
MAX_COMPONENT_BYTES = 160
HASH_DIGITS = 8


class UnsafePieceIdError(ValueError):
    """A piece id that is not a safe relative path (it came from a damaged or edited file)."""


def _short_hash(text: str, digits: int = HASH_DIGITS) -> str:
    return hashlib.sha256(os.fsencode(text)).hexdigest()[:digits]


def _fits(name: str, limit: int) -> str:
    """`name` cut to at most `limit` UTF-8 bytes, at a character boundary."""
    raw = name.encode("utf-8")
    return raw[:limit].decode("utf-8", errors="ignore") if len(raw) > limit else name


def safe_component(name: str) -> str:
    """One path component that common file systems take: never empty, '.', '..' or hidden."""
    s = "".join(
        "_" if ch in _FORBIDDEN or unicodedata.category(ch) in _FORBIDDEN_CATEGORIES else ch
        for ch in unicodedata.normalize("NFC", name)
    )
    s = s.strip().rstrip(". ").lstrip(".").strip() or "_"  # Windows drops trailing dots and spaces
    if len(s.encode("utf-8")) > MAX_COMPONENT_BYTES:
        s = _fits(s, MAX_COMPONENT_BYTES - HASH_DIGITS - 1).rstrip(". ") + "~" + _short_hash(name)
    return s


def _folder_component(name: str) -> str:
    s = safe_component(name)
    if s.lower().endswith(RUN_FILE_SUFFIXES):
        dot = s.rindex(".")
        s = s[:dot] + "_" + s[dot + 1 :]
    return s


def base_id(rel: str) -> str:
    """The id of an input at POSIX path `rel` under its root, before clashes are told apart: 'set a/take 1.wav' -> 'set a/take 1'."""
    parts = [p for p in PurePosixPath(rel).parts if p not in ("", ".", "/")]
    if not parts:
        return "_"
    last = parts[-1]
    stem = last[: -len(PurePosixPath(last).suffix)] if PurePosixPath(last).suffix else last
    return "/".join([*(_folder_component(p) for p in parts[:-1]), safe_component(stem)])


def clash_key(pid: str) -> str:
    """What a case-insensitive, normalising file system (macOS, Windows) sees of an id."""
    return unicodedata.normalize("NFC", pid).casefold()


def _tag(pid: str, tag: str) -> str:
    head, _, last = pid.rpartition("/")
    return (head + "/" if head else "") + last + tag


def tag_with_path_hash(pid: str, path: str) -> str:
    """`pid` with `~` and 8 hex digits of the sha256 of `path`: the id of another file that would take `pid`."""
    return _tag(pid, "~" + _short_hash(path))


def _clashing(ids: dict[str, str]) -> set[str]:
    """Keys of `ids` (input -> id) whose id clashes with another's."""
    seen: dict[str, list[str]] = {}
    for k, pid in ids.items():
        seen.setdefault(clash_key(pid), []).append(k)
    return {k for group in seen.values() if len(group) > 1 for k in group}


def assign_ids(rel_paths: list[str]) -> dict[str, str]:
    """Relative POSIX path (with extension) of each input -> its piece id, unique even on case-insensitive file systems.

    The paths must be distinct (one per file). Raises UnsafePieceIdError in the (constructed)
    case where even full sha256 tags cannot tell two inputs apart.
    """
    ids = {r: base_id(r) for r in rel_paths}
    for r in _clashing(ids):  # the extension tells a.wav from a.flac
        ext = PurePosixPath(r).suffix.lstrip(".")
        if ext:
            ids[r] = _tag(ids[r], "_" + safe_component(ext))
    digits = HASH_DIGITS
    while clash := _clashing(ids):  # anything still clashing: a hash of the path itself (longer if need be)
        if digits > 64:
            raise UnsafePieceIdError(f"cannot give distinct ids to {sorted(clash)}")
        for r in clash:
            ids[r] = _tag(base_id(r), "~" + _short_hash(r, digits))
        digits *= 2
    return ids


def check_piece_id(pid: object) -> str:
    """`pid` itself if it is a safe relative path of safe components; else UnsafePieceIdError saying why.

    Ids of older runs (ASCII letters, digits, . _ + -) pass: they are safe under this rule too.
    """
    if not isinstance(pid, str) or not pid:
        raise UnsafePieceIdError(f"piece id {pid!r} is not a non-empty string")
    if pid.startswith("/"):
        raise UnsafePieceIdError(f"piece id {pid!r} is an absolute path")
    for part in pid.split("/"):
        if part in ("", ".", ".."):
            raise UnsafePieceIdError(f"piece id {pid!r} has an empty, '.' or '..' component")
        if part.startswith(".") or any(
            ch in _FORBIDDEN or unicodedata.category(ch) in _FORBIDDEN_CATEGORIES for ch in part
        ):
            raise UnsafePieceIdError(f"piece id {pid!r} has a hidden component or a character no file name may hold")
        if len(part.encode("utf-8")) > 255 - 64:
            raise UnsafePieceIdError(f"piece id {pid!r} has a component too long for a file name")
    return pid
