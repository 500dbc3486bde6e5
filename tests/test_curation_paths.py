"""Output paths built from record fields: clean, contained, one file per id (curation/paths.py)."""
from __future__ import annotations

from pathlib import PurePosixPath

from curation.paths import MAX_NAME_BYTES, clean_component, output_paths


def test_clean_component_removes_what_a_filesystem_would_misread():
    assert clean_component("../../etc") == "_.._etc"
    assert clean_component(".hidden") == "hidden"
    assert clean_component("a/b\\c:d") == "a_b_c_d"
    assert clean_component("tab\there\x00") == "tab_here_"
    assert clean_component("trailing. ") == "trailing"
    assert clean_component("CON") == "CON_" and clean_component("nul.txt") == "nul.txt_"
    assert clean_component("lpt9") == "lpt9_" and clean_component("CONSOLE") == "CONSOLE"
    long = clean_component("é" * 200)
    assert len(long.encode("utf-8")) <= MAX_NAME_BYTES and long == "é" * (MAX_NAME_BYTES // 2)


def test_output_paths_are_contained_and_one_to_one():
    ids = [("s:a/b", "s", "a/b"), ("s:a_b", "s", "a_b"), ("s:CON", "s", "CON"), ("s:con", "s", "con"),
           ("x:", "x", ""), ("y:", "y", ""), ("../../z:1", "../../z", "1"), ("s:Abc", "s", "Abc"),
           ("s:abc", "s", "abc"), ("s:e\u0301", "s", "e\u0301"), ("s:\u00e9", "s", "\u00e9")]
    paths = output_paths(ids, "flac")
    assert set(paths) == {i for i, _, _ in ids}
    folded = [p.casefold() for p in paths.values()]
    assert len(set(folded)) == len(folded), paths  # distinct even on case-insensitive filesystems
    for rel in paths.values():
        parts = PurePosixPath(rel).parts
        assert parts[0] == "audio" and len(parts) == 3 and rel.endswith(".flac")
        assert all(p not in ("", ".", "..") and not p.startswith(".") for p in parts), rel
        assert clean_component(PurePosixPath(rel).stem).split(".")[0].upper() not in {"CON", "NUL"}
    assert paths["s:a_b"] == "audio/s/a_b.flac"  # a clean, unique name is kept as it is
    assert output_paths(ids, "flac") == paths     # deterministic
