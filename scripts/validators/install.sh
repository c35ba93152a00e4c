#!/usr/bin/env bash
# Installs the independent validators the contract tests run, into target/tools/ (beside the
# build, ignored by git, kept between runs):
#
#   target/tools/python   openapi-spec-validator (PyPI), for schemas/openapi.yaml and
#                         schemas/psp.openapi.yaml;
#   target/tools/node     @asyncapi/parser (npm), for schemas/asyncapi.yaml, through
#                         scripts/validators/asyncapi.cjs.
#
# Versions are pinned in requirements.txt and package-lock.json next to this script. Each
# directory records the hash of what it was installed from, so a second run installs nothing;
# change a pin and the next run reinstalls that tool. Needs python3 (with venv) and npm.
# scripts/test.sh runs this; tests/saga/contracts.rs says so when a tool is missing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
tools="${CARGO_TARGET_DIR:-$root/target}/tools"

# The hash of the files a tool is installed from.
fingerprint() {
    cat "$@" | sha256sum | cut -d' ' -f1
}

# True when `dir` was installed from exactly these files.
up_to_date() {
    local dir="$1"
    shift
    [ -f "$dir/.installed-from" ] && [ "$(cat "$dir/.installed-from")" = "$(fingerprint "$@")" ]
}

install_python() {
    local dir="$tools/python"
    if up_to_date "$dir" "$here/requirements.txt"; then
        return 0
    fi
    echo "Installing openapi-spec-validator into $dir"
    command -v python3 >/dev/null 2>&1 || {
        echo "scripts/validators/install.sh: python3 is needed for openapi-spec-validator" >&2
        return 1
    }
    rm -rf "$dir"
    python3 -m venv "$dir"
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        --requirement "$here/requirements.txt"
    fingerprint "$here/requirements.txt" >"$dir/.installed-from"
}

install_node() {
    local dir="$tools/node"
    if up_to_date "$dir" "$here/package.json" "$here/package-lock.json"; then
        return 0
    fi
    echo "Installing @asyncapi/parser into $dir"
    command -v npm >/dev/null 2>&1 || {
        echo "scripts/validators/install.sh: Node.js and npm are needed for @asyncapi/parser" >&2
        return 1
    }
    rm -rf "$dir"
    mkdir -p "$dir"
    cp "$here/package.json" "$here/package-lock.json" "$dir/"
    # Exactly the lock file's versions; no install scripts (none is needed to parse).
    (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
    fingerprint "$here/package.json" "$here/package-lock.json" >"$dir/.installed-from"
}

mkdir -p "$tools"
install_python
install_node
