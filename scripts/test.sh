#!/usr/bin/env bash
# The test command: makes sure the build's system libraries are there
# (scripts/build-deps.sh) and the services the tests need answer (RabbitMQ,
# PostgreSQL, and a TLS RabbitMQ node of its own, stopped again on exit;
# openssl for the tests' certificates),
# and the C ABI's tests have their tools (gcc, g++, valgrind, python3),
# then runs every test of the workspace (the root crate and ffi/) with
# every feature, with broker tests required (they fail instead of skipping
# when the broker is missing) and so the valgrind and Python tests too.
#
#   ./scripts/test.sh              # all tests
#   ./scripts/test.sh --test simple  # extra arguments go to `cargo test`
set -euo pipefail
cd "$(dirname "$0")/.."

answers() { # host port
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

wait_for() { # name host port seconds
    local name=$1 host=$2 port=$3 seconds=$4
    for _ in $(seq "$seconds"); do
        answers "$host" "$port" && return 0
        sleep 1
    done
    echo "test.sh: $name did not answer on $host:$port within ${seconds}s" >&2
    return 1
}

ensure_rabbitmq() {
    answers 127.0.0.1 5672 && return 0
    if ! command -v rabbitmq-server >/dev/null; then
        if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
            echo "test.sh: installing rabbitmq-server" >&2
            DEBIAN_FRONTEND=noninteractive apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
        else
            echo "test.sh: RabbitMQ is not running and rabbitmq-server is not installed (install it, or run as root to let this script do it)" >&2
            return 1
        fi
    fi
    if timeout 30 rabbitmqctl -q status >/dev/null 2>&1; then
        # The node runs but its app was stopped (say by an interrupted
        # broker-restart test): start the app only.
        echo "test.sh: starting the RabbitMQ app" >&2
        timeout 120 rabbitmqctl start_app >/dev/null
    else
        echo "test.sh: starting RabbitMQ" >&2
        rabbitmq-server -detached >/dev/null 2>&1 || true
    fi
    wait_for RabbitMQ 127.0.0.1 5672 120
    timeout 120 rabbitmqctl await_startup >/dev/null 2>&1 || true
}

# The C ABI's tests (ffi/tests/c.rs) compile C and C++ programs, run one
# under valgrind and one in Python.
ensure_ffi_tools() {
    local missing=() tool
    for tool in gcc g++ valgrind python3; do
        command -v "$tool" >/dev/null || missing+=("$tool")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        echo "test.sh: installing ${missing[*]}" >&2
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "test.sh: ${missing[*]} missing (install them, or run as root to let this script do it)" >&2
        return 1
    fi
}

# The certificates of the tests' own TLS servers (the RabbitMQ TLS node, the
# PostgreSQL of tests/common/postgres_tls.rs) are made by the openssl tool;
# that PostgreSQL is the installed one's initdb and pg_ctl
# (/usr/lib/postgresql/*/bin, from the postgresql package ensure_postgres
# installs), run as the postgres user when this runs as root.
ensure_openssl() {
    command -v openssl >/dev/null && return 0
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        echo "test.sh: installing openssl" >&2
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null
    else
        echo "test.sh: the openssl tool is missing (install it, or run as root to let this script do it)" >&2
        return 1
    fi
}

ensure_postgres() {
    answers 127.0.0.1 5432 && return 0
    if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
        if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
            echo "test.sh: installing postgresql" >&2
            DEBIAN_FRONTEND=noninteractive apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
        else
            echo "test.sh: PostgreSQL is not running and not installed" >&2
            return 1
        fi
    fi
    echo "test.sh: starting PostgreSQL" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    wait_for PostgreSQL 127.0.0.1 5432 60
}

# RabbitMQ nodes of our own, beside the broker on 5672 (which these tests
# never touch): the three-node cluster the failover tests kill and restart,
# and the TLS node. Both are stopped when this script ends, however the
# tests end.
start_cluster() {
    echo "test.sh: starting a three-node RabbitMQ cluster on 127.0.0.1:5701-5703" >&2
    ./scripts/rabbitmq-cluster.sh start
    SYNCMQ_CLUSTER_URLS=$(./scripts/rabbitmq-cluster.sh urls)
    export SYNCMQ_CLUSTER_URLS
}

start_tls_node() {
    echo "test.sh: starting the TLS RabbitMQ node on 127.0.0.1:5671" >&2
    local lines line
    if ! lines=$(./scripts/rabbitmq-tls-node.sh start); then
        echo "test.sh: the TLS RabbitMQ node did not start" >&2
        return 1
    fi
    while read -r line; do
        case "$line" in
        SYNCMQ_TLS_*=*) export "${line?}" ;;
        esac
    done <<<"$lines"
}

stop_own_nodes() {
    ./scripts/rabbitmq-tls-node.sh stop || true
    ./scripts/rabbitmq-cluster.sh stop || true
}

./scripts/build-deps.sh
ensure_ffi_tools
ensure_rabbitmq
ensure_postgres
ensure_openssl
trap stop_own_nodes EXIT
start_cluster
start_tls_node

export SYNCMQ_REQUIRE_BROKER=1
status=0
cargo test --workspace --all-features "$@" || status=$?
exit "$status"
