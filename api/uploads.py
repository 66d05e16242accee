"""Receiving uploads: multipart bodies streamed into the library's media folder with size and
type limits enforced while reading, so a refused upload leaves nothing behind."""
from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from python_multipart import MultipartParser
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header

from core.errors import TalksearchError
from ingest.media import probe
from ingest.records import METADATA_FIELDS, Metadata
from ingest.subtitles import read_transcript

from .schemas import RecordingMetadata
from .service import client_names, stored_name

FIELD_LIMIT = 2000
MAX_FIELDS = 20


@dataclass
class Staged:
    """A file received into the library's media folder, named by its content hash."""

    path: Path
    filename: str
    created: bool


@dataclass
class _Part:
    """The multipart part being read."""

    name: str = ""
    headers: dict[bytes, bytes] = field(default_factory=dict)
    header_name: bytes = b""
    header_value: bytes = b""
    text: bytearray = field(default_factory=bytearray)
    skip: bool = False


class _Sink:
    """Writes one file part to a temporary file next to its final place, hashing as it goes."""

    def __init__(self, folder: Path, filename: str):
        self.folder, self.filename = folder, filename
        self.suffix = Path(filename).suffix.lower()
        self.temp = folder / f".incoming-{uuid.uuid4().hex}{self.suffix}"
        self.digest = hashlib.sha256()
        self.handle: BinaryIO = open(self.temp, "wb")

    def write(self, data: bytes) -> None:
        self.digest.update(data)
        self.handle.write(data)

    def finish(self) -> Staged:
        self.handle.close()
        final = self.folder / stored_name(self.digest.hexdigest(), self.filename)
        if final.exists():  # the same bytes were uploaded before
            self.temp.unlink()
            return Staged(final, self.filename, created=False)
        os.replace(self.temp, final)
        return Staged(final, self.filename, created=True)

    def discard(self) -> None:
        self.handle.close()
        self.temp.unlink(missing_ok=True)


class Intake:
    """A multipart body read as it arrives: file parts go straight to the library's media folder,
    text fields to memory. The API key, the declared size and each file's type are checked before
    the bytes are read, and the size limit while they are."""

    def __init__(self, folder: Path, accept: dict[str, frozenset[str]], limit_mb: int):
        self.folder, self.accept, self.limit_mb = folder, accept, limit_mb
        self.fields: dict[str, str] = {}
        self.files: dict[str, Staged] = {}
        self._part = _Part()
        self._sink: _Sink | None = None

    def _too_big(self) -> HTTPException:
        return HTTPException(413, f"upload larger than the server's limit of {self.limit_mb} MB (TALKSEARCH_MAX_UPLOAD_MB)")

    async def read(self, request: Request) -> "Intake":
        kind, params = parse_options_header(request.headers.get("content-type", ""))
        if kind != b"multipart/form-data" or b"boundary" not in params:
            raise HTTPException(415, "send the files as multipart/form-data")
        limit = self.limit_mb * 1024 * 1024
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise self._too_big()
        parser = MultipartParser(params[b"boundary"], {
            "on_part_begin": self._begin, "on_header_field": self._header_field, "on_header_value": self._header_value,
            "on_header_end": self._header_end, "on_headers_finished": self._headers_finished,
            "on_part_data": self._data, "on_part_end": self._end})
        received = 0
        try:
            async for chunk in request.stream():
                received += len(chunk)
                if received > limit:
                    raise self._too_big()
                parser.write(chunk)
            parser.finalize()
        except FormParserError as exc:
            self.discard()
            raise HTTPException(400, f"malformed multipart body: {exc}") from exc
        except BaseException:
            self.discard()
            raise
        return self

    def required(self, name: str) -> Staged:
        if name not in self.files:
            raise HTTPException(422, f"the form needs a file in the field {name!r}")
        return self.files[name]

    def discard(self) -> None:
        """Forget a refused upload: remove what this request wrote (never a file that was already there)."""
        if self._sink is not None:
            self._sink.discard()
        for staged in self.files.values():
            if staged.created:
                staged.path.unlink(missing_ok=True)

    # python-multipart callbacks
    def _begin(self) -> None:
        self._part = _Part()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._part.header_name += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._part.header_value += data[start:end]

    def _header_end(self) -> None:
        part = self._part
        part.headers[part.header_name.lower()] = part.header_value
        part.header_name = part.header_value = b""

    def _headers_finished(self) -> None:
        part = self._part
        _, options = parse_options_header(part.headers.get(b"content-disposition", b""))
        part.name = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" not in options:
            if len(self.fields) >= MAX_FIELDS:
                raise HTTPException(422, f"more than {MAX_FIELDS} form fields")
            return
        filename = Path(options[b"filename"].decode("utf-8", "replace").replace("\\", "/")).name
        if not filename:  # a browser sends an empty file part for an unused file input
            part.skip = True
            return
        if part.name not in self.accept or part.name in self.files:
            raise HTTPException(422, f"unexpected file in the form field {part.name!r}; expected {', '.join(self.accept)}")
        if Path(filename).suffix.lower() not in self.accept[part.name]:
            raise HTTPException(415, f"{filename}: unsupported file type for {part.name!r}; "
                                     f"expected one of {' '.join(sorted(self.accept[part.name]))}")
        self._sink = _Sink(self.folder, filename)

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._sink is not None:
            self._sink.write(data[start:end])
        elif not self._part.skip:
            self._part.text += data[start:end]
            if len(self._part.text) > FIELD_LIMIT:
                raise HTTPException(422, f"form field {self._part.name!r} is longer than {FIELD_LIMIT} bytes")

    def _end(self) -> None:
        if self._sink is not None:
            self.files[self._part.name] = self._sink.finish()
            self._sink = None
        elif not self._part.skip:
            self.fields[self._part.name] = self._part.text.decode("utf-8", "replace").strip()


def form_metadata(fields: dict[str, str]) -> Metadata:
    """The form's text fields, validated as the body of ``PATCH /recordings/{id}`` is."""
    try:
        given = RecordingMetadata.model_validate({name: fields[name] for name in METADATA_FIELDS if fields.get(name)})
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from None
    return given.metadata()


def _refuse_unreadable(check: Callable[[], object], names: dict[Path, str]) -> None:
    """Run an ingest check now and answer 415 with its reason, naming the files as the client did."""
    try:
        check()
    except TalksearchError as exc:
        raise HTTPException(415, client_names(str(exc), names)) from exc


def check_audio(path: Path, filename: str) -> None:
    """Refuse what cannot be read as audio now rather than in a job later: the checks every read
    makes (ingest.media.probe), decoding only the start."""
    _refuse_unreadable(lambda: probe(path), {path: filename})


def check_transcript(transcript: Staged, translation: Staged | None, language: str | None) -> None:
    _refuse_unreadable(lambda: read_transcript(transcript.path, language, translation.path if translation else None),
                       {s.path: s.filename for s in (transcript, translation) if s is not None})


def form_body(files: dict[str, bool], what: str) -> dict:
    """OpenAPI for a multipart body the endpoint streams itself (so /docs still shows the form)."""
    properties = {name: {"type": "string", "format": "binary"} for name in files}
    properties |= {name: {"type": "string"} for name in METADATA_FIELDS}
    properties["date"]["format"] = "date"
    required = [name for name, needed in files.items() if needed]
    return {"requestBody": {"required": True, "description": what, "content": {
        "multipart/form-data": {"schema": {"type": "object", "properties": properties, "required": required}}}}}


