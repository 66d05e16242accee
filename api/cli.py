"""The ``talksearch`` command line. Every error a user can cause ends in one line on stderr and a
non-zero exit; the library is left as it was."""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import asdict, fields
from pathlib import Path


from core.errors import TalksearchError
from index.library import SEARCH_MODES, SearchRequest
from index.ranking import SearchFilters
from ingest.records import METADATA_FIELDS, Metadata
from ingest.subtitles import FORMATS

from .config import Settings
from .render import as_json, console, mmss, print_hits, print_recording_line, print_recordings, print_speakers, print_transcript
from .service import Talksearch, media_files


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--library", help="library folder (default ./talksearch-library or $TALKSEARCH_LIBRARY)")
    parser.add_argument("--store", metavar="URI", help="keep the records in PostgreSQL (postgresql://…, or $TALKSEARCH_STORE); "
                        "uploaded media and job files stay in --library")
    parser.add_argument("--whisper-model", help="faster-whisper model name or path (default: base, assembled offline)")
    parser.add_argument("--embed-model", help="sentence-transformers model name or path (default: multilingual-e5-small)")
    parser.add_argument("--models-dir", help="where assembled models are cached")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what each stage does")


def _add_metadata(parser: argparse.ArgumentParser) -> None:
    for f in fields(Metadata):
        parser.add_argument(f"--{f.name}", help=f.metadata["help"])


def _add_ray(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ray", metavar="ADDRESS", help="transcribe on a Ray cluster: auto (the one running here), "
                        "local (start one) or the head's address (default $TALKSEARCH_RAY; none: in this process)")
    parser.add_argument("--ray-workers", type=int, metavar="N", help="Ray workers to start (default: one per CPU)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="talksearch", description="Search what was said in recorded talks, in any language.")
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("ingest", help="transcribe, translate and index media files or folders")
    p.add_argument("paths", nargs="+", type=Path)
    p.add_argument("--no-translate", action="store_true", help="skip the English rendering")
    p.add_argument("--no-diarize", action="store_true", help="skip telling speakers apart")
    p.add_argument("--speakers", type=int, metavar="N", help="the number of speakers (default: estimated)")
    p.add_argument("--hotwords", metavar="TERMS", help='names and terms the recordings hold, e.g. "Kazan, светофоры": '
                   "whisper is steered to spell them so (default $TALKSEARCH_HOTWORDS)")
    _add_ray(p)
    _add_metadata(p)

    p = commands.add_parser("import-transcript", help="add a recording from an SRT, WebVTT or JSON transcript")
    p.add_argument("file", type=Path)
    p.add_argument("--recording", type=Path, help="the media file the transcript belongs to (lets clips play)")
    p.add_argument("--translation", type=Path, help="English SRT/VTT on the same clock")
    _add_metadata(p)

    p = commands.add_parser("search", help="semantic search; prints the best clips")
    p.add_argument("query")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--lang", help="only hits in this spoken language")
    p.add_argument("--recording", action="append", help="only this recording (repeatable)")
    p.add_argument("--json", action="store_true", help="print hits as JSON")
    p.add_argument("--mode", choices=SEARCH_MODES, default="hybrid", help="ranking: lexical+semantic fusion (default), or one alone")
    for name in ("event", "session"):
        p.add_argument(f"--{name}", help=f"only recordings with this {name}")
    p.add_argument("--speaker", help="only what this speaker says (a named voice, or a recording's speaker)")
    p.add_argument("--from", dest="date_from", metavar="DATE", help="only recordings dated on or after (YYYY-MM-DD)")
    p.add_argument("--to", dest="date_to", metavar="DATE", help="only recordings dated on or before (YYYY-MM-DD)")

    p = commands.add_parser("edit", help="change a recording's title, language, event, session, speaker or date")
    p.add_argument("recording")
    _add_metadata(p)

    p = commands.add_parser("eval", help="recall@k, MRR and nDCG of a labelled query set, per ranking mode")
    p.add_argument("queries", type=Path, help="JSONL file of labelled queries")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--modes", default=",".join(SEARCH_MODES), help="comma-separated ranking modes to compare")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")

    p = commands.add_parser("list", help="recordings in the library")
    p.add_argument("--json", action="store_true")
    p = commands.add_parser("show", help="a recording's transcript with timestamps")
    p.add_argument("recording")
    p = commands.add_parser("export", help="write a recording's transcript")
    p.add_argument("recording")
    p.add_argument("--format", choices=FORMATS, default="srt")
    p.add_argument("--output", type=Path, help="file to write (default: stdout)")
    p = commands.add_parser("speakers", help="a recording's speakers, with talk time and a sample quote; --rename names one")
    p.add_argument("recording")
    p.add_argument("--rename", nargs=2, metavar=("SPEAKER", "NAME"), help='e.g. --rename SPEAKER_2 "Elena Ivanova" ("" unnames)')
    p.add_argument("--json", action="store_true")
    p = commands.add_parser("delete", help="remove a recording from catalog and index")
    p.add_argument("recording")
    commands.add_parser("reindex", help="re-embed every chunk with --embed-model")
    p = commands.add_parser("check", help="find damaged or inconsistent library files (exit 1 if any)")
    p.add_argument("--repair", action="store_true", help="fix what can be fixed: re-embed lost vectors, rebuild indexes")
    commands.add_parser("models", help="assemble and load the models (first-run set-up)")
    p = commands.add_parser("migrate", help="copy a library folder into PostgreSQL, vectors included (no re-embedding)")
    p.add_argument("--from", dest="source", type=Path, required=True, metavar="DIR", help="the library folder to copy")
    p.add_argument("--to", dest="target", required=True, metavar="URI", help="an empty PostgreSQL database: postgresql://…")
    p = commands.add_parser("demo", help="build the demo library and run example searches")
    p.add_argument("--fresh", action="store_true", help="delete the demo library first")
    p = commands.add_parser("serve", help="run the HTTP API and web page")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    _add_ray(p)
    for sub in commands.choices.values():
        _add_common(sub)
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings.from_env(
        library=args.library, store=args.store, whisper_model=args.whisper_model, embed_model=args.embed_model, models_dir=args.models_dir,
        translate=False if getattr(args, "no_translate", False) else None,
        diarize=False if getattr(args, "no_diarize", False) else None, speakers=getattr(args, "speakers", None),
        hotwords=getattr(args, "hotwords", None),
        host=getattr(args, "host", None), port=getattr(args, "port", None),
        ray=getattr(args, "ray", None), ray_workers=getattr(args, "ray_workers", None))


