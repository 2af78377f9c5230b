#!/usr/bin/env bash
# A three-node RabbitMQ cluster of our own for the failover tests: nodes
# syncmq-c1..3@localhost on 127.0.0.1:5701..5703 (distribution ports
# 25701..25703), started with scripts/rabbitmq-node.sh and joined to c1.
#
#   scripts/rabbitmq-cluster.sh start        starts and joins the nodes (idempotent)
#   scripts/rabbitmq-cluster.sh stop         stops all three
#   scripts/rabbitmq-cluster.sh urls         prints their URLs, comma-separated
#   scripts/rabbitmq-cluster.sh kill N       kill -9 of node N (1..3)
#   scripts/rabbitmq-cluster.sh start-node N starts node N again; it rejoins
set -euo pipefail
here=$(dirname "$0")
node() { "$here/rabbitmq-node.sh" "$@"; }

start_node() { # n
    node start "syncmq-c$1" "$((5700 + $1))" "$((25700 + $1))"
}

start() {
    for n in 1 2 3; do start_node "$n"; done
    for n in 2 3; do
        if node ctl "syncmq-c$n" cluster_status --formatter json 2>/dev/null |
            grep -q 'syncmq-c1@localhost'; then
            continue
        fi
        for step in stop_app reset "join_cluster syncmq-c1@localhost" start_app; do
            # shellcheck disable=SC2086 # the step's words are its arguments
            quiet node ctl "syncmq-c$n" $step
        done
    done
    quiet node ctl syncmq-c1 await_startup
}

quiet() { # runs a command, showing its output only when it fails
    local out
    if ! out=$("$@" 2>&1); then
        echo "rabbitmq-cluster.sh: $* failed:" >&2
        echo "$out" >&2
        return 1
    fi
}

case "${1:-}" in
start) start ;;
stop) for n in 3 2 1; do node stop "syncmq-c$n"; done ;;
urls) echo "amqp://guest:guest@127.0.0.1:5701/%2f,amqp://guest:guest@127.0.0.1:5702/%2f,amqp://guest:guest@127.0.0.1:5703/%2f" ;;
kill) node kill "syncmq-c$2" ;;
start-node) start_node "$2" ;;
*)
    sed -n '2,11p' "$0" >&2
    exit 2
    ;;
esac
