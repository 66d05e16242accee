"""The scale benchmark's library builder: a stopped build grown later is the library a build in
one go makes (a million-chunk build takes most of an hour, so it is grown in steps)."""
from __future__ import annotations

from benchmarks.scale import SyntheticTalks, build, real_lines


def test_a_grown_library_is_the_one_built_in_one_go(tmp_path):
    lines = real_lines()
    store, _ = build(tmp_path / "grown", 1500, SyntheticTalks(lines))
    store.catalog.close()
    grown, _ = build(tmp_path / "grown", 3000, SyntheticTalks(lines))
    whole, _ = build(tmp_path / "whole", 3000, SyntheticTalks(lines))
    assert grown.counts() == whole.counts() and grown.counts()["chunks"] >= 3000
    assert [r.id for r in grown.records.recordings()] == [r.id for r in whole.records.recordings()]
    assert grown.records.transcript("r000003") == whole.records.transcript("r000003")
