"""How the command line shows things: hits, recordings, speakers, outcomes. One console, so the
CLI, the demo and the evaluation report print alike."""
from __future__ import annotations

import json
import sys
from dataclasses import asdict

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from index.catalog import Speaker
from index.library import Hit
from ingest.records import Recording, Transcript

# Piped output gets a fixed, wide layout instead of the 80-column default.
console = Console(width=None if sys.stdout.isatty() else 140)


def mmss(seconds: float) -> str:
    """Times as a person reads them: m:ss, or h:mm:ss past an hour."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


def as_json(records: list) -> None:
    print(json.dumps([asdict(r) for r in records], ensure_ascii=False, indent=1))


def marked(text: str, spans: list[list[int]], style: str = "") -> Text:
    """Text with the words that matched the query in bold."""
    rich_text = Text(text, style=style)
    for start, end in spans:
        rich_text.stylize("bold yellow", start, end)
    return rich_text


def print_hits(hits: list[Hit], elapsed: float | None = None) -> None:
    table = Table(show_lines=True)
    for column in ("#", "score", "recording", "time", "lang", "speaker", "said"):
        table.add_column(column, overflow="fold")
    for rank, hit in enumerate(hits, 1):
        said = marked(hit.text, hit.highlights)
        if hit.translation:
            said.append("\n(machine rendering, low confidence) " if hit.translation_doubtful else "\n", style="dim italic")
            said.append(marked(hit.translation, hit.translation_highlights, "dim"))
        table.add_row(str(rank), f"≈{hit.score:.2f}" if hit.approximate else f"{hit.score:.3f}", f"{hit.title}\n[dim]{hit.recording_id}[/dim]",
                      f"{mmss(hit.start)}–{mmss(hit.end)}", hit.language, hit.speaker or "", said)
    console.print(table)
    if elapsed is not None:
        console.print(f"[dim]{len(hits)} hits in {elapsed * 1000:.0f} ms[/dim]")


def print_recordings(recordings: list[Recording]) -> None:
    table = Table()
    for column in ("id", "title", "lang", "length", "speaker", "added"):
        table.add_column(column)
    for r in recordings:
        table.add_row(r.id, r.title, r.language, mmss(r.duration), r.speaker or "", r.added_at[:16])
    console.print(table)


def print_transcript(recording: Recording, transcript: Transcript, names: dict[str, str]) -> None:
    """Each segment with its times, language and voice (``names``: label → name shown)."""
    console.print(f"[bold]{recording.title}[/bold]  {recording.id}  {recording.language}  {mmss(recording.duration)}  {recording.source}")
    for segment in transcript.segments:
        who = f"[magenta]{escape(names.get(segment.speaker, segment.speaker))}:[/magenta] " if segment.speaker else ""
        console.print(f"[cyan]{mmss(segment.start)}–{mmss(segment.end)}[/cyan] [{segment.language}] {who}{segment.text}",
                      highlight=False)
        if segment.translation:
            console.print(f"             [dim]{segment.translation}[/dim]", highlight=False)


def print_speakers(recording: Recording, voices: list[Speaker]) -> None:
    if not voices:
        console.print(f"{recording.id} ({recording.title}): no speakers found (ingested without diarization)", highlight=False)
        return
    table = Table(title=f"{recording.title} ({recording.id})")
    for column in ("speaker", "name", "talk time", "sample quote"):
        table.add_column(column, overflow="fold")
    for v in voices:
        name = v.name or (f"[dim]sounds like {v.suggested}?[/dim]" if v.suggested else "")
        table.add_row(v.label, name, mmss(v.seconds), escape(v.quote))
    console.print(table)


def print_recording_line(recording: Recording) -> None:
    """One recording's metadata on a line (after an edit)."""
    r = recording
    console.print(f"{r.id}: {r.title} | {r.event or '-'} | {r.session or '-'} | {r.speaker or '-'} | {r.date or '-'} | {r.language}",
                  highlight=False)
