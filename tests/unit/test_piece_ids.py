"""Piece ids (w2m2w/run/piece_ids.py): the id rule, its collision rule, and the check of ids read back from files."""

from __future__ import annotations

import hashlib
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from w2m2w.finding import relative_posix
from w2m2w.run.piece_ids import (
    MAX_COMPONENT_BYTES,
    UnsafePieceIdError,
    assign_ids,
    base_id,
    check_piece_id,
    clash_key,
    safe_component,
)


def _h(rel: str) -> str:
    return hashlib.sha256(rel.encode()).hexdigest()[:8]


def _distinct_on_every_file_system(ids) -> bool:
    """Distinct as a case-sensitive file system, Windows (case folded to upper case) and macOS (NFD, case folded) see
    the names: a reference written apart from the module's clash_key."""
    ids = list(ids)
    views = (
        lambda p: p,
        lambda p: unicodedata.normalize("NFC", p).upper(),
        lambda p: unicodedata.normalize("NFD", p).lower(),
    )
    return all(len({view(p) for p in ids}) == len(ids) for view in views)


# ---- the id rule ----


def test_letters_of_every_script_and_what_file_systems_take_are_kept():
    for name in (
        "練習曲",
        "Étude op. 10 no. 3",
        "a b",
        "a  b",
        "a&b",
        "a_b",
        "Шопен",
        "سونات",
        "x+y-z_1.2",
        "(take 2) [live]",
        "a=b,c;d'e",
    ):
        assert safe_component(name) == name


def test_what_some_file_system_refuses_is_replaced():
    assert safe_component('a/b\\c:d*e?f"g<h>i|j') == "a_b_c_d_e_f_g_h_i_j"
    assert safe_component("tab\there\nnew\x00nul") == "tab_here_new_nul"
    assert safe_component("not utf-8 \udcff") == "not utf-8 _", "undecodable bytes of a name (surrogate escapes)"


def test_never_empty_hidden_or_a_dot_name():
    assert safe_component("") == "_" and safe_component(".") == "_" and safe_component("..") == "_"
    assert safe_component(".hidden") == "hidden"
    assert safe_component(" take 1. ") == "take 1", "outer spaces and trailing dots go (Windows drops them)"


def test_unicode_is_normalised_to_nfc():
    assert safe_component(unicodedata.normalize("NFD", "é")) == "é" == unicodedata.normalize("NFC", "é")


def test_a_long_name_is_cut_with_a_hash_of_the_whole():
    name = "練" * 100  # 300 bytes of UTF-8
    s = safe_component(name)
    assert len(s.encode()) <= MAX_COMPONENT_BYTES
    assert s.endswith("~" + hashlib.sha256(name.encode()).hexdigest()[:8]) and s.startswith("練" * 40)
    assert safe_component("練" * 101) != s


def test_base_id_mirrors_folders_and_drops_the_extension():
    assert base_id("set a/take 1.wav") == "set a/take 1"
    assert base_id("op.10/no.3.flac") == "op.10/no.3"
    assert base_id("README") == "README"
    assert base_id("takes.wav/a.wav") == "takes_wav/a", "a folder never sits where another piece's output file goes"
    assert base_id("X.MID/a.wav") == "X_MID/a"


# ---- the collision rule ----


def test_ids_that_differ_only_where_old_rules_replaced_stay_apart():
    rels = [
        "練習曲.wav",
        "夜想曲.wav",
        "前奏曲.wav",
        "円舞曲.wav",
        "幻想曲.wav",
        "a b.wav",
        "a_b.wav",
        "a  b.wav",
        "a&b.wav",
    ]
    assert assign_ids(rels) == {r: r[:-4] for r in rels}


def test_same_name_other_extension_keeps_the_extension():
    assert assign_ids(["a.flac", "a.wav", "b.wav"]) == {"a.flac": "a_flac", "a.wav": "a_wav", "b.wav": "b"}


