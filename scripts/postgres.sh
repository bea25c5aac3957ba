#!/usr/bin/env bash
# Makes sure the PostgreSQL server binaries (initdb, pg_ctl) are installed, for the PostgreSQL
# half of the suda-store tests and benchmarks, which start a throwaway server of their own
# (suda_store::testing::TempPostgres). Installs Debian's `postgresql` package when they are
# missing; needs root (or sudo). Starts no service: the tests run their own server, as the
# `postgres` system user that the package creates (initdb refuses to run as root).
#
# Idempotent and quiet when everything is there already.
set -euo pipefail

have_binaries() {
    local dir
    for dir in /usr/lib/postgresql/*/bin; do
        if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then
            return 0
        fi
    done
    return 1
}

if ! have_binaries || ! id postgres >/dev/null 2>&1; then
    if [[ $(id -u) -eq 0 ]]; then
        as_root=()
    elif command -v sudo >/dev/null 2>&1; then
        as_root=(sudo)
    else
        echo "scripts/postgres.sh: PostgreSQL is missing and installing it needs root" >&2
        exit 1
    fi
    echo "scripts/postgres.sh: installing PostgreSQL from Debian's packages" >&2
    export DEBIAN_FRONTEND=noninteractive
    "${as_root[@]}" apt-get update -qq
    # The package creates the `postgres` user the tests need. Its default cluster (a server on
    # port 5432) is not needed: ask postgresql-common not to create it.
    "${as_root[@]}" mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" |
        "${as_root[@]}" tee /etc/postgresql-common/createcluster.d/suda-no-main-cluster.conf >/dev/null
    "${as_root[@]}" apt-get install -y -qq postgresql >/dev/null
fi

if ! have_binaries; then
    echo "scripts/postgres.sh: initdb/pg_ctl still not found under /usr/lib/postgresql/*/bin" >&2
    exit 1
fi
if ! id postgres >/dev/null 2>&1; then
    echo "scripts/postgres.sh: the postgres system user is missing" >&2
    exit 1
fi
if [[ $(id -u) -eq 0 ]] && ! command -v runuser >/dev/null 2>&1; then
    echo "scripts/postgres.sh: runuser (util-linux) is needed to run initdb as postgres" >&2
    exit 1
fi
