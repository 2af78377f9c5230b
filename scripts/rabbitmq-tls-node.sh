#!/usr/bin/env bash
# A TLS-enabled RabbitMQ node of the tests' own, beside the machine's broker
# on 5672 (which is never touched): node syncmq-tls@localhost, AMQP over TLS
# on 127.0.0.1:5671 (plain AMQP on 5710, distribution on 25710), with
# certificates made here by openssl:
#
#   ca.pem             the CA that signed the server's and the client's certificates
#   server.pem/.key    CN localhost, SAN DNS:localhost and IP:127.0.0.1
#   client.pem/.key    CN syncmq-client (PKCS#8 key), for client-certificate tests
#   other-ca.pem       an unrelated CA, that signed nothing the node uses
#   expired.pem/.key   like server.pem but expired, for the tests' own TLS peer
#   stranger.pem/.key  a client certificate of other-ca, which the node refuses
#
#   scripts/rabbitmq-tls-node.sh start   starts the node (idempotent) and
#                                        prints the SYNCMQ_TLS_URL and
#                                        SYNCMQ_TLS_DIR lines the tests read
#                                        (and SYNCMQ_TLS_PLAIN_URL, the
#                                        node's plain port, for the bench)
#   scripts/rabbitmq-tls-node.sh stop    stops it by its pid file only
#   scripts/rabbitmq-tls-node.sh running exits 0 when the node runs
#   scripts/rabbitmq-tls-node.sh dir     prints the directory
#
# Everything lives in $SYNCMQ_TLS_DIR (default /tmp/syncmq-tls), owned by the
# `rabbitmq` user: the Debian wrapper runs the node as that user.
set -euo pipefail

dir=${SYNCMQ_TLS_DIR:-/tmp/syncmq-tls}
node=syncmq-tls@localhost
tls_port=5671
amqp_port=5710
dist_port=25710

ctl() {
    timeout 60 rabbitmqctl -q -n "$node" "$@"
}

pid_of() { # prints the node's pid if it runs
    [ -s "$dir/pid" ] || return 1
    local pid
    pid=$(cat "$dir/pid")
    kill -0 "$pid" 2>/dev/null || return 1
    echo "$pid"
}

certificates() { # makes whichever is missing
    local c=$dir/certs days=3650 ca leaf cn ext valid
    mkdir -p "$c"
    # The CA the node and the tests trust, and an unrelated one.
    for ca in ca other-ca; do
        [ -s "$c/$ca.pem" ] && continue
        openssl req -x509 -newkey rsa:2048 -nodes -days "$days" \
            -subj "/CN=syncmq test $ca" -keyout "$c/$ca.key" -out "$c/$ca.pem" 2>/dev/null
    done
    cat >"$c/server.ext" <<EOF
basicConstraints = CA:FALSE
keyUsage = digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
EOF
    cat >"$c/client.ext" <<EOF
basicConstraints = CA:FALSE
keyUsage = digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
EOF
    # expired: like server, but its validity ended a day before it began
    # (for the tests' own TLS peer, not the node); stranger: a client
    # certificate of the other CA, which the node does not trust.
    for leaf in server client expired stranger; do
        [ -s "$c/$leaf.pem" ] && continue
        cn=localhost ext=server valid=$days ca=ca
        [ "$leaf" = client ] && cn=syncmq-client ext=client
        [ "$leaf" = expired ] && valid=-1
        [ "$leaf" = stranger ] && cn=syncmq-stranger ext=client ca=other-ca
        openssl req -newkey rsa:2048 -nodes -subj "/CN=$cn" \
            -keyout "$c/$leaf.key" -out "$c/$leaf.csr" 2>/dev/null
        openssl x509 -req -in "$c/$leaf.csr" -CA "$c/$ca.pem" -CAkey "$c/$ca.key" \
            -CAcreateserial -days "$valid" -extfile "$c/$ext.ext" -out "$c/$leaf.pem" 2>/dev/null
    done
    chown -R rabbitmq:rabbitmq "$dir" 2>/dev/null || true
}

start() {
    certificates
    if pid_of >/dev/null; then
        ctl await_startup >/dev/null
        env_lines
        return 0
    fi
    mkdir -p "$dir/mnesia" "$dir/log"
    echo "[]." >"$dir/enabled_plugins"
    cat >"$dir/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$amqp_port
listeners.ssl.default = 127.0.0.1:$tls_port
ssl_options.cacertfile = $dir/certs/ca.pem
ssl_options.certfile = $dir/certs/server.pem
ssl_options.keyfile = $dir/certs/server.key
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = false
loopback_users.guest = true
EOF
    chown -R rabbitmq:rabbitmq "$dir" 2>/dev/null || true
    RABBITMQ_NODENAME="$node" \
        RABBITMQ_NODE_PORT="$amqp_port" \
        RABBITMQ_DIST_PORT="$dist_port" \
        RABBITMQ_MNESIA_BASE="$dir/mnesia" \
        RABBITMQ_LOG_BASE="$dir/log" \
        RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf" \
        RABBITMQ_PID_FILE="$dir/pid" \
        RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" \
        rabbitmq-server -detached >/dev/null 2>&1
    for _ in $(seq 120); do
        pid_of >/dev/null && break
        sleep 0.5
    done
    if ! ctl await_startup >/dev/null 2>&1; then
        echo "rabbitmq-tls-node.sh: $node did not start; its log:" >&2
        tail -n 30 "$dir"/log/*.log >&2 2>/dev/null || true
        return 1
    fi
    env_lines
}

env_lines() {
    echo "SYNCMQ_TLS_URL=amqps://guest:guest@localhost:$tls_port/%2f"
    echo "SYNCMQ_TLS_DIR=$dir"
    echo "SYNCMQ_TLS_PLAIN_URL=amqp://guest:guest@localhost:$amqp_port/%2f"
}

stop() {
    local pid
    pid=$(pid_of) || return 0
    kill -TERM "$pid"
    for _ in $(seq 120); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.25
    done
    echo "rabbitmq-tls-node.sh: $node (pid $pid) did not end" >&2
    return 1
}

case "${1:-}" in
start) start ;;
stop) stop ;;
running) pid_of >/dev/null ;;
dir) echo "$dir" ;;
*)
    sed -n '2,24p' "$0" >&2
    exit 2
    ;;
esac
