"""One metadata field set: the record, what may be edited, the HTTP schema and the CLI's flags agree."""
from __future__ import annotations

from dataclasses import fields

import pytest

from api.cli import build_parser, metadata_from
from api.schemas import RecordingMetadata
from core.errors import UserError
from index.catalog import Catalog
from ingest.records import METADATA_FIELDS, Metadata, Recording


def test_every_front_end_takes_the_same_metadata_fields():
    assert set(METADATA_FIELDS) <= {f.name for f in fields(Recording)}
    assert Catalog.EDITABLE == METADATA_FIELDS
    assert tuple(RecordingMetadata.model_fields) == METADATA_FIELDS
    flags = [arg for name in METADATA_FIELDS for arg in (f"--{name}", f"value of {name}")]
    args = build_parser().parse_args(["edit", "rec", *flags[:-1], "2026-11-26"])
    assert metadata_from(args) == Metadata(*(f"value of {name}" for name in METADATA_FIELDS[:-1]), "2026-11-26")


def test_the_http_schema_keeps_the_field_rules():
    assert RecordingMetadata.model_validate({"title": "T", "date": "2026-11-26"}).metadata() == Metadata(title="T", date="2026-11-26")
    for wrong in ({"title": ""}, {"language": "Korean"}, {"date": "26.11.2026"}, {"venue": "x"}):
        with pytest.raises(ValueError):
            RecordingMetadata.model_validate(wrong)


def test_a_wrong_date_is_a_user_error():
    with pytest.raises(UserError, match="YYYY-MM-DD"):
        Metadata(date="26/11/2026")
