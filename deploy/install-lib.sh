# What deploy/install-box.sh and deploy/install-centre.sh share: sourced, not run.
# Every function is idempotent: run twice, the second run changes nothing.
# ROOT is where to install ("" for /), SRC the source tree, VENV the venv's
# path on the installed system (always /opt/passerelle/.venv).

VENV=/opt/passerelle/.venv
UNITS=/etc/systemd/system

say() { echo "install: $*"; }
die() { echo "install: $*" >&2; exit 1; }

# systemd and the service manager are the machine's only when installing into /.
live() { [ -z "$ROOT" ] && [ -d /run/systemd/system ]; }

# The lock's runtime part: every package Passerelle needs to run, without the
# test tools (pyproject's `test` extra) and what only they pull in. The lock
# names, for each package, what needs it ("# via"): a package stays if
# Passerelle itself or a package that stays needs it.
runtime_lock() {
    python3 - "$SRC/deploy/requirements.lock" "$SRC/pyproject.toml" <<'EOF'
import re, sys, tomllib
lock, pyproject = sys.argv[1], sys.argv[2]
name = lambda s: re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9._-]+", s.strip())[0]).lower()
with open(pyproject, "rb") as f:
    test = {name(r) for r in tomllib.load(f)["project"]["optional-dependencies"]["test"]}
blocks, via = {}, {}
current = None
for line in open(lock).read().splitlines():
    if line and not line[0].isspace() and not line.startswith("#"):
        current = name(line)
        blocks[current], via[current] = [line], set()
    elif current and line.strip().startswith("--hash"):
        blocks[current].append(line)
    elif current and line.strip().startswith("#"):
        words = line.strip().lstrip("#").strip()
        if words.startswith("via "):
            words = words[4:]
        if words and words != "via":
            via[current].add("passerelle" if words.startswith("passerelle ") else name(words))
keep = {p for p, v in via.items() if "passerelle" in v and p not in test}
while True:
    more = {p for p, v in via.items() if p not in keep and v & keep}
    if not more:
        break
    keep |= more
for p in sorted(keep):
    print("\n".join(blocks[p]))
EOF
}

# The venv in $ROOT$VENV: the runtime part of the lock, each package checked
# against its hashes, then Passerelle itself from a wheel of $SRC (not
# editable: the box runs what was installed, not a checkout).
install_venv() {
    local venv=$ROOT$VENV work
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    work=$(mktemp -d)
    trap 'rm -rf "$work"' RETURN
    runtime_lock > "$work/runtime.lock"
    "$venv/bin/python" -m pip install -q --require-hashes -r "$work/runtime.lock"
    # Built from a copy: a build/ left in the tree could carry stale modules
    # into the wheel. Building fetches setuptools (pyproject's build-system).
    mkdir "$work/src"
    tar -C "$SRC" --exclude=./.venv --exclude=./build --exclude='*.egg-info' \
        --exclude=__pycache__ --exclude=./.git -cf - . | tar -C "$work/src" -xf -
    "$venv/bin/python" -m pip wheel -q --no-deps -w "$work" "$work/src" >/dev/null
    "$venv/bin/python" -m pip install -q --no-deps --force-reinstall "$work"/passerelle-*.whl
    if [ -n "$ROOT" ]; then
        # The scripts name their interpreter by its path on the installed system.
        grep -lr --null "^#!$ROOT$VENV/bin/" "$venv/bin" | xargs -0 -r \
            sed -i "1s|^#!$ROOT$VENV/bin/|#!$VENV/bin/|"
    fi
    say "Passerelle $("$venv/bin/python" -I -c \
        'from importlib.metadata import version; print(version("passerelle"))') in $VENV"
}

# `passerelle ARGS...` from the installed venv, whatever its scripts' paths
# say, and not the source tree beside it: "$ROOT$VENV/bin/python" -I -c "$MAIN" ARGS...
MAIN='import sys; from passerelle.cli import main; sys.argv[0] = "passerelle"; main()'
passerelle() { "$ROOT$VENV/bin/python" -I -c "$MAIN" "$@"; }

# A system user and its group, both NAME, no home, no shell.
ensure_user() {
    local name=$1 home=$2
    if grep -q "^$name:" "$ROOT/etc/passwd" 2>/dev/null; then
        return
    fi
    local where=()
    [ -z "$ROOT" ] || where=(--prefix "$ROOT")
    useradd "${where[@]}" --system --user-group --no-create-home --home-dir "$home" \
        --shell /usr/sbin/nologin "$name"
    say "user $name"
}

# NAME's id in the installed system's files (chown would ask this machine's).
uid_of() { awk -F: -v n="$1" '$1 == n { print $3 }' "$ROOT/etc/passwd"; }
gid_of() { awk -F: -v n="$1" '$1 == n { print $3 }' "$ROOT/etc/group"; }

# A directory with its owner and mode (made if missing; owner and mode set anyway).
ensure_dir() {
    local path=$ROOT$1 owner=$2 group=$3 mode=$4
    mkdir -p "$path"
    chown "$(uid_of "$owner"):$(gid_of "$group")" "$path"
    chmod "$mode" "$path"
}

# The unit files, from deploy/systemd; systemd rereads them.
install_units() {
    mkdir -p "$ROOT$UNITS"
    local unit
    for unit in "$@"; do
        install -m 0644 "$SRC/deploy/systemd/$unit" "$ROOT$UNITS/$unit"
    done
    if live; then
        systemctl daemon-reload
    fi
    say "units $* in $UNITS"
}
