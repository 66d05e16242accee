"""The application service shared by the command line and the HTTP API: it wires the stages
(media → transcript → chunks → library) and owns the loaded models."""
from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Mapping

from core.errors import MediaError, SpeakerError, TalksearchError
from core.files import content_hash
from index.catalog import Speaker
from index.embedder import Embedder
from index.indexing import embed_views
from index.library import Hit, Library, LibraryError, SearchRequest
from index.store import Finding
from ingest.align import attach
from ingest.chunking import chunk_transcript
from ingest.diarize import Diarization, ResemblyzerDiarizer, assign, suggest
from ingest.media import SAMPLE_RATE, AudioSource, is_media_file, load_audio
from ingest.records import Metadata, Recording, Transcript
from ingest.subtitles import read_transcript, write_transcript
from ingest.transcribe import Transcriber

from .config import Settings
from .outcome import Outcome, Prepared, recording_id

if TYPE_CHECKING:  # Ray is imported only when ingest runs on it
    from .distributed import Cluster

log = logging.getLogger(__name__)

# Files ``ingest_many`` hears ahead of the one it stores next (a long file first does not hold up
# the short ones after it; what they make waits in memory: transcripts and vectors, no audio).
FILES_AHEAD = 4


class Talksearch:
    """Light to construct; models load on first use (or in ``warm_up``) and stay loaded."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.transcriber = Transcriber(settings.whisper)
        self.embedder = Embedder(settings.embedder)
        self.library = Library(settings.store or settings.library, self.embedder, fusion=settings.fusion, vectors=settings.vectors)
        self.diarizer = ResemblyzerDiarizer(device=settings.whisper.device)
        self._cluster: Cluster | None = None
        self._joining = threading.Lock()  # the API's job thread joins the cluster; requests may close it

    def warm_up(self, ingest: bool = True, search: bool = False) -> None:
        """Load the models this process runs: the embedder; with ``ingest`` whisper and the voice
        encoder too, unless Ray workers transcribe; with ``search`` the rest of what a search needs
        (``Library.warm_up``: it opens the library, which a Ray worker never does)."""
        if ingest and not self.settings.ray.address:
            self.transcriber.warm_up()
            if self.settings.ingest.diarize:
                self.diarizer.warm_up()
        self.embedder.warm_up()
        if search:
            self.library.warm_up()

    @property
    def cluster(self) -> Cluster:
        """The Ray cluster that transcribes (``settings.ray.address``), joined on first use."""
        with self._joining:
            if self._cluster is None:
                from .distributed import Cluster

                self._cluster = Cluster(self)
            return self._cluster

    def close(self) -> None:
        """Leave the Ray cluster, if one was joined (its workers end with this process's jobs)."""
        with self._joining:
            if self._cluster is not None:
                self._cluster.close()
                self._cluster = None

    # -- adding -----------------------------------------------------------------------------
    @property
    def max_seconds(self) -> float:
        """The longest recording accepted, as media or as a transcript (max_duration_hours)."""
        return self.settings.ingest.max_duration_hours * 3600

    def ingest(self, path: Path, meta: Metadata | None = None, progress: Callable[[float], None] | None = None,
               names: Mapping[Path, str] | None = None, hotwords: str | None = None) -> Outcome:
        """Transcribe, translate, chunk and index one media file (on the Ray cluster when
        ``settings.ray.address`` names one). Same bytes twice is a no-op.
        ``names``: what a client called the files it uploaded (see ``_recording``); ``hotwords``:
        names and terms this recording holds, for Whisper beside the server's glossary."""
        meta, names = meta or Metadata(), names or {}
        with self._as_sent(names):
            if self.settings.ray.address:
                return self.cluster.ingest_one(path, meta, names.get(path), progress, hotwords)
            digest, existing = self.known(path)
            if existing is not None:
                return Outcome(existing, added=False)
            return self.add_transcribed(digest, path, names.get(path), meta,
                                        *self.hear(digest, self.source(path), meta, progress, hotwords))

    def ingest_many(self, items: list[tuple[Path, Metadata, str | None]],
                    progress: Callable[[int, float], None] | None = None,
                    hotwords: str | None = None) -> Iterator[Outcome | TalksearchError]:
        """(path, metadata, client's name) in, each file's outcome or error out, stored one at a
        time in the order given (on the Ray cluster when ``settings.ray.address`` names one).
        ``progress(index, fraction)`` follows each file's transcription.

        Locally, ``whisper.parallel`` files are heard at once: a window shorter than two minutes
        is not cut into parts (``Transcriber.hear``), so one short file alone kept one core busy.
        13 short files (5 demo talks, 8 Korean news clips, 276 s), transcription alone, 2-core
        machine: RTF 0.150 / 0.153 one at a time, 0.083 / 0.085 two at once (0.136 / 0.143 with
        one part on both cores, as before parts)."""
        if self.settings.ray.address:
            yield from self.cluster.ingest(items, progress, hotwords)
            return
        self.warm_up()
        report = progress or (lambda index, fraction: None)
        at_once = max(1, self.settings.whisper.parallel)
        waiting: deque[tuple[int, str, Future | Outcome | TalksearchError]] = deque()
        pool = ThreadPoolExecutor(at_once, thread_name_prefix="ingest-file")
        try:
            for index, (path, meta, _) in enumerate(items):
                while len(waiting) >= at_once + FILES_AHEAD:
                    yield self._stored(items, *waiting.popleft())
                try:  # the library is read here, on the thread that writes to it
                    digest, existing = self.known(path)
                    audio = self.source(path) if existing is None else None
                except TalksearchError as exc:
                    waiting.append((index, "", exc))
                    continue
                done = partial(report, index)
                waiting.append((index, digest, Outcome(existing, added=False) if audio is None else
                                pool.submit(self.hear, digest, audio, meta, done, hotwords)))
            while waiting:
                yield self._stored(items, *waiting.popleft())
        finally:  # an ingest abandoned (an error, Ctrl-C) starts no further file
            pool.shutdown(cancel_futures=True)

    def _stored(self, items: list[tuple[Path, Metadata, str | None]], index: int, digest: str,
                heard: Future | Outcome | TalksearchError) -> Outcome | TalksearchError:
        """What ``ingest_many`` gives for one file: its outcome once stored, or its error."""
        if not isinstance(heard, Future):
            return heard
        path, meta, name = items[index]
        try:
            return self.add_transcribed(digest, path, name, meta, *heard.result())
        except TalksearchError as exc:
            return exc

    def hear(self, digest: str, audio: AudioSource, meta: Metadata, progress: Callable[[float], None] | None = None,
             hotwords: str | None = None) -> tuple[Prepared, Diarization | None]:
        """Transcribe, tell speakers apart and prepare one file (``source``): all of ``ingest``
        before storing, and nothing that reads the library."""
        transcript = self.transcriber(audio, language=meta.language, translate=self.settings.ingest.translate,
                                      progress=progress, hotwords=hotwords)
        diarization = self.diarize(audio, transcript)
        return self.prepare(transcript, recording_id(digest)), diarization

    def diarize(self, audio: AudioSource, transcript: Transcript) -> Diarization | None:
        """Who speaks when (unless ``settings.ingest.diarize`` is off): each segment gets its speaker and
        segments are split where the speaker changes."""
        if not self.settings.ingest.diarize:
            return None
        diarization = self.diarizer(audio, speakers=self.settings.ingest.speakers or None)
        assign(transcript, diarization)
        return diarization

    def remember_voices(self, recording: str, diarization: Diarization) -> None:
        """Keep the recording's voices, each with the name of the closest named voice in the
        library when that one is close enough to be suggested (see ``suggest``)."""
        suggested = suggest(self.library.voice_registry(), diarization.voices)
        self.library.set_speakers(recording, diarization.voices, suggested)

    # The steps of ``ingest``, which a Ray driver runs around its workers (api/distributed.py).
    def known(self, path: Path) -> tuple[str, Recording | None]:
        """The file's content hash, and the recording already made from the same bytes (if any)."""
        digest = content_hash(path)
        return digest, self.library.by_hash(digest)

    def source(self, path: Path) -> AudioSource:
        """The media to transcribe, opened once the library is known to accept this embedding model."""
        self.library.check_model()
        return AudioSource(path, max_seconds=self.max_seconds)

    def prepare(self, transcript: Transcript, recording: str) -> Prepared:
        """Attach the English, chunk and embed: everything before storing that needs no library."""
        attach(transcript.segments, transcript.translation)
        chunks = chunk_transcript(transcript, recording, self.settings.chunking)
        return Prepared(transcript, chunks, embed_views(self.library.centering, chunks, transcript))

    def add_transcribed(self, digest: str, path: Path, name: str | None, meta: Metadata, prepared: Prepared,
                        diarization: Diarization | None = None) -> Outcome:
        """Store what was made of ``path``, with its voices; bytes that another ingest stored
        meanwhile are not stored twice."""
        existing = self.library.by_hash(digest)
        if existing is not None:
            return Outcome(existing, added=False)
        recording = self._recording(digest, path, name, prepared.transcript, meta, has_media=True)
        chunks = self._store(recording, prepared)
        self.library.remember("whisper_model", self.settings.whisper.model)
        if diarization is not None:
            self.remember_voices(recording.id, diarization)
        return Outcome(recording, added=True, chunks=chunks)

    def import_transcript(self, path: Path, media: Path | None = None, meta: Metadata | None = None,
                          translation: Path | None = None, names: Mapping[Path, str] | None = None) -> Outcome:
        """Add a recording from an existing SRT/VTT/JSON transcript, optionally tied to its media
        file (so clips can be played) and an English subtitle file on the same clock.
        ``names``: what a client called the files it uploaded (see ``_recording``)."""
        meta, names = meta or Metadata(), names or {}
        with self._as_sent(names):
            transcript = read_transcript(path, meta.language, translation, self.max_seconds)
            digest = content_hash(media or path)
            existing = self.library.by_hash(digest)
            if existing is not None:
                return Outcome(existing, added=False)
            if media is not None:  # decoded only now: a known file costs nothing, and the media must play
                transcript.duration = max(transcript.duration, load_audio(media, self.max_seconds).size / SAMPLE_RATE)
            self.library.check_model()
            recording = self._recording(digest, media or path, names.get(media or path), transcript, meta,
                                        has_media=media is not None)
            return Outcome(recording, added=True, chunks=self._store(recording, self.prepare(transcript, recording.id)))

    @contextmanager
    def _as_sent(self, names: Mapping[Path, str]) -> Iterator[None]:
        """Errors name uploaded files as the client did, and never show where the media folder is
        (they reach HTTP clients through job records)."""
        try:
            yield
        except TalksearchError as exc:
            raise type(exc)(client_names(str(exc), names).replace(f"{self.media_dir}{os.sep}", "")) from exc

    @staticmethod
    def _recording(digest: str, source: Path, name: str | None, transcript: Transcript, meta: Metadata,
                   has_media: bool) -> Recording:
        """``name``, given for an upload, is what the client called the file: the recording shows it
        as its source (and title, when none is given) instead of where the server keeps the file,
        which ``stored_name`` finds again."""
        shown = name or str(source.resolve())
        return Recording(
            id=recording_id(digest), title=meta.title or Path(shown).stem.replace("_", " "), source=shown,
            content_hash=digest, duration=round(transcript.duration, 3), language=transcript.language,
            added_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), has_media=has_media,
            event=meta.event, session=meta.session, speaker=meta.speaker, date=meta.date)

    def _store(self, recording: Recording, prepared: Prepared) -> int:
        self.library.add(recording, prepared.transcript, prepared.chunks, prepared.embedded)
        self.library.maintain()
        return len(prepared.chunks)

    # -- reading ----------------------------------------------------------------------------
    def search(self, request: SearchRequest) -> list[Hit]:
        """The same answer whichever front end asks: recordings named by id, id prefix or title;
        no hits (not an error) from an empty library."""
        if self.library.is_empty():
            return []
        chosen = request.filters.recordings
        filters = replace(request.filters, recordings=[self.resolve(r).id for r in chosen] if chosen else None)
        return self.library.search(request.query, request.k, filters, request.mode)

    def resolve(self, ref: str) -> Recording:
        """A recording by id, unique id prefix or exact title."""
        return self.library.resolve(ref)

    def recordings(self) -> list[Recording]:
        return self.library.recordings()

    def recording(self, ref: str) -> tuple[Recording, Transcript]:
        recording = self.resolve(ref)
        return recording, self.library.transcript(recording.id)

    def export(self, ref: str, fmt: str) -> str:
        """The transcript as SRT, VTT or JSON, each voice under its given name (or label)."""
        recording, transcript = self.recording(ref)
        names = self.library.speaker_names({recording.id})
        for segment in transcript.segments:
            if segment.speaker is not None:
                segment.speaker = names.get((recording.id, segment.speaker), segment.speaker)
        return write_transcript(transcript, fmt, {"recording_id": recording.id, "title": recording.title})

    def speakers(self, ref: str) -> tuple[Recording, list[Speaker]]:
        """A recording's voices with their talk time and a sample quote."""
        recording = self.resolve(ref)
        return recording, self.library.speakers(recording.id)

    def rename_speaker(self, ref: str, label: str, name: str | None) -> list[Speaker]:
        """Name one of a recording's voices (``label`` may also be its current name); None or an
        empty name takes the name away."""
        recording, voices = self.speakers(ref)
        match = [v for v in voices if label in (v.label, v.name)]
        if not match:
            known = ", ".join(v.label for v in voices) or "none: it was not diarized"
            raise SpeakerError(f"recording {recording.id} has no speaker {label!r} (speakers: {known})")
        name = " ".join((name or "").split()) or None
        self.library.rename_speaker(recording.id, match[0].label, name)
        return self.library.speakers(recording.id)

    @property
    def media_dir(self) -> Path:
        """Where the library keeps media it owns (uploads); deleting a recording removes its file there.
        Always under the library folder, also when the records live in PostgreSQL."""
        return (self.settings.library / "media").resolve()

    def _file(self, recording: Recording) -> Path:
        """The file a recording was added from: where it was for a path, in the media folder for an
        upload (whose source is only the name it was sent under)."""
        source = Path(recording.source)
        return source if source.is_absolute() else self.media_dir / stored_name(recording.content_hash, recording.source)

    def delete(self, ref: str) -> Recording:
        gone = self.library.delete(ref)
        path = self._file(gone)
        if path.parent == self.media_dir:  # files ingested from elsewhere belong to the user and stay
            path.unlink(missing_ok=True)
        return gone

    def edit(self, ref: str, changes: Metadata) -> Recording:
        """Set metadata after ingest; fields left None stay as they are."""
        return self.library.update(self.resolve(ref).id, changes)

    def by_id(self, recording_id: str) -> Recording | None:
        """Exact id only, None when there is none: is it (still) there?"""
        return self.library.recording(recording_id)

    def reindex(self) -> int:
        """Re-embed every chunk with the configured model; how many."""
        return self.library.reindex()

    def maintain(self) -> None:
        """Merge vector segments and train the approximate index when due."""
        self.library.maintain()

    @property
    def where(self) -> str:
        """The library, as messages name it (a URI without its password)."""
        return self.library.where

    def media_path(self, recording: Recording) -> Path | None:
        """The recording's own media file as the catalog holds it; None for a transcript-only
        import or a file that has gone."""
        if not recording.has_media:
            return None
        path = self._file(recording).resolve()
        return path if path.is_file() else None

    def is_empty(self) -> bool:
        """Nothing to search yet (cheap: never counts the library)."""
        return self.library.is_empty()

    def stats(self) -> dict[str, float]:
        """Recordings, chunks and seconds of audio in the library."""
        return self.library.counts()

    def check(self, repair: bool = False) -> list[Finding]:
        """What the library finds damaged or inconsistent (fixed first, with ``repair``), and
        recordings whose media file has gone, which nothing here can bring back."""
        findings = self.library.check(repair)
        findings += [Finding(f"recording {r.id} ({r.title}): its media file is gone", "")
                     for r in self.recordings() if r.has_media and self.media_path(r) is None]
        return findings


def stored_name(digest: str, filename: str) -> str:
    """The name of an upload in the media folder: its content hash and the suffix it was sent with."""
    return f"{digest}{Path(filename).suffix.lower()}"


def client_names(message: str, names: Mapping[Path, str]) -> str:
    """``message`` with the server path of each staged file replaced by the name its client gave it,
    so no answer over HTTP shows where the server keeps files."""
    for path, name in names.items():
        message = message.replace(str(path), name)
    return message


def media_files(paths: list[Path]) -> list[Path]:
    """Expand folders into the media files they hold (recursively, sorted); files pass as given."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            inside = sorted(p for p in path.rglob("*") if is_media_file(p))
            if not inside:
                raise MediaError(f"{path}: no media files in this folder")
            found += inside
        else:
            found.append(path)
    return found


__all__ = ["Talksearch", "media_files", "TalksearchError", "LibraryError"]
