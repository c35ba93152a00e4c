#!/usr/bin/env bash
# Runs every test of the workspace, on a Debian machine with nothing but the Rust toolchain:
#
#   1. installs what the tests need and the machine lacks (apt-get, with sudo unless root): the
#      C build tools for librdkafka and SQLite, Chromium (the timeline page test), PostgreSQL;
#      Python's venv and npm, for the independent validators of schemas/ (installed into
#      target/tools by scripts/validators/install.sh; a second run installs nothing);
#   2. starts a throwaway Postgres server of its own — a new cluster in a temporary directory,
#      a random password, TLS on, 127.0.0.1 and a free port — and removes it on exit, also on
#      failure or Ctrl-C. The host's own clusters are never touched. With TEST_POSTGRES_URL
#      already set, that server is used instead, nothing is started, and pass 3 is skipped;
#   3. pass 1: `cargo test --workspace --locked`, every service on SQLite;
#   4. pass 2: the database and end-to-end tests again on Postgres, with the tests that only
#      mean something on Postgres (#[ignore]d in pass 1, their reason says so) included;
#   5. pass 3, alone: the test that restarts the server for real (tests/saga/postgres_restart.rs,
#      through TEST_POSTGRES_RESTART, a script that stops and starts it). Restarting it under
#      pass 2's parallel tests would fail them all; in pass 2 that test ends its own stack's
#      connections instead.
#
# Arguments replace the package selection of both passes and go to cargo test as they are:
#   scripts/test.sh -p saga-tests                  # the end-to-end tests, on both databases
#   scripts/test.sh -p saga-tests -- happy_path    # one of them
set -euo pipefail
cd "$(dirname "$0")/.."

# The crates whose tests read and write a database: pass 2 runs them on Postgres.
POSTGRES_PACKAGES=(-p platform -p order-api -p payment-svc -p inventory-svc -p saga-tests)

# How long the throwaway server may take to accept connections.
PG_READY_WITHIN_S=30

section() {
    printf '\n==== %s\n\n' "$*"
}

# ---- 1. What the tests need -------------------------------------------------------------------

missing=()
# librdkafka and SQLite are compiled from source: a C/C++ toolchain, make, perl (librdkafka's
# configure), pkg-config and zlib's headers.
for tool in gcc g++ make perl pkg-config; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
[ -e /usr/include/zlib.h ] || missing+=(zlib1g-dev)
# The order timeline page is tested in headless Chromium (tests/saga/timeline.rs).
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || missing+=(chromium)
# The contract documents are checked by independent validators (tests/saga/contracts.rs):
# openapi-spec-validator in a Python venv, @asyncapi/parser with Node.js.
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
command -v npm >/dev/null 2>&1 || missing+=(npm)
# A full disk is the file-size limit of a running service, set from outside with prlimit
# (tests/saga/disk_full.rs).
command -v prlimit >/dev/null 2>&1 || missing+=(util-linux)
if [ -z "${TEST_POSTGRES_URL:-}" ]; then
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
    # The throwaway server's TLS certificate.
    command -v openssl >/dev/null 2>&1 || missing+=(openssl)
fi

if [ "${#missing[@]}" -gt 0 ]; then
    section "Installing ${missing[*]}"
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || {
            echo "scripts/test.sh: ${missing[*]} missing, and installing needs root or sudo" >&2
            exit 1
        }
        sudo=(sudo)
    fi
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Pinned versions, into target/tools; nothing is installed when they are there already.
scripts/validators/install.sh

# ---- 2. A Postgres server of our own ----------------------------------------------------------

pg_dir=""
pg_bin=""

# Runs a Postgres server program: as the `postgres` user when we are root (the server refuses
# to run as root), as ourselves otherwise.
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

stop_postgres() {
    [ -n "$pg_dir" ] || return 0
    if [ -f "$pg_dir/data/postmaster.pid" ]; then
        as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate -w -t 20 stop >/dev/null 2>&1 || true
    fi
    # Still there (pg_ctl failed): end the server we started, by its own pid file.
    if [ -f "$pg_dir/data/postmaster.pid" ]; then
        kill -KILL "$(head -n 1 "$pg_dir/data/postmaster.pid")" 2>/dev/null || true
    fi
    rm -rf "$pg_dir"
    pg_dir=""
}

