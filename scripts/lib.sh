# Shared setup for scripts/test and scripts/demo. Source it; don't run it.
#
# Everything here is idempotent: a second run finds the virtual environment,
# Chromium and the services already in place and only checks them.

SB_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SB_VENV="$SB_ROOT/.venv"
SB_CHROMIUM="${CHROMIUM_PATH:-/usr/bin/chromium}"
SB_APT_UPDATED=""
SB_SERVICES_DIR=""

sb_log() {
    printf '==> %s\n' "$*" >&2
}

sb_die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

sb_is_root() {
    [ "$(id -u)" -eq 0 ]
}

# Install Debian packages, or explain what to install when we can't.
sb_apt_install() {
    if ! sb_is_root || ! command -v apt-get >/dev/null 2>&1; then
        sb_die "missing $*: install it (e.g. 'sudo apt-get install $*') and rerun"
    fi

    # Another apt run may hold the lock (an image still being provisioned);
    # wait for it rather than fail.
    local apt=(apt-get -o DPkg::Lock::Timeout=600 -q)
    if [ -z "$SB_APT_UPDATED" ]; then
        sb_log "apt-get update"
        "${apt[@]}" update >&2 || sb_die "apt-get update failed"
        SB_APT_UPDATED=1
    fi
    sb_log "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y \
        --no-install-recommends "$@" >&2 || sb_die "apt-get install $* failed"
}

# The newest python3 on PATH that is at least 3.11.
sb_find_python() {
    local candidate
    for candidate in python3 python3.13 python3.12 python3.11; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
                2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

sb_create_venv() {
    local python="$1"
    rm -rf "$SB_VENV"
    "$python" -m venv "$SB_VENV" >&2 2>/dev/null && return 0

    # Debian splits venv (and ensurepip) out of the interpreter package.
    rm -rf "$SB_VENV"
    sb_log "python -m venv failed; installing python3-venv"
    sb_apt_install python3-venv
    "$python" -m venv "$SB_VENV" >&2 || sb_die "cannot create $SB_VENV"
}

# Create .venv when missing or broken, and install the project into it.
# Reinstalls only when pyproject.toml changed since the last install.
sb_setup_venv() {
    if ! "$SB_VENV/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        2>/dev/null; then
        local python
        python="$(sb_find_python)" || sb_die "Python 3.11 or newer not found on PATH"
        sb_log "creating $SB_VENV with $python"
        sb_create_venv "$python"
    fi

    local stamp="$SB_VENV/.switchboard-installed" digest
    digest="$(sha256sum "$SB_ROOT/pyproject.toml" | cut -d' ' -f1)"
    if [ "$(cat "$stamp" 2>/dev/null)" = "$digest" ] &&
        [ -x "$SB_VENV/bin/switchboard" ]; then
        return 0
    fi
    sb_log "pip install -e '.[test]'"
    "$SB_VENV/bin/python" -m pip install -q --disable-pip-version-check \
        -e "$SB_ROOT[test]" >&2 || sb_die "pip install -e '.[test]' failed"
    printf '%s\n' "$digest" >"$stamp"
}

sb_ensure_chromium() {
    if [ ! -x "$SB_CHROMIUM" ]; then
        [ "$SB_CHROMIUM" = /usr/bin/chromium ] ||
            sb_die "CHROMIUM_PATH=$SB_CHROMIUM is not an executable"
        sb_apt_install chromium
    fi
    [ -x "$SB_CHROMIUM" ] || sb_die "Chromium not found at $SB_CHROMIUM"
    export CHROMIUM_PATH="$SB_CHROMIUM"
}

# The cluster tests run two app servers behind a real nginx.
sb_ensure_nginx() {
    if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
        sb_apt_install nginx
    fi
    command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] ||
        sb_die "nginx not found: install it (apt-get install nginx) and rerun"
}

sb_services_down() {
    [ -n "$SB_SERVICES_DIR" ] || return 0
    "$SB_VENV/bin/python" "$SB_ROOT/scripts/services.py" down "$SB_SERVICES_DIR" ||
        sb_log "could not stop the services in $SB_SERVICES_DIR"
    rm -rf "$SB_SERVICES_DIR"
    SB_SERVICES_DIR=""
}

# Export REDIS_URL and DATABASE_URL for reachable servers, starting
# throwaway ones when needed. The caller must have run sb_trap_exit so that
# they are stopped however the script ends.
sb_services_up() {
    SB_SERVICES_DIR="$(mktemp -d "${TMPDIR:-/tmp}/switchboard-services.XXXXXX")"
    local exports
    exports="$("$SB_VENV/bin/python" "$SB_ROOT/scripts/services.py" up \
        "$SB_SERVICES_DIR")" ||
        sb_die "no Redis and PostgreSQL for the tests (see above)"
    eval "$exports"
    sb_log "REDIS_URL=$REDIS_URL"
    sb_log "DATABASE_URL=$DATABASE_URL"
}

# Stop throwaway services on every way out, Ctrl-C and kill included.
sb_trap_exit() {
    trap sb_services_down EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}
