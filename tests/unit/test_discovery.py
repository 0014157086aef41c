"""Finding inputs (w2m2w/discovery.py): folders, globs and lists; symlinks, loops, the same file reached twice."""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import pytest

from w2m2w.discovery import InputError, discover_inputs, input_kind


def _touch(*paths: Path) -> None:
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")


def test_input_kind():
    assert input_kind("a/b.wav") == "audio" and input_kind("b.FLAC") == "audio"
    assert input_kind("b.mid") == "midi" and input_kind("b.MIDI") == "midi"
    assert input_kind("b.txt") is None and input_kind("b") is None


def test_a_folder_mirrors_its_tree_sorted_hidden_left_out(tmp_path):
    _touch(tmp_path / "in" / "b.wav", tmp_path / "in" / "a" / "c.mid", tmp_path / "in" / "notes.txt",
           tmp_path / "in" / ".hidden" / "d.wav", tmp_path / "in" / ".e.wav")
    got = discover_inputs(tmp_path / "in")
    assert got == {"a/c": tmp_path / "in" / "a" / "c.mid", "b": tmp_path / "in" / "b.wav"}
    assert list(got) == ["a/c", "b"], "sorted by path"


def test_no_file_is_dropped_whatever_its_name(tmp_path):
    names = ["練習曲", "夜想曲", "前奏曲", "円舞曲", "幻想曲", "a b", "a_b", "a  b", "a&b"]
    _touch(*(tmp_path / "in" / f"{n}.wav" for n in names))
    assert discover_inputs(tmp_path / "in") == {n: tmp_path / "in" / f"{n}.wav" for n in names}


def test_same_name_other_extension_two_pieces(tmp_path):
    _touch(tmp_path / "in" / "a.flac", tmp_path / "in" / "a.wav")
    assert discover_inputs(tmp_path / "in") == {"a_flac": tmp_path / "in" / "a.flac", "a_wav": tmp_path / "in" / "a.wav"}


def test_one_file_of_any_type_is_kept_so_the_pipeline_names_it(tmp_path):
    _touch(tmp_path / "d" / "take one.wav", tmp_path / "d" / "readme.md")
    assert discover_inputs(tmp_path / "d" / "take one.wav") == {"take one": tmp_path / "d" / "take one.wav"}
    assert discover_inputs(tmp_path / "d" / "readme.md") == {"readme": tmp_path / "d" / "readme.md"}


def test_a_list_of_paths_relative_to_their_common_folder(tmp_path):
    _touch(tmp_path / "set" / "x" / "a.wav", tmp_path / "set" / "y" / "b.mid", tmp_path / "abs" / "c.wav")
    lst = tmp_path / "set" / "inputs.txt"
    lst.write_text(f"# a comment\nx/a.wav\n\n  y/b.mid  \n{tmp_path / 'abs' / 'c.wav'}\n")
    assert discover_inputs(lst) == {"set/x/a": tmp_path / "set" / "x" / "a.wav", "set/y/b": tmp_path / "set" / "y" / "b.mid",
                                    "abs/c": tmp_path / "abs" / "c.wav"}
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
    assert discover_inputs(tmp_path / "in") == {"real/a": tmp_path / "in" / "real" / "a.wav", "real/deep/b": tmp_path / "in" / "real" / "deep" / "b.wav"}
    assert discover_inputs(f"{tmp_path}/in/**/*.wav") == {"real/a": tmp_path / "in" / "real" / "a.wav",
                                                         "real/deep/b": tmp_path / "in" / "real" / "deep" / "b.wav"}


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
    assert "up: symlink loop" in text and "here: symlink loop" in text and "loop1.wav: broken symlink or symlink loop" in text


def test_a_glob(tmp_path, monkeypatch):
    root = tmp_path / "Xin"  # an X before the pattern: the root is cut at the first *, ? or [ only
    _touch(root / "a.wav", root / "sub" / "b.wav", root / "sub" / "deep" / "c.wav", root / "sub" / "d.txt", root / ".h" / "e.wav",
           root / "sub" / ".f" / "g.wav")
    assert discover_inputs(f"{root}/*.wav") == {"a": root / "a.wav"}
    assert discover_inputs(f"{root}/**/*.wav") == {"a": root / "a.wav", "sub/b": root / "sub" / "b.wav", "sub/deep/c": root / "sub" / "deep" / "c.wav"}
    assert discover_inputs(f"{root}/su?") == {"sub/b": root / "sub" / "b.wav", "sub/deep/c": root / "sub" / "deep" / "c.wav"}, "a matched folder is searched"
    assert discover_inputs(f"{root}/s[u]b/*.wav") == {"sub/b": root / "sub" / "b.wav"}
    assert discover_inputs(f"{root}/sub*/b.wav") == {"sub/b": root / "sub" / "b.wav"}, "root: the folder holding the partial name"
    assert discover_inputs(f"{root}/sub/*") == {"b": root / "sub" / "b.wav", "d": root / "sub" / "d.txt", "deep/c": root / "sub" / "deep" / "c.wav"}, \
        "matched files of any type, matched folders' audio and MIDI"
    assert discover_inputs(f"{root}/.h/*.wav") == {"e": root / ".h" / "e.wav"}, "hidden, when the pattern says so"
    monkeypatch.chdir(root)
    assert discover_inputs("**/*.wav") == {"a": Path("a.wav"), "sub/b": Path("sub/b.wav"), "sub/deep/c": Path("sub/deep/c.wav")}


@pytest.mark.parametrize("spec, message", [
    ("empty", "folder holds no audio or MIDI files"),
    ("empty.txt", "list of inputs is empty"),
    ("*.nothing", "pattern matches no files"),
    ("nope", "no such file or folder"),
])
def test_what_found_nothing_is_named(tmp_path, spec, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    (tmp_path / "empty.txt").write_text("# only a comment\n\n")
    with pytest.raises(InputError, match=re.escape(f"{tmp_path / spec}: {message}")):
        discover_inputs(str(tmp_path / spec))
