"""The vector store on its own: append-only segments, merges, the approximate index, filters
pushed down, crash leftovers, and a second process's writes. Small random vectors stand in for
embeddings; the real model is covered end to end elsewhere."""
from __future__ import annotations

import numpy as np
import pytest

from index.catalog import Catalog
from index.library import Library
from index.ranking import SearchFilters
from index.backends import open_store
from index.store import EmbeddedStore, StoreError
from index.vectors import MAX_VIEWS, ORIGINAL, VectorSettings, vector_id
from tests.helpers import DIM, add, add_recording, said, unit


def exact(store: EmbeddedStore, query: np.ndarray, k: int) -> list[int]:
    """Brute force over every live view, the reference an approximate search is judged by."""
    scored = []
    for chunk_id in store.vectors.chunk_ids():
        _, vectors = store.vectors.views(chunk_id)
        scored.append((float((vectors @ query).max()), chunk_id))
    return [c for _, c in sorted(scored, reverse=True)[:k]]


@pytest.fixture
def small_store(tmp_path):
    return EmbeddedStore(tmp_path / "lib", DIM, vector_settings=VectorSettings(ann_min=400, ef_search=32, merge_fanout=4))


def test_a_write_adds_one_segment_and_merges_happen_in_tiers(small_store):
    rng = np.random.default_rng(1)
    for i in range(9):
        add_recording(small_store, f"r{i}", unit(rng, 20))
    assert len(small_store.catalog.segments()) == 9            # append-only: one segment per write
    query = unit(rng, 1)[0]
    before = [(c, round(s, 3)) for c, s, _ in small_store.vectors.search(query, 10)]
    small_store.maintain()
    assert len(small_store.catalog.segments()) < 9
    files = {p.name.split(".")[0] for p in (small_store.folder / "vectors").glob("seg-*")}
    assert files == set(small_store.catalog.segments())       # merged-away files are gone
    assert [(c, round(s, 3)) for c, s, _ in small_store.vectors.search(query, 10)] == before


