#!/bin/bash
# Runs every component's bench (release build), each against its raw
# baseline measured in the same run. RabbitMQ must answer for `rabbitmq`
# and part of `outbox`; PostgreSQL for part of `outbox`.
# Extra arguments (e.g. --json) are passed to every bench.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --all-features --example bench
bench=target/release/examples/bench
for case in \
    "simple --messages 1000000 --runs 5" \
    "block --messages 1000000 --runs 5" \
    "block-publish --messages 2000 --runs 3" \
    "queue --messages 20000 --backlog 1000000 --runs 3" \
    "server --messages 20000 --runs 3" \
    "outbox --runs 3" \
    "rabbitmq --messages 20000 --runs 3"; do
    echo "=== bench $case (load $(cut -d' ' -f1-3 /proc/loadavg))"
    # shellcheck disable=SC2086 # the case is split into its arguments on purpose
    $bench $case "$@"
done
