"""What the route modules share: error responses, the recording id, JSON shapes, one-valued parameters."""
from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, Path as PathParam, Request, Response
from fastapi.exceptions import RequestValidationError

from ingest.records import Recording

from ..jobs import Job
from ..schemas import Problem
from ..uploads import form_body

AUTH = {401: {"model": Problem, "description": "no API key sent"},
        403: {"model": Problem, "description": "a wrong key, or (without a key configured) a client elsewhere or another site's page"}}
UNKNOWN = {**AUTH, 404: {"model": Problem}}
REFUSED = {**AUTH, 415: {"model": Problem, "description": "a file not named as its field asks, or one that cannot be read as such"},
           429: {"model": Problem, "description": "too many jobs are waiting; Retry-After says when to try again"}}


def root(request: Request) -> str:
    return request.scope.get("root_path", "").rstrip("/")


def recording_info(request: Request, recording: Recording) -> dict:
    media = f"{root(request)}/recordings/{recording.id}/media" if recording.has_media else None
    return {**asdict(recording), "media_url": media}


def job_info(job: Job) -> dict:
    return {k: v for k, v in asdict(job).items() if k != "files"}


def accepted(request: Request, response: Response, job: Job) -> dict:
    response.headers["Location"] = f"{root(request)}/jobs/{job.id}"
    return job_info(job)


def upload_form(accept: dict[str, frozenset[str]], required: str, what: str, texts: dict[str, str] | None = None) -> dict:
    """``form_body``, saying which file names each field takes (others are refused with 415, unread),
    with the endpoint's own text ``texts`` (name: description) beside the metadata."""
    extra = form_body({name: name == required for name in accept}, what)
    fields = extra["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
    for name, suffixes in accept.items():
        fields[name]["description"] = f"a file named *{', *'.join(sorted(suffixes))}"
    fields |= {name: {"type": "string", "description": about} for name, about in (texts or {}).items()}
    return extra


REPEATABLE = frozenset({"recording"})  # the query parameters that are lists


def single_values(request: Request) -> None:
    """A parameter that takes one value, given several (``?limit=x&limit=3``), is refused: taking
    the last one silently accepted a request the schema forbids (found by Schemathesis)."""
    repeated = sorted({key for key, _ in request.query_params.multi_items()
                       if key not in REPEATABLE and len(request.query_params.getlist(key)) > 1})
    if repeated:
        raise RequestValidationError([{"loc": ("query", key), "msg": "takes one value, given more than once",
                                       "type": "repeated"} for key in repeated])


def new_router() -> APIRouter:
    """A router for one area, with the answers and checks every route has."""
    return APIRouter(responses={400: {"model": Problem}, 413: {"model": Problem, "description": "a body over the limit"},
                                422: {"model": Problem}}, dependencies=[Depends(single_values)])
Id = Annotated[str, PathParam(description="recording id (see GET /recordings), a unique start of one, or a title; never a path")]
