#!/usr/bin/env bash
# Starts and stops RabbitMQ nodes of our own beside the machine's broker on
# 5672, which is never touched: each node has its own name, ports and
# directories, and is stopped only by the PID in its own pid file.
#
#   scripts/rabbitmq-node.sh start NAME AMQP_PORT DIST_PORT [CONF_FILE]
#       starts NAME@localhost listening on 127.0.0.1:AMQP_PORT (idempotent);
#       CONF_FILE's lines are appended to the node's rabbitmq.conf
#   scripts/rabbitmq-node.sh stop NAME     kills the node by its pid file
#   scripts/rabbitmq-node.sh kill NAME     the same with SIGKILL (a crash)
#   scripts/rabbitmq-node.sh running NAME  exits 0 when the node runs
#   scripts/rabbitmq-node.sh ctl NAME ARGS...   rabbitmqctl -n NAME@localhost ARGS
#   scripts/rabbitmq-node.sh dir NAME      prints the node's directory
#
# Directories live under $SYNCMQ_NODES_DIR (default /tmp/syncmq-nodes) and
# belong to the `rabbitmq` user, as the Debian wrapper runs the node as it.
set -euo pipefail

base=${SYNCMQ_NODES_DIR:-/tmp/syncmq-nodes}

node_dir() { echo "$base/$1"; }

pid_of() { # name -> prints the pid if the node runs
    local file
    file="$(node_dir "$1")/pid"
    [ -s "$file" ] || return 1
    local pid
    pid=$(cat "$file")
    kill -0 "$pid" 2>/dev/null || return 1
    echo "$pid"
}

ctl() { # name args...
    local name=$1
    shift
    timeout 60 rabbitmqctl -q -n "$name@localhost" "$@"
}

start() { # name amqp_port dist_port [conf_file]
    local name=$1 port=$2 dist=$3 extra=${4:-}
    local dir
    dir=$(node_dir "$name")
    if pid_of "$name" >/dev/null; then
        ctl "$name" await_startup >/dev/null
        return 0
    fi
    mkdir -p "$dir/mnesia" "$dir/log"
    echo "[]." >"$dir/enabled_plugins"
    {
        echo "listeners.tcp.default = 127.0.0.1:$port"
        echo "loopback_users.guest = true"
        [ -n "$extra" ] && cat "$extra"
    } >"$dir/rabbitmq.conf"
    chown -R rabbitmq:rabbitmq "$base" 2>/dev/null || true
    RABBITMQ_NODENAME="$name@localhost" \
        RABBITMQ_NODE_PORT="$port" \
        RABBITMQ_DIST_PORT="$dist" \
        RABBITMQ_MNESIA_BASE="$dir/mnesia" \
        RABBITMQ_LOG_BASE="$dir/log" \
        RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf" \
        RABBITMQ_PID_FILE="$dir/pid" \
        RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" \
        rabbitmq-server -detached >/dev/null 2>&1
    for _ in $(seq 120); do
        pid_of "$name" >/dev/null && break
        sleep 0.5
    done
    if ! ctl "$name" await_startup >/dev/null 2>&1; then
        echo "rabbitmq-node.sh: $name did not start; its log:" >&2
        tail -n 30 "$dir"/log/*.log >&2 2>/dev/null || true
        return 1
    fi
}

stop() { # name signal
    local name=$1 signal=$2 pid
    pid=$(pid_of "$name") || return 0
    kill "-$signal" "$pid"
    for _ in $(seq 120); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.25
    done
    echo "rabbitmq-node.sh: $name (pid $pid) did not end" >&2
    return 1
}

case "${1:-}" in
start) start "$2" "$3" "$4" "${5:-}" ;;
stop) stop "$2" TERM ;;
kill) stop "$2" KILL ;;
running) pid_of "$2" >/dev/null ;;
ctl) name=$2; shift 2; ctl "$name" "$@" ;;
dir) node_dir "$2" ;;
*)
    sed -n '2,17p' "$0" >&2
    exit 2
    ;;
esac
