"""Searching what was said."""
from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import Depends, Query, Request

from ..access import reader
from ..schemas import SearchBody, SearchHit, SearchQuery
from ..state import Backend, backend
from .common import UNKNOWN, new_router, root

router = new_router()


def _search(request: Request, b: Backend, query: SearchQuery) -> list[dict]:
    hits = b.service.search(query.request())
    playable = {rid: b.service.by_id(rid) for rid in {h.recording_id for h in hits}}
    out = []
    for hit in hits:
        base = f"{root(request)}/recordings/{hit.recording_id}"
        has_media = playable[hit.recording_id] is not None and playable[hit.recording_id].has_media
        out.append({**asdict(hit),
                    "clip_url": f"{base}/clip?start={hit.start:g}&end={hit.end:g}&format=ogg" if has_media else None,
                    "media_url": f"{base}/media#t={hit.start:g},{hit.end:g}" if has_media else None})
    return out


@router.get("/search", response_model=list[SearchHit], tags=["search"], dependencies=[Depends(reader)], responses=UNKNOWN)
def search(request: Request, query: Annotated[SearchQuery, Query()], b: Backend = Depends(backend)) -> list[dict]:
    """Search what was said, in any language; a query in double quotes finds that exact phrase.
    ``from``/``to`` keep recordings dated within those days."""
    return _search(request, b, query)


@router.post("/search", response_model=list[SearchHit], tags=["search"], dependencies=[Depends(reader)], responses=UNKNOWN)
def search_body(request: Request, query: SearchBody, b: Backend = Depends(backend)) -> list[dict]:
    return _search(request, b, query)