on_exit() {
    local status=$?
    stop_postgres
    exit "$status"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A port on 127.0.0.1 nothing listens on (bash's /dev/tcp: a refused connection).
free_port() {
    local port
    for _ in $(seq 1 50); do
        port=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    echo "scripts/test.sh: no free port found" >&2
    return 1
}

# Writes `$pg_dir/restart.sh`, which restarts the throwaway server for real — a fast shutdown
# (connections are ended, the postmaster exits), a pause with no server at all (its argument,
# 1 s by default), then a start that waits until it accepts connections — for the test of the
# services across a restart (tests/saga/postgres_restart.rs). A script rather than a function,
# because the test runs it; as the postgres user when we are root, as the server itself runs.
write_restart_script() {
    local as_user=""
    if [ "$(id -u)" -eq 0 ]; then
        as_user="runuser -u postgres --"
    fi
    cat >"$pg_dir/restart.sh" <<EOF
#!/usr/bin/env bash
set -euo pipefail
$as_user "$pg_bin/pg_ctl" -D "$pg_dir/data" -m fast -w -t 30 stop >/dev/null
sleep "\${1:-1}"
$as_user "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/server.log" -w -t 30 start >/dev/null
EOF
    chmod 755 "$pg_dir/restart.sh"
}

start_postgres() {
    pg_bin="$(compgen -G '/usr/lib/postgresql/*/bin' | sort -V | tail -n 1)"
    pg_dir="$(mktemp -d "${TMPDIR:-/tmp}/shop-test-postgres.XXXXXX")"
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres: "$pg_dir"
    fi
    local password port
    password="$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
    port="$(free_port)"

    # A certificate naming localhost, which the server presents and the TLS test trusts.
    cat >"$pg_dir/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
x509_extensions = server
prompt = no
[dn]
CN = localhost
[server]
basicConstraints = critical, CA:FALSE
subjectAltName = DNS:localhost
EOF
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -config "$pg_dir/openssl.cnf" \
        -keyout "$pg_dir/server.key" -out "$pg_dir/server.crt" 2>/dev/null
    chmod 600 "$pg_dir/server.key"
    printf '%s\n' "$password" >"$pg_dir/password"
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres: "$pg_dir/server.key" "$pg_dir/server.crt" "$pg_dir/password"
    fi

    as_pg "$pg_bin/initdb" -D "$pg_dir/data" -U postgres --pwfile="$pg_dir/password" \
        --auth=scram-sha-256 --encoding=UTF8 --locale=C --no-sync >"$pg_dir/initdb.log" 2>&1 || {
        cat "$pg_dir/initdb.log" >&2
        return 1
    }
    rm -f "$pg_dir/password"
    # Loopback only, the socket in our directory, TLS on. Nothing here outlives the run, so
    # it need not survive a power loss either: no fsync.
    cat >>"$pg_dir/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$pg_dir'
ssl = on
ssl_cert_file = '$pg_dir/server.crt'
ssl_key_file = '$pg_dir/server.key'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
    as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/server.log" -W start >/dev/null

    local deadline=$((SECONDS + PG_READY_WITHIN_S))
    until "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$port"; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "scripts/test.sh: Postgres not ready within ${PG_READY_WITHIN_S} s; its log:" >&2
            cat "$pg_dir/server.log" >&2 || true
            return 1
        fi
        sleep 0.2
    done
    write_restart_script
    export TEST_POSTGRES_URL="postgres://postgres:$password@127.0.0.1:$port/postgres"
    export TEST_POSTGRES_CERT="$pg_dir/server.crt"
    restart_script="$pg_dir/restart.sh"
    echo "Postgres $("$pg_bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (data in $pg_dir)"
}

if [ -n "${TEST_POSTGRES_URL:-}" ]; then
    section "Postgres: the server TEST_POSTGRES_URL names"
else
    section "Postgres: a throwaway server"
    start_postgres
fi

# ---- 3, 4. The tests --------------------------------------------------------------------------

if [ "$#" -gt 0 ]; then
    pass1=("$@")
    pass2=("$@")
else
    pass1=(--workspace)
    pass2=("${POSTGRES_PACKAGES[@]}")
fi
# The ignored tests too in pass 2: after the user's `--`, if any.
case " ${pass2[*]} " in
*" -- "*) pass2+=(--include-ignored) ;;
*) pass2+=(-- --include-ignored) ;;
esac

failed=()

section "Pass 1: cargo test --locked ${pass1[*]} (SQLite)"
env -u TEST_POSTGRES_URL cargo test --locked "${pass1[@]}" || failed+=("pass 1 (SQLite)")

section "Pass 2: cargo test --locked ${pass2[*]} (Postgres)"
cargo test --locked "${pass2[@]}" || failed+=("pass 2 (Postgres)")

# Pass 3 on a full run, or when the arguments name the restart test.
if [ -n "${restart_script:-}" ] && { [ "$#" -eq 0 ] || [[ " $* " == *postgres_restart* ]]; }; then
    section "Pass 3: the Postgres server restarted under a running stack (alone)"
    TEST_POSTGRES_RESTART="$restart_script" cargo test --locked -p saga-tests --test saga \
        -- --ignored postgres_restart || failed+=("pass 3 (Postgres restart)")
fi

if [ "${#failed[@]}" -gt 0 ]; then
    summary="$(printf ', %s' "${failed[@]}")"
    section "FAILED: ${summary#, }"
    exit 1
fi
section "All tests passed, on SQLite and on Postgres"