def metadata_from(args: argparse.Namespace) -> Metadata:
    return Metadata(**{name: getattr(args, name) for name in METADATA_FIELDS})


def request_from(args: argparse.Namespace) -> SearchRequest:
    return SearchRequest(args.query, args.k, args.mode, SearchFilters(
        language=args.lang, recordings=args.recording, event=args.event, session=args.session, speaker=args.speaker,
        date_from=args.date_from, date_to=args.date_to))


# -- commands without a library ----------------------------------------------------------------
def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from .server import serve

    return serve(settings)


def _demo(settings: Settings, args: argparse.Namespace) -> int:
    from .demo_library import run_demo

    return run_demo(settings, fresh=args.fresh, explicit_library=args.library is not None)


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    from index.store import StoreError, is_server, shown

    if not is_server(args.target):
        raise StoreError(f"--to takes a postgresql:// URI, not {args.target!r}")
    from index.pgstore import migrate

    started = time.perf_counter()
    copied = migrate(args.source, args.target)
    console.print(f"copied {copied['recordings']} recordings, {copied['chunks']} chunks and {copied['vectors']} vectors "
                  f"from {args.source} to {shown(args.target)} in {time.perf_counter() - started:.1f} s; counts verified",
                  highlight=False)
    return 0


# -- commands on a library -----------------------------------------------------------------------
def _eval(app: Talksearch, args: argparse.Namespace) -> int:
    from evaluation.runner import run_eval

    return run_eval(app, args.queries, args.k, args.modes, None if args.json else console)


def _search(app: Talksearch, args: argparse.Namespace) -> int:
    started = time.perf_counter()
    hits = app.search(request_from(args))
    if args.json:
        as_json(hits)
    else:
        print_hits(hits, time.perf_counter() - started)
    if not hits and app.is_empty():
        print(f"talksearch: library {app.where} is empty: ingest or import recordings first", file=sys.stderr)
    return 0


def _import(app: Talksearch, args: argparse.Namespace) -> int:
    _report(app.import_transcript(args.file, args.recording, metadata_from(args), args.translation), args.file)
    return 0


def _list(app: Talksearch, args: argparse.Namespace) -> int:
    recordings = app.recordings()
    as_json(recordings) if args.json else print_recordings(recordings)
    return 0


def _show(app: Talksearch, args: argparse.Namespace) -> int:
    recording, transcript = app.recording(args.recording)
    print_transcript(recording, transcript, {v.label: v.shown for v in app.speakers(recording.id)[1]})
    return 0


def _export(app: Talksearch, args: argparse.Namespace) -> int:
    text = app.export(args.recording, args.format)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def _edit(app: Talksearch, args: argparse.Namespace) -> int:
    print_recording_line(app.edit(args.recording, metadata_from(args)))
    return 0


def _speakers(app: Talksearch, args: argparse.Namespace) -> int:
    if args.rename:
        app.rename_speaker(args.recording, *args.rename)
    recording, voices = app.speakers(args.recording)
    if args.json:
        print(json.dumps([{**asdict(v), "shown": v.shown} for v in voices], ensure_ascii=False, indent=1))
    else:
        print_speakers(recording, voices)
    return 0


def _delete(app: Talksearch, args: argparse.Namespace) -> int:
    gone = app.delete(args.recording)
    console.print(f"deleted {gone.id} ({gone.title})")
    return 0


def _reindex(app: Talksearch, args: argparse.Namespace) -> int:
    console.print(f"re-embedded {app.reindex()} chunks with {app.embedder.model_name}")
    return 0


