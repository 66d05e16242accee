"""``talksearch demo``: build the shipped demo library (synthetic smart-city talks in English
and Russian, plus a Korean talk from its subtitle file) and run example searches."""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

from index.catalog import Catalog
from index.library import LibraryError, SearchRequest
from ingest.records import Metadata

from .config import Settings
from .render import console, print_hits
from .service import Talksearch

DEMO_DIR = Path(__file__).parent / "demo"
DEFAULT_DEMO_LIBRARY = Path("talksearch-demo")


@dataclass
class Example:
    query: str
    why: str


EXAMPLES = [
    Example("5G pilots", "English query, English talk"),
    Example("умные светофоры", "Russian query, Russian talk"),
    Example("주민을 위한 디지털 플랫폼", "Korean query, Korean transcript (and an English talk on the same theme)"),
    Example("smart traffic lights at intersections", "cross-lingual: English query, the answer is spoken in Russian"),
]


def demo_talks() -> list[dict]:
    return json.loads((DEMO_DIR / "talks.json").read_text(encoding="utf-8"))["talks"]


def build_demo(app: Talksearch) -> float:
    """Add every demo talk (already-present ones are skipped). Returns seconds of audio transcribed."""
    transcribed = 0.0
    for talk in demo_talks():
        meta = Metadata(talk["title"], talk["language"], talk.get("event"), talk.get("session"), talk.get("speaker"), talk.get("date"))
        started = time.perf_counter()
        if talk["media"] == "audio":
            outcome = app.ingest(DEMO_DIR / talk["file"], replace(meta, language=None))
            transcribed += outcome.recording.duration if outcome.added else 0.0
        else:
            outcome = app.import_transcript(DEMO_DIR / talk["file"], None, meta, DEMO_DIR / talk["translation_file"])
        state = f"added in {time.perf_counter() - started:.1f} s" if outcome.added else "already there"
        console.print(f"  {outcome.recording.id}  [{outcome.recording.language}] {talk['title']}  ({state})", highlight=False)
    return transcribed


def _check_demo_library(folder: Path) -> None:
    """``--fresh`` deletes a folder: only one that is a library holding nothing but demo talks."""
    catalog_file = folder / "catalog.sqlite"
    if not catalog_file.is_file():
        raise LibraryError(f"--fresh deletes the demo library, and {folder} is not a talksearch library: refusing to delete it")
    demo_titles = {talk["title"] for talk in demo_talks()}
    catalog = Catalog(catalog_file)
    try:
        others = [r.title for r in catalog.recordings() if r.title not in demo_titles]
    finally:
        catalog.close()
    if others:
        raise LibraryError(f"--fresh deletes the demo library, and {folder} holds other recordings too "
                           f"({', '.join(others[:3])}): refusing to delete it")


def run_demo(settings: Settings, fresh: bool = False, explicit_library: bool = False) -> int:
    if not explicit_library:
        settings = settings.changed(library=DEFAULT_DEMO_LIBRARY)
    if fresh and settings.library.exists():
        _check_demo_library(settings.library)
        shutil.rmtree(settings.library)
    app = Talksearch(settings)
    console.print(f"[bold]Building the demo library in {settings.library}[/bold]")
    started = time.perf_counter()
    app.warm_up()
    console.print(f"  models ready in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    audio = build_demo(app)
    if audio:
        elapsed = time.perf_counter() - started
        console.print(f"  transcribed + translated {audio:.0f} s of audio in {elapsed:.0f} s (real-time factor {elapsed / audio:.2f})")
    for example in EXAMPLES:
        console.print(f"\n[bold]talksearch search {example.query!r}[/bold]  [dim]{example.why}[/dim]")
        started = time.perf_counter()
        hits = app.search(SearchRequest(example.query, k=3))
        print_hits(hits, elapsed=time.perf_counter() - started)
    console.print(f"\nTry your own: talksearch search \"...\" --library {settings.library}")
    return 0
