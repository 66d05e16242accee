"""The keyword index: SQLite FTS5 over each chunk's analysed terms, in the catalog's own file.

Terms come from ``lexical.Analyzer`` (Korean morphemes, Russian/English Snowball stems), so FTS5
only splits on spaces. Living in the catalog file means a recording's keyword rows commit in the
same transaction as its catalog rows. Filters are pushed into the same SQL statement, so a
selective filter (one speaker) ranks only that speaker's chunks and never loses hits.
"""
from __future__ import annotations

from .catalog import Catalog, filter_sql
from .ranking import SearchFilters


class Fts5Keywords:
    """BM25 search over ``chunk_terms``; rowid is the chunk id."""

    def __init__(self, catalog: Catalog):
        self.catalog = catalog

    def write(self, ids: list[int], terms: list[tuple[str, str]]) -> None:
        """(Re)write the keyword rows (original, English) of these chunks. Call inside a catalog transaction."""
        self.remove(ids)
        self.catalog.execute_many("INSERT INTO chunk_terms(rowid, original, english) VALUES (?, ?, ?)",
                       [(i, original, english) for i, (original, english) in zip(ids, terms, strict=True)])

    def remove(self, ids: list[int]) -> None:
        self.catalog.execute_many("DELETE FROM chunk_terms WHERE rowid = ?", [(i,) for i in ids])

    def missing(self) -> list[int]:
        """Chunks without keyword rows (a library made before keyword search, or repaired)."""
        return [r[0] for r in self.catalog.query(
            "SELECT id FROM chunks WHERE id NOT IN (SELECT rowid FROM chunk_terms) ORDER BY id")]

    def terms_of(self, ids: list[int]) -> dict[int, set[str]]:
        """The stored terms (original and English) of these chunks."""
        if not ids:
            return {}
        rows = self.catalog.query(f"SELECT rowid AS id, original || ' ' || COALESCE(english, '') AS words FROM chunk_terms "
                                  f"WHERE rowid IN ({','.join('?' * len(ids))})", tuple(ids))
        return {r["id"]: set(r["words"].split()) for r in rows}

    def search(self, terms: list[str], k: int, filters: SearchFilters | None = None) -> list[tuple[int, float, set[str]]]:
        """Chunks matching any term, best BM25 first: (chunk id, score, the query terms it holds)."""
        wanted = sorted(set(terms))
        if not wanted:
            return []
        expression = " OR ".join('"' + t.replace('"', '""') + '"' for t in wanted)
        where, args = filter_sql(filters or SearchFilters())
        join = "" if where == "1" else (" JOIN chunks ON chunks.id = chunk_terms.rowid"
                                        " JOIN recordings ON recordings.id = chunks.recording_id")
        rows = self.catalog.query(
            f"SELECT chunk_terms.rowid AS id, -bm25(chunk_terms) AS score, original || ' ' || COALESCE(english, '') AS words "
            f"FROM chunk_terms{join} WHERE chunk_terms MATCH ? AND {where} ORDER BY bm25(chunk_terms) LIMIT ?",
            (expression, *args, k))
        return [(r["id"], r["score"], set(wanted) & set(r["words"].split())) for r in rows]
