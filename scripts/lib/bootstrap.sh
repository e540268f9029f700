# shellcheck shell=bash
# Sourced by the scripts in scripts/: installs what the project needs on a
# fresh machine, and does nothing when it is already there.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${STATS_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"

log() { printf '%s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# ensure_debian_package COMMAND [PACKAGE]: install PACKAGE (default: COMMAND) when COMMAND is missing.
ensure_debian_package() {
    local command="$1" package="${2:-$1}"
    command -v "$command" >/dev/null 2>&1 && return 0
    log "installing $package from Debian's packages"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$package" >/dev/null
}

ensure_redis_server() {
    command -v redis-server >/dev/null 2>&1 && return 0
    ensure_debian_package redis-server
    # The package starts a system-wide server; the project runs its own.
    as_root systemctl disable --now redis-server >/dev/null 2>&1 || true
}

# ensure_venv REQUIREMENTS_FILE: a virtualenv with exactly that file installed.
ensure_venv() {
    local requirements="$ROOT/$1"
    local stamp digest
    stamp="$VENV/.installed-$(basename "$1")"
    digest="$(cat "$ROOT"/requirements*.txt | sha256sum | cut -d' ' -f1)"
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating virtualenv $VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    if [ "$(cat "$stamp" 2>/dev/null)" != "$digest" ]; then
        log "installing $1"
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$requirements"
        printf '%s' "$digest" >"$stamp"
    fi
}
