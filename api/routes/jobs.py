"""Background jobs: uploads and imports being transcribed and indexed."""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Query

from ..access import reader
from ..schemas import JobInfo
from ..state import Backend, backend
from .common import AUTH, UNKNOWN, job_info, new_router

router = new_router()


@router.get("/jobs", response_model=list[JobInfo], tags=["jobs"], dependencies=[Depends(reader)], responses=AUTH)
def jobs(limit: Annotated[int, Query(ge=1, le=200)] = 20, b: Backend = Depends(backend)) -> list[dict]:
    return [job_info(job) for job in b.jobs.recent(limit)]


@router.get("/jobs/{job_id}", response_model=JobInfo, tags=["jobs"], dependencies=[Depends(reader)], responses=UNKNOWN)
def job(job_id: str, b: Backend = Depends(backend)) -> dict:
    found = b.jobs.get(job_id)
    if found is None:
        raise HTTPException(404, f"no job {job_id!r}")
    return job_info(found)
