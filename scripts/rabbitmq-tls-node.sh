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
# The certificates live in $SYNCMQ_TLS_DIR (default /tmp/syncmq-tls), owned
# by the `rabbitmq` user, who runs the node; the node itself is started and
# stopped by scripts/rabbitmq-node.sh.
set -euo pipefail

here=$(dirname "$0")
dir=${SYNCMQ_TLS_DIR:-/tmp/syncmq-tls}
name=syncmq-tls
tls_port=5671
amqp_port=5710
dist_port=25710

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
    cat >"$dir/tls.conf" <<EOF
listeners.ssl.default = 127.0.0.1:$tls_port
ssl_options.cacertfile = $dir/certs/ca.pem
ssl_options.certfile = $dir/certs/server.pem
ssl_options.keyfile = $dir/certs/server.key
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = false
EOF
    "$here/rabbitmq-node.sh" start "$name" "$amqp_port" "$dist_port" "$dir/tls.conf"
    env_lines
}

env_lines() {
    echo "SYNCMQ_TLS_URL=amqps://guest:guest@localhost:$tls_port/%2f"
    echo "SYNCMQ_TLS_DIR=$dir"
    echo "SYNCMQ_TLS_PLAIN_URL=amqp://guest:guest@localhost:$amqp_port/%2f"
}

case "${1:-}" in
start) start ;;
stop) "$here/rabbitmq-node.sh" stop "$name" ;;
running) "$here/rabbitmq-node.sh" running "$name" ;;
dir) echo "$dir" ;;
*)
    sed -n '2,24p' "$0" >&2
    exit 2
    ;;
esac
