"""One-line reasons for failing to write a file: a full disk, a read-only folder, and libsndfile's bare "System error."."""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Iterator
from pathlib import Path

_REASONS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EFBIG: "file too large",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EIO: "input/output error",
}
# errors that only a write gives: safe to blame on the output even when the exception names no file
_WRITE_ONLY = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}
_SF_ERR_SYSTEM = 2  # libsndfile's code for "System error.": the OS refused, and errno says why


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _libsndfile_errno(exc: BaseException) -> int | None:
    """The errno behind a libsndfile "System error." (soundfile keeps only libsndfile's code; cffi keeps the C errno)."""
    sf = sys.modules.get("soundfile")
    if (
        sf is None
        or not isinstance(exc, getattr(sf, "LibsndfileError", ()))
        or getattr(exc, "code", None) != _SF_ERR_SYSTEM
    ):
        return None
    code = getattr(getattr(sf, "_ffi", None), "errno", None)
    return code if isinstance(code, int) and code else -1


def _inside(name: object, folder: Path) -> bool:
    try:
        where = Path(os.fsdecode(name)).absolute().parent.resolve()
    except (TypeError, ValueError, OSError):
        return False
    folder = folder.absolute().resolve()
    return where == folder or folder in where.parents


def _disk_full(folder: Path) -> bool:
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail == 0 or st.f_bfree == 0


def write_failure(exc: BaseException, output: str | os.PathLike, folder: str | os.PathLike | None = None) -> str | None:
    """'no space left on device while writing OUTPUT' (or read-only, quota, ...) when `exc` is a failure to write
    into `folder` (default: the output's folder); None when it is something else, such as a bad input."""
    output = Path(output)
    folder = Path(folder) if folder is not None else output.parent
    for e in _chain(exc):
        code = e.errno if isinstance(e, OSError) else _libsndfile_errno(e)
        if code == -1:  # libsndfile lost the errno: a full disk is the common cause, and one we can see
            code = errno.ENOSPC if _disk_full(folder) else None
        if code not in _REASONS:
            continue
        names = [n for n in (getattr(e, "filename", None), getattr(e, "filename2", None)) if n is not None]
        if any(_inside(n, folder) for n in names) or (not names and code in _WRITE_ONLY):
            return f"{_REASONS[code]} while writing {output}"
    return None