def test_rescored_scores_are_the_stored_float16_vectors_times_the_query(small_store):
    """The rescoring decodes float16 rows its own (faster) way: its scores are numpy's."""
    rng = np.random.default_rng(5)
    add_recording(small_store, "r0", unit(rng, 30))
    stored = {}
    for path in (small_store.folder / "vectors").glob("seg-*.ids.npy"):
        for view_id, vector in zip(np.load(path), np.load(str(path).replace(".ids.", ".vec.")).astype(np.float32)):
            stored.setdefault(int(view_id) // MAX_VIEWS, []).append(vector)
    query = unit(rng, 1)[0]
    found = small_store.vectors.search(query, 10)
    assert len(found) == 10
    for chunk_id, score, _ in found:
        assert score == pytest.approx(float((np.array(stored[chunk_id]) @ query).max()), abs=1e-6)


def test_merges_keep_every_chunk_searchable_and_the_graph_free_of_copies(tmp_path):
    rng = np.random.default_rng(7)
    store = EmbeddedStore(tmp_path / "lib", DIM, vector_settings=VectorSettings(ann_min=50, merge_fanout=4))
    written = {}
    for i in range(20):
        written[f"r{i}"] = unit(rng, 10)
        add_recording(store, f"r{i}", written[f"r{i}"])
        store.maintain()
    assert store.vectors.approximate
    assert store.vectors.coarse_size() == 200  # 100 chunks x 2 whole-chunk views, merged many times over
    for rid, vectors in written.items():
        [(chunk_id, score, _)] = store.vectors.search(vectors[0], 1)
        assert store.records.chunks([chunk_id])[chunk_id].recording_id == rid and score == pytest.approx(1.0, abs=1e-2)


def test_deleted_chunks_are_never_returned_and_their_rows_go_at_compaction(small_store):
    rng = np.random.default_rng(2)
    vectors = unit(rng, 8)
    for i in range(4):
        add_recording(small_store, f"r{i}", vectors if i == 0 else unit(rng, 8))
    doomed = {c.id for c in small_store.records.chunks_of("r0")}
    assert small_store.delete("r0")
    assert doomed.isdisjoint(c for c, _, _ in small_store.vectors.search(vectors[0], 50))
    rows = sum(small_store.catalog.segments().values())
    small_store.maintain()
    assert sum(small_store.catalog.segments().values()) == rows - 8
    assert len(small_store.vectors) == 24


def test_each_delete_is_skipped_by_the_graph_at_once(tmp_path):
    """Deleted chunks stay in the graph until it is rebuilt; searches skip them, delete after
    delete (the skip list is made once per change, not per search)."""
    rng = np.random.default_rng(4)
    store = EmbeddedStore(tmp_path / "lib", DIM, vector_settings=VectorSettings(ann_min=50, rebuild_dead_share=0.9))
    written = {f"r{i}": unit(rng, 10) for i in range(8)}
    for rid, vectors in written.items():
        add_recording(store, rid, vectors)
    store.maintain()
    assert store.vectors.approximate
    for rid in ("r0", "r1"):
        doomed = {c.id for c in store.records.chunks_of(rid)}
        assert store.delete(rid)
        assert doomed.isdisjoint(c for q in written[rid] for c, _, _ in store.vectors.search(q, 20))
    assert store.vectors.approximate  # skipped, not rebuilt
    [(chunk_id, _, _)] = store.vectors.search(written["r2"][0], 1)
    assert store.records.chunks([chunk_id])[chunk_id].recording_id == "r2"


def test_the_coarse_index_turns_approximate_past_the_threshold_with_high_recall(small_store, tmp_path):
    rng = np.random.default_rng(3)
    centres = unit(rng, 20)  # clustered, as real embeddings are
    for i in range(30):
        noisy = centres[rng.integers(0, 20, 40)] + 0.35 * unit(rng, 40)
        add_recording(small_store, f"r{i}", noisy / np.linalg.norm(noisy, axis=1, keepdims=True))
    small_store.maintain()
    assert small_store.vectors.approximate and (small_store.folder / "vectors" / "coarse.faiss").exists()
    queries = unit(rng, 30)  # asked as the library asks: a pool of 100, of which the best 10 are shown
    recall = np.mean([len(set(exact(small_store, q, 10)) & {c for c, _, _ in small_store.vectors.search(q, 100)[:10]}) / 10
                      for q in queries])
    assert recall >= 0.95
    # reopened, the saved index is used, and a write after training is searchable at once
    again = EmbeddedStore(tmp_path / "lib", DIM, vector_settings=small_store.vectors.settings)
    assert again.vectors.approximate
    fresh = unit(rng, 2)
    add_recording(again, "new", fresh)
    [(chunk_id, score, view)] = again.vectors.search(fresh[0], 1)
    assert again.records.chunks([chunk_id])[chunk_id].recording_id == "new" and score == pytest.approx(1.0, abs=1e-2)


def test_a_graph_saved_with_other_settings_is_built_again_not_used(tmp_path):
    """Graphs of 8-bit codes, saved before 4-bit codes became the default, or with another
    degree, are replaced at the next maintenance; meanwhile searches scan exactly."""
    rng = np.random.default_rng(5)
    old = VectorSettings(ann_min=100, hnsw_bits=8)
    store = EmbeddedStore(tmp_path / "lib", DIM, vector_settings=old)
    for i in range(4):
        add_recording(store, f"r{i}", unit(rng, 40))
    store.maintain()
    note = tmp_path / "lib" / "vectors" / "coarse.json"
    assert store.vectors.approximate and '"HNSW32,SQ8"' in note.read_text()
    store.catalog.close()
    new = VectorSettings(ann_min=100, hnsw_bits=4)
    again = EmbeddedStore(tmp_path / "lib", DIM, vector_settings=new)
    assert not again.vectors.approximate  # the 8-bit graph is not taken for a 4-bit one
    query = unit(rng, 1)[0]
    assert [c for c, _, _ in again.vectors.search(query, 5)] == exact(again, query, 5)
    again.maintain()
    assert again.vectors.approximate and '"HNSW32,SQ4"' in note.read_text()
    assert EmbeddedStore(tmp_path / "lib", DIM, vector_settings=new).vectors.approximate  # and kept from then on
    with pytest.raises(ValueError, match="hnsw_bits is 8 or 4"):
        VectorSettings(hnsw_bits=6)


def test_a_graph_over_the_leading_part_of_each_vector_finds_what_the_whole_vectors_rank_first(tmp_path):
    """With a companion model the graph holds only the main model's part of each vector (its size
    stays that of one model); the candidates are then scored on whole vectors. A process that does
    not know the split uses the saved graph as it is; one asking for another split builds it again."""
    import faiss

    rng = np.random.default_rng(11)
    half = DIM // 2
    centres = rng.standard_normal((20, half))
    main = centres[rng.integers(0, 20, 400)] + 0.4 * rng.standard_normal((400, half))
    beside = main @ rng.standard_normal((half, half)) + 0.5 * rng.standard_normal((400, half))  # a second model: related, not equal
    parts = [main / np.linalg.norm(main, axis=1, keepdims=True), 0.5 * beside / np.linalg.norm(beside, axis=1, keepdims=True)]
    vectors = (np.hstack(parts) / np.sqrt(1.25)).astype(np.float32)
    settings = VectorSettings(ann_min=100, graph_dimension=half)
    store = EmbeddedStore(tmp_path / "lib", DIM, vector_settings=settings)
    for i in range(10):
        add_recording(store, f"r{i}", vectors[40 * i: 40 * (i + 1)])
    store.maintain()
    assert store.vectors.approximate
    assert faiss.read_index(str(tmp_path / "lib" / "vectors" / "coarse.faiss")).d == half
    queries = vectors[rng.integers(0, 400, 30)] + 0.05 * unit(rng, 30)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    found = [[c for c, _, _ in store.vectors.search(q, 100)[:10]] for q in queries]
    assert np.mean([len(set(exact(store, q, 10)) & set(f)) / 10 for q, f in zip(queries, found)]) >= 0.9
    [(_, score, _)] = store.vectors.search(vectors[7], 1)
    assert score == pytest.approx(1.0, abs=1e-2)  # scored on the whole vector, not its graph part
    store.catalog.close()

    unaware = EmbeddedStore(tmp_path / "lib", DIM, vector_settings=VectorSettings(ann_min=100))
    assert unaware.vectors.approximate and [c for c, _, _ in unaware.vectors.search(queries[0], 100)[:10]] == found[0]
    unaware.catalog.close()
    whole = EmbeddedStore(tmp_path / "lib", DIM, vector_settings=VectorSettings(ann_min=100, graph_dimension=DIM))
    assert not whole.vectors.approximate
    whole.maintain()
    assert faiss.read_index(str(tmp_path / "lib" / "vectors" / "coarse.faiss")).d == DIM


def test_the_saved_graph_outlives_merges_of_the_segments_it_covers(tmp_path):
    """A merge replacing segments the saved graph was written with must leave a graph the next
    process can load: before, it found the graph's note naming vanished segments and scanned
    exactly until some later write rebuilt it."""
    rng = np.random.default_rng(11)
    settings = VectorSettings(ann_min=100, merge_fanout=4, rebuild_dead_share=0.9)  # a delete is not a rebuild here
    store = EmbeddedStore(tmp_path / "lib", DIM, vector_settings=settings)
    for i in range(4):
        add_recording(store, f"r{i}", unit(rng, 40))
    store.vectors.train_if_due()  # the graph over four segments, before any merge
    assert store.vectors.approximate
    doomed = {c.id for c in store.records.chunks_of("r1")}
    store.delete("r1")
    covered = set(store.catalog.segments())
    store.maintain()  # merges the four, dropping r1's rows
    assert covered.isdisjoint(store.catalog.segments())
    again = EmbeddedStore(tmp_path / "lib", DIM, vector_settings=settings)
    assert again.vectors.approximate
    assert again.vectors.coarse_size() == store.vectors.coarse_size()  # no vector loaded twice
    probe = unit(rng, 5)
    for query in probe:
        assert [c for c, _, _ in again.vectors.search(query, 10)] == [c for c, _, _ in store.vectors.search(query, 10)]
        assert doomed.isdisjoint(c for c, _, _ in again.vectors.search(query, 80))


def test_chunks_deleted_before_the_graph_was_saved_stay_deleted_after_reopening(tmp_path):
    rng = np.random.default_rng(12)
    settings = VectorSettings(ann_min=30, merge_fanout=8)
    store = EmbeddedStore(tmp_path / "lib", DIM, vector_settings=settings)
    kept = unit(rng, 40)
    add_recording(store, "r0", kept)
    add_recording(store, "r1", unit(rng, 40))
    doomed = {c.id for c in store.records.chunks_of("r1")}
    store.delete("r1")  # its rows stay in its segment until a merge
    store.vectors.train_if_due()  # the graph is built and saved after the delete
    again = EmbeddedStore(tmp_path / "lib", DIM, vector_settings=settings)
    assert again.vectors.approximate and again.check() == []
    assert again.vectors.live_chunks == 20 and doomed.isdisjoint(again.vectors.chunk_ids())
    assert doomed.isdisjoint(c for c, _, _ in again.vectors.search(kept[0], 40))


def test_a_selective_filter_finds_hits_that_rank_far_below_the_pool(tmp_path, hashing_embedder):
    """One speaker's weakly matching talk among many strong ones: filtering after retrieval lost it."""
    library = Library(tmp_path / "lib", hashing_embedder, vectors=VectorSettings(ann_min=100, ef_search=8, exact_subset=0))
    query = "traffic lights intersections"
    for i in range(150):
        add(library, f"loud{i}", said("en", ["traffic lights at intersections in the city"]))
    add(library, "quiet", said("en", ["the budget and some traffic"]), speaker="Ms Quiet")
    library.maintain()
    assert library.store.vectors.approximate
    for mode in ("dense", "hybrid", "lexical"):
        hits = library.search(query, k=5, filters=SearchFilters(speaker="ms quiet"), mode=mode)
        assert [h.recording_id for h in hits] == ["quiet"], mode


def test_a_second_process_sees_writes_and_deletes_without_reopening(tmp_path):
    rng = np.random.default_rng(4)
    writer = EmbeddedStore(tmp_path / "lib", DIM)
    reader = EmbeddedStore(tmp_path / "lib", DIM)  # its own connection and memory, like another process
    vectors = unit(rng, 4)
    add_recording(writer, "a", vectors)
    [(chunk_id, _, _)] = reader.vectors.search(vectors[0], 1)
    assert reader.records.chunks([chunk_id])[chunk_id].recording_id == "a"
    assert {i for i, _ in reader.keywords.search(["текст"], 5)} == {c.id for c in writer.records.chunks_of("a")}
    writer.delete("a")
    assert reader.vectors.search(vectors[0], 1) == []
    assert reader.keywords.search(["текст"], 5) == []


def test_segment_files_of_a_write_that_never_committed_are_removed_at_open(tmp_path):
    rng = np.random.default_rng(5)
    store = EmbeddedStore(tmp_path / "lib", DIM)
    add_recording(store, "a", unit(rng, 4))
    name, _ = store.vectors.write(np.array([vector_id(c, ORIGINAL) for c in (0, 1)]), unit(rng, 2))  # crashed before its commit
    stray = list((tmp_path / "lib" / "vectors").glob(f"{name}.*"))
    assert len(stray) == 2
    reopened = EmbeddedStore(tmp_path / "lib", DIM)
    assert not any(path.exists() for path in stray)
    assert len(reopened.vectors) == 4


def test_the_factory_refuses_locations_it_has_no_backend_for(tmp_path):
    with pytest.raises(StoreError, match="no store backend for 'redis'"):
        open_store("redis://localhost/0", DIM)
    assert isinstance(open_store(tmp_path / "lib", DIM), EmbeddedStore)


def test_filters_resolve_in_sql_case_insensitively(tmp_path):
    store = EmbeddedStore(tmp_path / "lib", DIM)
    rng = np.random.default_rng(6)
    add_recording(store, "a", unit(rng, 4), speaker="Алексей Гарипов")
    add_recording(store, "b", unit(rng, 4))
    ids = store.records.chunk_ids(SearchFilters(speaker="алексей гарипов"))
    assert set(ids.tolist()) == {c.id for c in store.records.chunks_of("a")}
    assert isinstance(store.catalog, Catalog)


def test_rescoring_asks_the_kernel_for_exactly_the_pages_of_the_candidates_rows(tmp_path):
    """The rows of candidate chunks are asked for in one go (page-aligned, adjacent pages as one
    range, never past the file) before they are read."""
    import mmap

    from index.vectors import _will_need

    np.save(tmp_path / "seg.vec.npy", np.ones((5000, 384), dtype=np.float16))  # 768 bytes a row
    rows = np.load(tmp_path / "seg.vec.npy", mmap_mode="r")
    asked: list[tuple[int, int]] = []

    class Watched:
        def __init__(self, mapping):
            self.mapping = mapping

        def __len__(self):
            return len(self.mapping)

        def madvise(self, option, start, length):
            assert option == mmap.MADV_WILLNEED
            asked.append((start, start + length))
            self.mapping.madvise(option, start, length)  # the real call accepts it

    rows._mmap = Watched(rows._mmap)
    _will_need(rows, np.array([4990, 0, 6]), np.array([10, 5, 3]))
    page, base = mmap.PAGESIZE, rows.offset
    assert all(start % page == 0 for start, _ in asked)
    assert asked[0] == (0, page * ((base + 9 * 768 - 1) // page + 1))  # rows 0-4 and 6-8 share pages: one range
    assert asked[1][0] <= base + 4990 * 768 and asked[1][1] == len(rows._mmap)  # the last rows, up to the file's end
    assert len(asked) == 2
    _will_need(rows, np.array([], dtype=np.int64), np.array([], dtype=np.int64))
    assert len(asked) == 2
