"""Finding inputs (w2m2w/finding.py, w2m2w/run/discovery.py): folders, globs and lists; symlinks, loops, the same file reached twice."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import pytest

from w2m2w.finding import InputError, input_kind
from w2m2w.run.discovery import discover_inputs


def _touch(*paths: Path) -> None:
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")


def test_input_kind():
    assert input_kind("a/b.wav") == "audio" and input_kind("b.FLAC") == "audio"
    assert input_kind("b.mid") == "midi" and input_kind("b.MIDI") == "midi"
    assert input_kind("b.txt") is None and input_kind("b") is None


def test_a_folder_mirrors_its_tree_sorted_hidden_left_out(tmp_path):
    _touch(
        tmp_path / "in" / "b.wav",
        tmp_path / "in" / "a" / "c.mid",
        tmp_path / "in" / "notes.txt",
        tmp_path / "in" / ".hidden" / "d.wav",
        tmp_path / "in" / ".e.wav",
    )
    got = discover_inputs(tmp_path / "in")
    assert got == {"a/c": tmp_path / "in" / "a" / "c.mid", "b": tmp_path / "in" / "b.wav"}
    assert list(got) == ["a/c", "b"], "sorted by path"


def test_no_file_is_dropped_whatever_its_name(tmp_path):
    names = ["練習曲", "夜想曲", "前奏曲", "円舞曲", "幻想曲", "a b", "a_b", "a  b", "a&b"]
    _touch(*(tmp_path / "in" / f"{n}.wav" for n in names))
    assert discover_inputs(tmp_path / "in") == {n: tmp_path / "in" / f"{n}.wav" for n in names}


def test_same_name_other_extension_two_pieces(tmp_path):
    _touch(tmp_path / "in" / "a.flac", tmp_path / "in" / "a.wav")
    assert discover_inputs(tmp_path / "in") == {
        "a_flac": tmp_path / "in" / "a.flac",
        "a_wav": tmp_path / "in" / "a.wav",
    }


def test_one_file_of_any_type_is_kept_so_the_pipeline_names_it(tmp_path):
    _touch(tmp_path / "d" / "take one.wav", tmp_path / "d" / "readme.md")
    assert discover_inputs(tmp_path / "d" / "take one.wav") == {"take one": tmp_path / "d" / "take one.wav"}
    assert discover_inputs(tmp_path / "d" / "readme.md") == {"readme": tmp_path / "d" / "readme.md"}


def test_a_list_of_paths_relative_to_their_common_folder(tmp_path):
    _touch(tmp_path / "set" / "x" / "a.wav", tmp_path / "set" / "y" / "b.mid", tmp_path / "abs" / "c.wav")
    lst = tmp_path / "set" / "inputs.txt"
    lst.write_text(f"# a comment\nx/a.wav\n\n  y/b.mid  \n{tmp_path / 'abs' / 'c.wav'}\n")
    assert discover_inputs(lst) == {
        "set/x/a": tmp_path / "set" / "x" / "a.wav",
        "set/y/b": tmp_path / "set" / "y" / "b.mid",
        "abs/c": tmp_path / "abs" / "c.wav",
    }
    lst.write_text("x/a.wav\n")
    assert discover_inputs(lst) == {"a": tmp_path / "set" / "x" / "a.wav"}


def test_a_file_listed_twice_is_one_piece(tmp_path):
    _touch(tmp_path / "x" / "a.wav")
    lst = tmp_path / "list.txt"
    lst.write_text(f"x/a.wav\n{tmp_path / 'x' / 'a.wav'}\nx/../x/a.wav\n")
    assert discover_inputs(lst) == {"a": tmp_path / "x" / "a.wav"}


def test_a_file_reached_through_a_symlinked_folder_is_one_piece_under_its_real_path(tmp_path):
    _touch(tmp_path / "in" / "real" / "a.wav", tmp_path / "in" / "real" / "deep" / "b.wav")
    os.symlink("real", tmp_path / "in" / "link")  # sorts before "real"
    assert discover_inputs(tmp_path / "in") == {
        "real/a": tmp_path / "in" / "real" / "a.wav",
        "real/deep/b": tmp_path / "in" / "real" / "deep" / "b.wav",
    }
    assert discover_inputs(f"{tmp_path}/in/**/*.wav") == {
        "real/a": tmp_path / "in" / "real" / "a.wav",
        "real/deep/b": tmp_path / "in" / "real" / "deep" / "b.wav",
    }


def test_a_symlinked_folder_outside_the_root_is_followed(tmp_path):
    _touch(tmp_path / "elsewhere" / "a.wav")
    (tmp_path / "in").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "in" / "more")
    assert discover_inputs(tmp_path / "in") == {"more/a": tmp_path / "in" / "more" / "a.wav"}


@pytest.mark.parametrize("how", ["folder", "glob"])
def test_symlink_loops_are_skipped_with_a_warning(tmp_path, caplog, how):
    _touch(tmp_path / "in" / "sub" / "a.wav")
    os.symlink("..", tmp_path / "in" / "sub" / "up")  # a folder loop
    os.symlink(".", tmp_path / "in" / "here")  # another, so glob.glob would walk 2^40 paths
    os.symlink("loop2.wav", tmp_path / "in" / "loop1.wav")  # a file loop
    os.symlink("loop1.wav", tmp_path / "in" / "loop2.wav")
    spec = tmp_path / "in" if how == "folder" else f"{tmp_path}/in/**/*.wav"
    with caplog.at_level(logging.WARNING, logger="w2m2w"):
        assert discover_inputs(spec) == {"sub/a": tmp_path / "in" / "sub" / "a.wav"}
    text = caplog.text
    assert (
        "up: symlink loop" in text
        and "here: symlink loop" in text
        and "loop1.wav: broken symlink or symlink loop" in text
    )


def test_a_glob(tmp_path, monkeypatch):
    root = tmp_path / "Xin"  # an X before the pattern: the root is cut at the first *, ? or [ only
    _touch(
        root / "a.wav",
        root / "sub" / "b.wav",
        root / "sub" / "deep" / "c.wav",
        root / "sub" / "d.txt",
        root / ".h" / "e.wav",
        root / "sub" / ".f" / "g.wav",
    )
    assert discover_inputs(f"{root}/*.wav") == {"a": root / "a.wav"}
    assert discover_inputs(f"{root}/**/*.wav") == {
        "a": root / "a.wav",
        "sub/b": root / "sub" / "b.wav",
        "sub/deep/c": root / "sub" / "deep" / "c.wav",
    }
    assert discover_inputs(f"{root}/su?") == {
        "sub/b": root / "sub" / "b.wav",
        "sub/deep/c": root / "sub" / "deep" / "c.wav",
    }, "a matched folder is searched"
    assert discover_inputs(f"{root}/s[u]b/*.wav") == {"sub/b": root / "sub" / "b.wav"}
    assert discover_inputs(f"{root}/sub*/b.wav") == {"sub/b": root / "sub" / "b.wav"}, (
        "root: the folder holding the partial name"
    )
    assert discover_inputs(f"{root}/sub/*") == {
        "b": root / "sub" / "b.wav",
        "d": root / "sub" / "d.txt",
        "deep/c": root / "sub" / "deep" / "c.wav",
    }, "matched files of any type, matched folders' audio and MIDI"
    assert discover_inputs(f"{root}/.h/*.wav") == {"e": root / ".h" / "e.wav"}, "hidden, when the pattern says so"
    monkeypatch.chdir(root)
    assert discover_inputs("**/*.wav") == {
        "a": Path("a.wav"),
        "sub/b": Path("sub/b.wav"),
        "sub/deep/c": Path("sub/deep/c.wav"),
    }


@pytest.mark.parametrize(
    "spec, message",
    [
        ("empty", "folder holds no audio or MIDI files"),
        ("empty.txt", "list of inputs is empty"),
        ("*.nothing", "pattern matches no files"),
        ("nope", "no such file or folder"),
    ],
)
def test_what_found_nothing_is_named(tmp_path, spec, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    (tmp_path / "empty.txt").write_text("# only a comment\n\n")
    with pytest.raises(InputError, match=re.escape(f"{tmp_path / spec}: {message}")):
        discover_inputs(str(tmp_path / spec))


# ---- find_files: the one routine behind the pipeline's inputs and every `evaluate` task's ----


def test_find_files_takes_the_callers_extensions_and_filters(tmp_path):
    from w2m2w.finding import Found, find_files

    _touch(
        tmp_path / "in" / "a.mid",
        tmp_path / "in" / "set b" / "b.MIDI",
        tmp_path / "in" / "c.tsv",
        tmp_path / "in" / "d.wav",
        tmp_path / "in" / ".e.mid",
        tmp_path / "in" / ".tmp" / "f.mid",
    )
    got = find_files(tmp_path / "in", (".mid", ".midi"), what="MIDI")
    assert got == [
        Found("a.mid", tmp_path / "in" / "a.mid"),
        Found("set b/b.MIDI", tmp_path / "in" / "set b" / "b.MIDI"),
    ]
    assert [f.rel for f in find_files(tmp_path / "in", (".mid", ".tsv"), what="note", include=["set b/*", "c.*"])] == [
        "c.tsv"
    ]
    assert [
        f.rel for f in find_files(tmp_path / "in", (".mid", ".midi"), what="MIDI", include=["*.mid*"], exclude=["b.*"])
    ] == ["a.mid"]


def test_find_files_a_named_file(tmp_path):
    from w2m2w.finding import find_files

    _touch(tmp_path / "d.wav", tmp_path / "notes.txt")
    assert [f.rel for f in find_files(tmp_path / "d.wav", (".mid",), what="MIDI")] == ["d.wav"], (
        "kept, so the caller names it"
    )
    with pytest.raises(InputError, match=re.escape(f"{tmp_path / 'd.wav'}: not a MIDI file")):
        find_files(tmp_path / "d.wav", (".mid",), what="MIDI", named_any_type=False)
    with pytest.raises(InputError, match=re.escape(f"{tmp_path / 'notes.txt'}: not a MIDI file")):
        find_files(tmp_path / "notes.txt", (".mid",), what="MIDI", lists=False, named_any_type=False)
    with pytest.raises(InputError, match=re.escape(f"{tmp_path / '*.wav'}: no such file or folder")):
        find_files(str(tmp_path / "*.wav"), (".wav",), what="audio")  # globs only where the caller takes them
    assert [f.rel for f in find_files(str(tmp_path / "*.wav"), (".wav",), what="audio", globs=True)] == ["d.wav"]


def test_find_files_list_entries_next_to_the_list_else_as_written(tmp_path, monkeypatch):
    from w2m2w.finding import find_files

    _touch(tmp_path / "lists" / "x" / "a.mid", tmp_path / "x" / "a.mid", tmp_path / "work" / "y" / "b.mid")
    lst = tmp_path / "lists" / "held_out.txt"
    lst.write_text("x/a.mid\ny/b.mid\nz/gone.mid\n")
    monkeypatch.chdir(tmp_path / "work")  # where a training run wrote the list from
    got = {f.rel: f.path for f in find_files(lst, (".mid",), what="MIDI")}
    assert got == {
        "lists/x/a.mid": tmp_path / "lists" / "x" / "a.mid",  # next to the list wins over the working folder's x/a.mid
        "work/y/b.mid": Path("y/b.mid"),  # only as written (from work/): as written
        "lists/z/gone.mid": tmp_path / "lists" / "z" / "gone.mid",
    }  # nowhere: next to the list, reported by name later
    (tmp_path / "l.lst").write_text(f"{tmp_path / 'x' / 'a.mid'}\n")
    assert [f.rel for f in find_files(tmp_path / "l.lst", (".mid",), what="MIDI")] == ["a.mid"]


def _nothing_usable(tmp_path: Path) -> Path:
    folder = tmp_path / "run" / "1-transcribe"
    _touch(folder / "notes.txt", folder / ".a.mid.tmp-host-1-0123abcd.mid", folder / "readme.md")
    return folder


@pytest.mark.parametrize("caller", ["pipeline", "evaluate transcription", "evaluate generation", "evaluate synthesis"])
def test_every_caller_names_a_folder_with_nothing_usable_in_one_line(tmp_path, caller):
    folder = _nothing_usable(tmp_path)
    want = {
        "pipeline": f"{folder}: folder holds no audio or MIDI files",
        "evaluate transcription": f"input {folder}: folder holds no MIDI or audio files",
        "evaluate generation": f"input {folder}: folder holds no MIDI files",
        "evaluate synthesis": f"input {folder}: folder holds no MIDI or .tsv note files",
    }[caller]
    with pytest.raises(ValueError) as info:  # InputError and EvaluateError are ValueErrors
        if caller == "pipeline":
            discover_inputs(folder)
        elif caller == "evaluate transcription":
            from w2m2w.evaluate.__main__ import evaluate_transcription

            evaluate_transcription(folder, tmp_path)
        elif caller == "evaluate generation":
            from w2m2w.evaluate.generation import evaluate_generation

            evaluate_generation(folder, tmp_path / "no weights needed yet.safetensors")
        else:
            from w2m2w.evaluate.synthesis import note_inputs

            note_inputs(folder)
    assert str(info.value) == want