def test_what_the_extension_cannot_tell_apart_gets_a_hash_of_the_path():
    ids = assign_ids(["a.wav", "a.flac", "a_wav.mp3", "x:y.wav", "x?y.wav"])
    assert ids == {
        "a.flac": "a_flac",
        "a.wav": f"a~{_h('a.wav')}",
        "a_wav.mp3": f"a_wav~{_h('a_wav.mp3')}",
        "x:y.wav": f"x_y~{_h('x:y.wav')}",
        "x?y.wav": f"x_y~{_h('x?y.wav')}",
    }


def test_ids_equal_up_to_case_clash_for_case_insensitive_file_systems():
    ids = assign_ids(["Take.wav", "take.wav", "sub/A.wav", "SUB/a.wav"])
    assert _distinct_on_every_file_system(ids.values())
    nfd, nfc = unicodedata.normalize("NFD", "é.wav"), unicodedata.normalize("NFC", "É.wav")  # one name on macOS
    assert _distinct_on_every_file_system(assign_ids([nfd, nfc]).values())
    assert assign_ids(["Ab.wav", "aB.wav"]) == {"Ab.wav": f"Ab~{_h('Ab.wav')}", "aB.wav": f"aB~{_h('aB.wav')}"}
    assert ids["Take.wav"] == f"Take~{_h('Take.wav')}" and ids["sub/A.wav"] == f"sub/A~{_h('sub/A.wav')}"


def test_ids_do_not_depend_on_order():
    rels = ["a.wav", "a.flac", "a_wav.mp3", "b/c.mid", "B/c.mid"]
    assert assign_ids(rels) == assign_ids(list(reversed(rels)))


def test_relative_posix_does_not_follow_symlinks_and_falls_back_to_the_name(tmp_path):
    assert relative_posix(tmp_path / "in" / "x" / "a.wav", tmp_path / "in") == "x/a.wav"
    assert relative_posix(tmp_path / "elsewhere" / "a.wav", tmp_path / "in") == "a.wav"


# ---- ids read back from run.json or a summary ----


@pytest.mark.parametrize(
    "bad", ["../../victim", "/abs/path", "a/../b", "a//b", "", ".hidden", "a/./b", "a\\b", "a\x00b", "x" * 300, 7, None]
)
def test_unsafe_ids_are_refused(bad):
    with pytest.raises(UnsafePieceIdError):
        check_piece_id(bad)


@pytest.mark.parametrize("good", ["set_a/take_1", "set a/take 1", "練習曲", "a~1234abcd", "op.10/no.3"])
def test_safe_ids_pass(good):
    assert check_piece_id(good) == good


# ---- properties over generated names ----

names = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40).filter(lambda s: "/" not in s)
rel_paths = st.lists(
    st.tuples(st.lists(names, max_size=2), names, st.sampled_from(["wav", "flac", "mid", "mp3", ""])),
    min_size=1,
    max_size=12,
)


def _rel(folders: list[str], stem: str, ext: str) -> str:
    return "/".join([*folders, stem + ("." + ext if ext else "")])


@settings(max_examples=300, deadline=None)
@given(rel_paths)
def test_every_input_gets_its_own_safe_stable_id(items):
    rels = list(dict.fromkeys(_rel(*i) for i in items))
    ids = assign_ids(rels)
    assert set(ids) == set(rels), "no input lost"
    assert _distinct_on_every_file_system(ids.values()), "unique, even for a case-insensitive file system"
    for pid in ids.values():
        assert check_piece_id(pid) == pid, "every id is one the run folder accepts back"
        assert all(len(part.encode()) <= MAX_COMPONENT_BYTES + 9 for part in pid.split("/"))
    assert assign_ids(list(reversed(rels))) == ids, "the same ids whatever the order"


