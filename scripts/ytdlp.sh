#!/usr/bin/env bash
# Move the downloader's pinned yt-dlp forward or back (feature D8).
# Run `scripts/ytdlp.sh --help` for the commands; `make ytdlp-upgrade` and
# `make ytdlp-rollback` call it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYPROJECT_REL="services/downloader/pyproject.toml"
LOCK_REL="uv.lock"
PYPROJECT="$ROOT/$PYPROJECT_REL"
LOCK="$ROOT/$LOCK_REL"
HISTORY="${YTDLP_HISTORY:-$ROOT/var/ytdlp-previous}"
HISTORY_MAX=10
PYTHON="${PYTHON:-python3}"

EXIT_FAILED=1
EXIT_USAGE=2
EXIT_REFUSED=3

usage() {
    cat <<'EOF'
Usage: scripts/ytdlp.sh COMMAND [OPTIONS]

Move the yt-dlp version the downloader is pinned to ("yt-dlp==X" in
services/downloader/pyproject.toml, locked in uv.lock).

Commands:
  current                     print the pinned, locked and installed versions and
                              the version a rollback would return to
  upgrade [VERSION] [--force] pin VERSION (default: the newest release on the
                              package index), relock, sync; refuses a VERSION that
                              is not newer than the pin unless --force is given
  rollback                    go back to the version pinned before the last
                              upgrade (taken off the history)

Options:
  --dry-run   print what would be done and change nothing (no file, no lock, no
              environment); with an explicit VERSION it needs no network
  --force     upgrade even to an older or the same version
  -h, --help  show this help

Upgrade and rollback:
  1. save the current pin in var/ytdlp-previous (upgrade only; one version a
     line, the last 10 kept; YTDLP_HISTORY overrides the path)
  2. rewrite the pin in services/downloader/pyproject.toml
  3. uv lock --upgrade-package yt-dlp
  4. uv sync --frozen
If the lock or the sync fails, pyproject.toml and uv.lock are restored.
Then run the downloader tests and commit services/downloader/pyproject.toml
and uv.lock.

Exit status: 0 done (or planned, with --dry-run); 1 failed (files restored);
2 usage error; 3 refused (version not newer, nothing to roll back).
EOF
}

say() { printf '%s\n' "$*"; }
die() { # code message...
    local code=$1
    shift
    printf 'ytdlp.sh: %s\n' "$*" >&2
    exit "$code"
}
usage_error() {
    printf 'ytdlp.sh: %s\n' "$*" >&2
    printf "Try 'scripts/ytdlp.sh --help'.\n" >&2
    exit "$EXIT_USAGE"
}

if command -v uv >/dev/null 2>&1; then
    UV=(uv)
else
    UV=("$PYTHON" -m uv)
fi

# --- versions ---------------------------------------------------------------

valid_version() { [[ $1 =~ ^[0-9]+(\.[0-9]+)*$ ]]; }

# 2024.08.06 and 2024.8.6 are the same release (PEP 440 drops leading zeros).
normalize() {
    local IFS=. out="" part
    local -a parts
    read -r -a parts <<<"$1"
    for part in "${parts[@]}"; do
        out+="${out:+.}$((10#$part))"
    done
    printf '%s\n' "$out"
}

# True when version $1 is strictly newer than version $2.
newer_than() {
    local a b
    a=$(normalize "$1")
    b=$(normalize "$2")
    [ "$a" != "$b" ] && [ "$(printf '%s\n%s\n' "$a" "$b" | sort -V | tail -n 1)" = "$a" ]
}

same_version() { [ "$(normalize "$1")" = "$(normalize "$2")" ]; }

