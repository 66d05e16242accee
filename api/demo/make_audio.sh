#!/usr/bin/env bash
# Regenerate the synthetic demo talks from api/demo/talks.json:
#   - *.opus audio (Ogg Opus, 16 kHz mono, 24 kbit/s) for the en/ru talks,
#   - sentence_times / duration_s in talks.json,
#   - ko_digital_platform.srt and ko_digital_platform.en.srt.
# Output is deterministic (same tools + same texts -> byte-identical files).
#
# Needs: espeak-ng, festival (text2wave) + festvox-ru, sox, and a Python with
# numpy and PyAV (libopus).  Debian/Ubuntu:
#   apt-get install -y --no-install-recommends espeak-ng festival festvox-ru sox
#
# Usage: api/demo/make_audio.sh [--only TALK_ID ...] [--check]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$root/.venv/bin/python" ]]; then PYTHON="$root/.venv/bin/python"; else PYTHON=python3; fi
fi

if [[ " $* " != *" --check "* ]]; then
  for tool in espeak-ng text2wave sox; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install espeak-ng festival festvox-ru sox)" >&2; exit 2; }
  done
fi
"$PYTHON" -c "import av, numpy" || { echo "$PYTHON needs PyAV and numpy" >&2; exit 2; }

exec "$PYTHON" "$here/make_audio.py" "$@"