@settings(max_examples=200, deadline=None)
@given(names)
def test_safe_component_is_idempotent_and_keeps_letters(name):
    s = safe_component(name)
    assert safe_component(s) == s
    kept = [ch for ch in unicodedata.normalize("NFC", name) if unicodedata.category(ch).startswith("L")]
    assert all(ch in s for ch in kept[:10]) or len(name.encode()) > MAX_COMPONENT_BYTES


# ---- edges: the byte limit, folder endings, the clash key, the id check's length ----


def test_a_name_of_exactly_the_byte_limit_is_kept_one_more_byte_is_cut():
    assert safe_component("a" * MAX_COMPONENT_BYTES) == "a" * MAX_COMPONENT_BYTES
    long = "a" * (MAX_COMPONENT_BYTES + 1)
    # by hand: 160 bytes in all = 151 kept + "~" + 8 hex digits of the sha256 of the whole name
    assert MAX_COMPONENT_BYTES == 160 and safe_component(long) == "a" * 151 + "~" + _h(long)


def test_a_cut_never_splits_a_character_or_ends_in_a_dot():
    name = "練" * 54  # 162 bytes: over the limit by two; 151 bytes hold 50 whole characters (150 bytes)
    assert safe_component(name) == "練" * 50 + "~" + _h(name)
    name = "a" * 150 + ". " + "b" * 20  # the cut falls just after the dot: the dot goes, as at any name's end
    assert safe_component(name) == "a" * 150 + "~" + _h(name)


def test_folder_endings_of_run_files_and_their_neighbours():
    for ext in ("mid", "midi", "wav", "json", "lock", "html"):
        assert base_id(f"x.{ext}/a.wav") == f"x_{ext}/a", ext
    for folder in ("x.mid2", "x.wavy", "xmid", "x.flac", "x.mp3", "mid"):
        assert base_id(f"{folder}/a.wav") == f"{folder}/a", folder
    assert base_id("x.mid/y.json/a.wav") == "x_mid/y_json/a"
    assert base_id("op.10.mid/a.wav") == "op.10_mid/a", "the last dot only"
    assert base_id("x.mid") == "x", "the piece's own extension is dropped, not replaced"


def test_clash_key_folds_case_and_unicode_forms():
    # by hand: German sharp s folds to "ss" (casefold, not lower); NFD e + combining acute is NFC e-acute
    assert clash_key("Straße") == "strasse" == clash_key("STRASSE")
    assert clash_key("e\u0301") == "\u00e9" == clash_key("\u00c9")
    assert clash_key("a/B") == "a/b"


def test_the_id_check_takes_191_bytes_a_component_and_refuses_192():
    assert check_piece_id("a" * 191) == "a" * 191
    with pytest.raises(UnsafePieceIdError):
        check_piece_id("a" * 192)
    assert check_piece_id("x/" + "é" * 95) == "x/" + "é" * 95  # 190 bytes
    with pytest.raises(UnsafePieceIdError):
        check_piece_id("x/" + "é" * 96)  # 192 bytes in 96 characters


def test_ids_stay_apart_with_tags_when_hashes_of_8_digits_are_not_enough(monkeypatch):
    import w2m2w.run.piece_ids as pi

    # with every 8-digit hash made equal, the loop doubles the digits until the tags differ
    real = pi._short_hash
    monkeypatch.setattr(pi, "_short_hash", lambda text, digits=8: "0" * digits if digits == 8 else real(text, digits))
    ids = pi.assign_ids(["a.wav", "A.wav"])
    assert ids == {
        "a.wav": "a~" + hashlib.sha256(b"a.wav").hexdigest()[:16],
        "A.wav": "A~" + hashlib.sha256(b"A.wav").hexdigest()[:16],
    }


def test_edges_of_base_id_and_the_cut():
    assert base_id("") == "_" and base_id(".") == "_"
    assert base_id("/abs/a.wav") == "abs/a", "the root of an absolute path is no component"
    # a cut name ending in a letter that the dot-and-space strip must keep
    name = "X" * 200
    assert safe_component(name) == "X" * 151 + "~" + _h(name)
