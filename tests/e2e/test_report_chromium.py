"""End-to-end: the run report of a hand-made run dir, loaded in headless Chromium (DOM dump and screenshot)."""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from tests.unit._report_run import make_run
from w2m2w.run.report import write_report

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


@pytest.fixture(scope="module")
def browser() -> str:
    found = next((b for b in map(shutil.which, BROWSERS) if b), None)
    if found is None:
        pytest.skip(
            f"no headless browser installed (looked for {', '.join(BROWSERS)}; Debian: apt-get install chromium)"
        )
    return found


def headless(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    """One headless Chromium call with its own profile folder, so runs never share state."""
    cmd = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=5000",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


def png_pixels(path: Path) -> tuple[int, int, bytes]:
    """Width, height and the decompressed scanlines (filter bytes included) of a PNG: enough to tell a blank image."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    return width, height, zlib.decompress(idat)


def test_report_in_chromium(tmp_path, browser):
    run_dir = make_run(tmp_path)
    report = write_report(run_dir)
    res = headless(browser, tmp_path / "profile-dom", "--dump-dom", report.as_uri())
    assert res.returncode == 0, res.stderr[-2000:]
    dom = res.stdout
    body = dom[dom.index("<body") : dom.index(">", dom.index("<body"))]
    assert 'data-ready="1"' in body, (body, res.stderr[-2000:])
    assert 'data-errors="0"' in body, dom[dom.index('id="js-errors"') :][:500]
    assert 'data-pieces="3"' in body
    for pid in ("a_song", "sub/b_c", "bad"):
        assert f">{pid} <span" in dom

    shot = tmp_path / "report.png"
    res = headless(
        browser, tmp_path / "profile-shot", f"--screenshot={shot}", "--window-size=1200,2000", report.as_uri()
    )
    assert res.returncode == 0 and shot.is_file(), res.stderr[-2000:]
    width, height, raw = png_pixels(shot)
    assert (width, height) == (1200, 2000)
    # a rendered page has text and piano rolls: far more than one distinct byte value and a few flat rows
    row = len(raw) // height
    rows = {raw[i * row + 1 : (i + 1) * row] for i in range(height)}
    assert len(set(raw)) > 16 and len(rows) > 100, "screenshot looks blank"
