"""The run report: piano-roll SVGs, relative audio links, escaping, and write_report on a hand-made run dir."""

from __future__ import annotations

import html
import json
import re
from urllib.parse import unquote

import numpy as np

from tests.unit._report_run import FAILED_ERROR, make_run, scale
from w2m2w.run.report import (
    CONTINUATION_COLOUR,
    PRIMER_COLOUR,
    audio_player,
    collect_pieces,
    piano_roll_svg,
    relative_url,
    write_report,
)
from w2m2w.run.rundir import output_path

HOSTILE = "<script>alert(1)</script>"


def sections(page: str) -> int:
    return len(re.findall(r'<section class="piece"', page))


def test_roll_one_rect_per_note():
    svg = piano_roll_svg(scale(13))
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert svg.count("<rect") == 13
    assert CONTINUATION_COLOUR not in svg and 'class="split"' not in svg
    assert ">0s<" in svg and ">1s<" in svg  # time axis ticks


def test_roll_continuation_colour_and_boundary():
    notes = np.concatenate([scale(5), scale(3, start=2.0, base=72)])
    svg = piano_roll_svg(notes, split_s=2.0)  # a note starting exactly at the split is continuation
    assert svg.count(f'fill="{CONTINUATION_COLOUR}"') == 3
    assert svg.count(f'fill="{PRIMER_COLOUR}"') == 5
    assert svg.count('class="split"') == 1


def test_roll_opacity_follows_velocity():
    notes = np.array([[0, 1, 60, 1], [1, 2, 62, 127]], dtype=float)
    opac = [float(x) for x in re.findall(r'fill-opacity="([0-9.]+)"', piano_roll_svg(notes))]
    assert opac[0] < 0.3 and opac[1] == 1.0


def test_roll_empty_and_capped():
    svg = piano_roll_svg(np.zeros((0, 4)))
    assert "<rect" not in svg and "no notes" in svg and svg.rstrip().endswith("</svg>")
    capped = piano_roll_svg(scale(50), max_notes=20)
    assert capped.count("<rect") == 20 and "first 20 of 50 notes shown" in capped


def test_relative_url_and_players(tmp_path):
    f = tmp_path / "in puts" / "a#b.wav"
    f.parent.mkdir()
    f.write_bytes(b"RIFF")
    report_dir = tmp_path / "run"
    report_dir.mkdir()
    url = relative_url(f, report_dir)
    assert url == "../in%20puts/a%23b.wav"
    assert (report_dir / unquote(url)).resolve() == f.resolve()
    assert f'src="{url}"' in audio_player(f, report_dir) and 'preload="none"' in audio_player(f, report_dir)
    missing = audio_player(tmp_path / "gone.wav", report_dir)
    assert "<audio" not in missing and "missing file" in missing


def test_write_report(tmp_path):
    run_dir = make_run(tmp_path)
    path = write_report(run_dir)  # summary read from summary.json
    assert path == run_dir / "report.html"
    page = path.read_text()
    assert page.startswith("<!DOCTYPE html>") and sections(page) == 3
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".")]  # atomic write left no temporary file
    for pid in ("a_song", "sub/b_c", "bad"):
        assert f">{pid} <span" in page and f">{pid}</a>" in page  # section heading and index link
    assert "3 pieces: 1 current, 1 done, 1 failed" in page
    assert html.escape(FAILED_ERROR) in page and FAILED_ERROR not in page
    # the generate roll of "a song": 8 primer + 6 continuation notes, split at 2.1 s
    assert "primer 8 notes, continuation 6 notes from 2.10 s" in page
    assert page.count(f'fill="{CONTINUATION_COLOUR}"') == 6 + 5  # "sub/b_c" is continuation only (primer_end_s 0.0)
    assert "Input is MIDI: no input audio" in page and "not run (not needed: the input is MIDI)" in page
    assert page.count("took 1.234 s") == 5 and "onset_threshold" in page
    # every player points, relative to the report, at an existing file: 2 inputs (bad.wav exists) + 2 synthesized wavs
    srcs = re.findall(r'<audio controls preload="none" src="([^"]+)"', page)
    assert len(srcs) == 4 and all(not s.startswith(("/", "file:")) for s in srcs)
    assert all((run_dir / unquote(s)).is_file() for s in srcs)
    assert "../my%20inputs/a%20song.wav" in srcs
    # the failed piece's input exists but no stage output does
    bad = page[page.index('id="piece-1"') : page.index('id="piece-2"')]  # sorted: a_song, bad, sub/b_c
    assert "failed:" in bad and bad.count("not run") == 2 and "missing file" not in bad
    # no network: nothing external
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in page


def test_hostile_piece_id_is_escaped(tmp_path):
    summary = {
        "counts": {"failed": 1},
        "pieces": {
            HOSTILE: {"source": f"/x/{HOSTILE}.wav", "status": "failed", "error": f"{HOSTILE} broke", "stages": {}}
        },
    }
    page = write_report(tmp_path, summary).read_text()
    assert HOSTILE not in page and html.escape(HOSTILE) in page and sections(page) == 1
    assert page.count("<script>") == 1  # only the report's own


def test_unreadable_files_show_per_piece(tmp_path):
    run_dir = make_run(tmp_path)
    output_path(run_dir, "transcribe", "a_song").write_bytes(b"garbage")
    output_path(run_dir, "generate", "a_song").with_suffix(".json").write_text("{not json")
    output_path(run_dir, "synthesize", "sub/b_c").write_bytes(b"")
    page = write_report(run_dir).read_text()
    assert sections(page) == 3
    assert "cannot read a_song.mid" in page and "not a readable MIDI file" in page
    assert "no readable sidecar" in page and "cannot read b_c.wav" in page
    # a piece whose generate sidecar is gone still shows its roll, with no split
    assert "continuation 6 notes" not in page


def test_empty_run_and_pieces_not_in_summary(tmp_path):
    page = write_report(tmp_path / "empty").read_text()
    assert sections(page) == 0 and "0 pieces: no pieces" in page and page.rstrip().endswith("</html>")
    run_dir = make_run(tmp_path / "r")
    summary = json.loads((run_dir / "summary.json").read_text())
    del summary["pieces"]["bad"]  # processed in an earlier call only
    pieces = collect_pieces(json.loads((run_dir / "run.json").read_text()), summary)
    assert list(pieces) == ["a_song", "bad", "sub/b_c"] and pieces["bad"]["status"] == "not run"
    page = write_report(run_dir, summary).read_text()
    assert sections(page) == 3 and 'class="not-run">not run</td>' in page


def test_report_does_not_need_summary(tmp_path):
    run_dir = make_run(tmp_path)
    (run_dir / "summary.json").unlink()
    page = write_report(run_dir).read_text()
    assert sections(page) == 3 and "3 pieces: 3 not run" in page
    assert "primer 8 notes, continuation 6 notes" in page  # outputs still shown from the files


def test_every_midi_and_wav_shown_is_linked(tmp_path):
    """Every MIDI and WAV file of the run, and every input file the page shows, has a link that reaches it."""
    run_dir = make_run(tmp_path)
    page = write_report(run_dir).read_text()
    linked = {(run_dir / unquote(h)).resolve() for h in re.findall(r'<a class="file" href="([^"]+)"', page)}
    outputs = {p.resolve() for p in run_dir.rglob("*") if p.suffix in (".mid", ".wav")}
    inputs = {
        p.resolve() for p in (tmp_path / "my inputs").rglob("*") if p.is_file()
    }  # a song.wav, sub/b c.mid, bad.wav
    assert len(outputs) == 5 and outputs | inputs <= linked