def _check(app: Talksearch, args: argparse.Namespace) -> int:
    """fsck-like: each finding and what repair does about it; exit 1 while anything is left."""
    findings = app.check(args.repair)
    for finding in findings:
        action = ("repairing: " if args.repair else "--repair would ") + finding.repair if finding.repair else "cannot be repaired here"
        console.print(f"{finding.problem} [dim]({action})[/dim]", highlight=False)
    left = app.check() if args.repair and findings else findings
    stats = app.stats()
    console.print(f"{app.where}: {stats['recordings']} recordings, {stats['chunks']} chunks; "
                  + ("no problems found" if not left else f"{len(left)} problems left"), highlight=False)
    return 1 if left else 0


def _models(app: Talksearch, args: argparse.Namespace) -> int:
    started = time.perf_counter()
    app.warm_up()
    settings = app.settings
    console.print(f"whisper {settings.whisper.model} and {settings.embedder.model} ready in {settings.models_dir} "
                  f"({time.perf_counter() - started:.1f} s)")
    return 0


def _report(outcome, path: Path) -> None:
    if outcome.added:
        console.print(f"added {outcome.recording.id} {outcome.recording.title!r} [{outcome.recording.language}] "
                      f"{mmss(outcome.recording.duration)}, {outcome.chunks} chunks", highlight=False)
    else:
        console.print(f"{path}: already in the library as {outcome.recording.id} ({outcome.recording.title}); nothing to do",
                      highlight=False)


def _ingest(app: Talksearch, args: argparse.Namespace) -> int:
    files = media_files(args.paths)
    meta = metadata_from(args)
    if app.settings.ray.address or len(files) > 1:
        try:
            return _ingest_many(app, files, meta if len(files) == 1 else Metadata(**{**asdict(meta), "title": None}))
        finally:
            app.close()
    [path] = files
    started = time.perf_counter()
    with _progress_bar(path.name[:30]) as bar:
        def progress(fraction: float) -> None:
            bar.n = round(100 * min(1.0, fraction))
            bar.refresh()
        outcome = app.ingest(path, meta, progress)
    _report(outcome, path)
    if outcome.added:
        elapsed = time.perf_counter() - started
        console.print(f"[dim]  {elapsed:.1f} s, real-time factor {elapsed / max(outcome.recording.duration, 1e-6):.3f}[/dim]")
    return 0


def _progress_bar(what: str):
    """A percentage bar on stderr, none when piped (tqdm is imported here: 50 ms a search never needs)."""
    from tqdm import tqdm

    return tqdm(total=100, desc=what, unit="%", bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}",
                file=sys.stderr, leave=False, disable=None)


def _ingest_many(app: Talksearch, files: list[Path], meta: Metadata) -> int:
    """Files heard several at once (here, or spread over the Ray cluster's workers) and stored
    here in order, one progress bar for all."""
    started = time.perf_counter()
    where = app.cluster.describe() if app.settings.ray.address else f"this machine, {max(1, app.settings.whisper.parallel)} at once"
    console.print(f"[dim]{len(files)} files on {where}[/dim]", highlight=False)
    shares = [0.0] * len(files)
    failures, seconds = 0, 0.0
    with _progress_bar("transcribing") as bar:
        def progress(index: int, fraction: float) -> None:
            shares[index] = fraction
            bar.n = round(100 * sum(shares) / len(files))
            bar.refresh()

        for index, (path, result) in enumerate(zip(files, app.ingest_many([(p, meta, None) for p in files], progress))):
            progress(index, 1.0)
            with bar.external_write_mode(file=sys.stderr):
                if isinstance(result, TalksearchError):
                    if len(files) == 1:
                        raise result
                    failures += 1
                    print(f"talksearch: error: {result}", file=sys.stderr)
                    continue
                _report(result, path)
            seconds += result.recording.duration if result.added else 0.0
    elapsed = time.perf_counter() - started
    console.print(f"[dim]{elapsed:.1f} s for {mmss(seconds)} of new audio, real-time factor "
                  f"{elapsed / max(seconds, 1e-6):.3f}[/dim]", highlight=False)
    return 1 if failures else 0


COMMANDS_WITHOUT_LIBRARY = {"serve": _serve, "demo": _demo, "migrate": _migrate}
COMMANDS = {"ingest": _ingest, "import-transcript": _import, "search": _search, "eval": _eval, "list": _list, "show": _show,
            "export": _export, "edit": _edit, "speakers": _speakers, "delete": _delete, "reindex": _reindex,
            "check": _check, "models": _models}


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if args.command in COMMANDS_WITHOUT_LIBRARY:
        return COMMANDS_WITHOUT_LIBRARY[args.command](settings, args)
    return COMMANDS[args.command](Talksearch(settings), args)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return run(args)
    except TalksearchError as exc:
        print(f"talksearch: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a file that cannot be read or written: say which, not a traceback
        where = f": {exc.filename}" if exc.filename else ""
        print(f"talksearch: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("talksearch: interrupted; the library is unchanged by the unfinished file", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