pinned_version() {
    [ -f "$PYPROJECT" ] || die "$EXIT_FAILED" "$PYPROJECT_REL not found"
    local pins
    pins=$(grep -oE '"yt-dlp==[^"]+"' "$PYPROJECT" || true)
    if [ -z "$pins" ]; then
        die "$EXIT_FAILED" "no \"yt-dlp==<version>\" pin in $PYPROJECT_REL"
    fi
    if [ "$(printf '%s\n' "$pins" | wc -l)" -ne 1 ]; then
        die "$EXIT_FAILED" "more than one yt-dlp pin in $PYPROJECT_REL"
    fi
    pins=${pins#\"yt-dlp==}
    printf '%s\n' "${pins%\"}"
}

locked_version() {
    [ -f "$LOCK" ] || return 0
    awk '/^name = "yt-dlp"$/ { getline; if ($1 == "version") { gsub(/"/, "", $3); print $3 }; exit }' "$LOCK"
}

installed_version() {
    local python="$ROOT/.venv/bin/python"
    [ -x "$python" ] || return 0
    "$python" -c 'from yt_dlp.version import __version__; print(__version__)' 2>/dev/null || true
}

newest_release() {
    local out
    out=$("$PYTHON" -m pip index versions yt-dlp 2>/dev/null) \
        || die "$EXIT_FAILED" "could not ask the package index for yt-dlp releases; pass VERSION"
    out=$(printf '%s\n' "$out" | sed -nE 's/^yt-dlp \(([^)]+)\).*/\1/p' | head -n 1)
    [ -n "$out" ] || die "$EXIT_FAILED" "could not read the newest yt-dlp release; pass VERSION"
    printf '%s\n' "$out"
}

previous_version() {
    [ -s "$HISTORY" ] || return 0
    grep -v '^[[:space:]]*$' "$HISTORY" | tail -n 1 || true
}

# --- changes ----------------------------------------------------------------

BACKUP_DIR=""
cleanup() {
    if [ -n "$BACKUP_DIR" ]; then
        rm -rf "$BACKUP_DIR"
    fi
}
trap cleanup EXIT

restore() {
    say "restoring $PYPROJECT_REL and $LOCK_REL" >&2
    cp "$BACKUP_DIR/pyproject.toml" "$PYPROJECT"
    cp "$BACKUP_DIR/uv.lock" "$LOCK"
    (cd "$ROOT" && "${UV[@]}" sync --frozen --quiet) \
        || say "ytdlp.sh: re-syncing the environment failed too; run 'uv sync --frozen'" >&2
}

set_pin() {
    local version=$1
    sed -E -i "s/\"yt-dlp==[^\"]+\"/\"yt-dlp==${version}\"/" "$PYPROJECT"
    grep -qF "\"yt-dlp==${version}\"" "$PYPROJECT" \
        || die "$EXIT_FAILED" "could not rewrite the pin in $PYPROJECT_REL"
}

# Rewrite the pin, relock, sync; restore both files if anything fails.
apply_version() {
    local version=$1
    BACKUP_DIR=$(mktemp -d)
    cp "$PYPROJECT" "$BACKUP_DIR/pyproject.toml"
    cp "$LOCK" "$BACKUP_DIR/uv.lock"

    set_pin "$version"
    say "+ ${UV[*]} lock --upgrade-package yt-dlp"
    if ! (cd "$ROOT" && "${UV[@]}" lock --upgrade-package yt-dlp); then
        restore
        die "$EXIT_FAILED" "uv lock failed for yt-dlp==$version (does that release exist?)"
    fi
    local locked
    locked=$(locked_version)
    if [ -z "$locked" ] || ! same_version "$locked" "$version"; then
        restore
        die "$EXIT_FAILED" "uv.lock has yt-dlp ${locked:-<none>}, expected $version"
    fi
    say "+ ${UV[*]} sync --frozen"
    if ! (cd "$ROOT" && "${UV[@]}" sync --frozen); then
        restore
        die "$EXIT_FAILED" "uv sync failed"
    fi
}

push_history() {
    local version=$1 tmp
    mkdir -p "$(dirname "$HISTORY")"
    tmp=$(mktemp)
    { [ -f "$HISTORY" ] && grep -v '^[[:space:]]*$' "$HISTORY" || true; printf '%s\n' "$version"; } \
        | tail -n "$HISTORY_MAX" >"$tmp"
    mv "$tmp" "$HISTORY"
}

pop_history() {
    local tmp
    tmp=$(mktemp)
    grep -v '^[[:space:]]*$' "$HISTORY" | sed '$d' >"$tmp" || true
    mv "$tmp" "$HISTORY"
}

history_rel() {
    case "$HISTORY" in
        "$ROOT"/*) printf '%s\n' "${HISTORY#"$ROOT"/}" ;;
        *) printf '%s\n' "$HISTORY" ;;
    esac
}

print_plan() { # action old new
    local action=$1 old=$2 new=$3 step=1
    say "would:"
    if [ "$action" = upgrade ]; then
        say "  $step. append $old to $(history_rel) (the last $HISTORY_MAX kept)"
    else
        say "  $step. take $new off $(history_rel)"
    fi
    step=$((step + 1))
    say "  $step. set \"yt-dlp==$new\" in $PYPROJECT_REL (now \"yt-dlp==$old\")"
    step=$((step + 1))
    say "  $step. run: ${UV[*]} lock --upgrade-package yt-dlp"
    step=$((step + 1))
    say "  $step. run: ${UV[*]} sync --frozen"
    say "dry run: nothing was changed"
}

remind() {
    say ""
    say "Next: run the downloader tests"
    say "    uv run pytest tests/unit/downloader tests/integration/downloader"
    say "and commit the new pin:"
    say "    git add $PYPROJECT_REL $LOCK_REL && git commit -m 'yt-dlp $1'"
}

# --- commands ---------------------------------------------------------------

cmd_current() {
    local pinned locked installed previous
    pinned=$(pinned_version)
    locked=$(locked_version)
    installed=$(installed_version)
    previous=$(previous_version)
    say "pinned:    $pinned ($PYPROJECT_REL)"
    say "locked:    ${locked:-none} ($LOCK_REL)"
    say "installed: ${installed:-none} (.venv)"
    say "previous:  ${previous:-none} (rollback target, $(history_rel))"
    if [ -n "$locked" ] && ! same_version "$locked" "$pinned"; then
        say "warning: uv.lock does not match the pin; run 'uv lock'" >&2
    fi
}

cmd_upgrade() {
    local target=$1 force=$2 dry_run=$3 old
    old=$(pinned_version)
    if [ -z "$target" ]; then
        say "looking up the newest yt-dlp release..."
        target=$(newest_release)
    fi
    valid_version "$target" || usage_error "not a release version: '$target' (expected e.g. 2026.11.14)"

    if ! newer_than "$target" "$old"; then
        if [ "$force" != 1 ]; then
            if same_version "$target" "$old"; then
                die "$EXIT_REFUSED" "yt-dlp is already pinned at $old (use --force to relock anyway)"
            fi
            die "$EXIT_REFUSED" "$target is not newer than the pinned $old (use --force, or 'rollback')"
        fi
        say "--force: pinning $target although it is not newer than $old"
    fi

    say "yt-dlp upgrade: $old → $target"
    if [ "$dry_run" = 1 ]; then
        print_plan upgrade "$old" "$target"
        return 0
    fi
    apply_version "$target"
    push_history "$old"
    say "yt-dlp: $old → $target (previous pin saved in $(history_rel))"
    remind "$target"
}

cmd_rollback() {
    local dry_run=$1 old previous
    old=$(pinned_version)
    previous=$(previous_version)
    [ -n "$previous" ] || die "$EXIT_REFUSED" "nothing to roll back to: $(history_rel) is empty or missing"
    valid_version "$previous" || die "$EXIT_FAILED" "bad entry '$previous' at the end of $(history_rel)"

    say "yt-dlp rollback: $old → $previous"
    if [ "$dry_run" = 1 ]; then
        print_plan rollback "$old" "$previous"
        return 0
    fi
    if same_version "$previous" "$old"; then
        pop_history
        say "yt-dlp is already pinned at $old; dropped it from $(history_rel)"
        return 0
    fi
    apply_version "$previous"
    pop_history
    say "yt-dlp: $old → $previous (rolled back)"
    remind "$previous"
}

main() {
    local command="" version="" force=0 dry_run=0 arg
    for arg in "$@"; do
        case "$arg" in
            -h | --help)
                usage
                exit 0
                ;;
        esac
    done
    [ $# -gt 0 ] || usage_error "a command is needed: current, upgrade or rollback"
    command=$1
    shift
    for arg in "$@"; do
        case "$arg" in
            --dry-run) dry_run=1 ;;
            --force) force=1 ;;
            -*) usage_error "unknown option: $arg" ;;
            *)
                [ "$command" = upgrade ] || usage_error "'$command' takes no VERSION"
                [ -z "$version" ] || usage_error "only one VERSION, got '$version' and '$arg'"
                version=$arg
                ;;
        esac
    done
    if [ "$force" = 1 ] && [ "$command" != upgrade ]; then
        usage_error "--force only applies to upgrade"
    fi
    case "$command" in
        current)
            [ "$dry_run" = 0 ] || usage_error "--dry-run does not apply to current"
            cmd_current
            ;;
        upgrade) cmd_upgrade "$version" "$force" "$dry_run" ;;
        rollback) cmd_rollback "$dry_run" ;;
        *) usage_error "unknown command: $command" ;;
    esac
}

main "$@"
