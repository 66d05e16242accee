#!/usr/bin/env bash
# talksearch: set-up and everyday tasks on a fresh machine.
#   ./run.sh demo    create .venv, install pinned dependencies, assemble the offline models,
#                    build the demo library and run example searches
#   ./run.sh test    the same set-up plus test-only system packages, then the whole test suite
#   ./run.sh serve   set-up, then the HTTP API and web page on http://127.0.0.1:8000
set -euo pipefail
cd "$(dirname "$0")"
VENV="${TALKSEARCH_VENV:-.venv}"
PY="$VENV/bin/python"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

system_packages() {
    # Speech synthesis makes test audio; chromium and a Korean font drive the page tests.
    local wanted=(espeak-ng festival festvox-ru chromium fonts-nanum sox) missing=()
    for pkg in "${wanted[@]}"; do dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg"); done
    [ ${#missing[@]} -eq 0 ] && return
    say "installing system packages: ${missing[*]}"
    local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

python_env() {
    [ -x "$PY" ] || { say "creating $VENV"; python3 -m venv "$VENV"; }
    local stamp="$VENV/.talksearch-installed" want
    want="$(sha256sum pyproject.toml | cut -c1-16)"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        say "installing dependencies (torch pinned to the CPU build)"
        "$PY" -m pip install -q --upgrade pip
        # Pinned on its own first: an unpinned torch would pull a multi-GB CUDA build.
        "$PY" -m pip install -q "torch==2.13.0"
        "$PY" -m pip install -q -e ".[test]"
        # Without its declared deps (see pyproject.toml): they are listed there in installable form.
        "$PY" -m pip install -q --no-deps "resemblyzer==0.1.4"
        echo "$want" > "$stamp"
    fi
}

models() {
    say "assembling models (whisper base, multilingual-e5-small)"
    "$VENV/bin/talksearch" models
}

case "${1:-demo}" in
    demo)  python_env; models; say "building the demo library"; "$VENV/bin/talksearch" demo "${@:2}" ;;
    test)  system_packages; python_env; models; say "running tests"; "$PY" -m pytest "${@:2}" ;;
    serve) python_env; models; "$VENV/bin/talksearch" serve "${@:2}" ;;
    *)     echo "usage: ./run.sh demo|test|serve [args]" >&2; exit 2 ;;
esac
