/* The C side of `bench ffi` (examples/bench/ffi.rs in the root crate):
 * publishes N messages of SIZE bytes one at a time through the C ABI to a
 * queue opened with buffered durability, timing the loop alone, then
 * times CALLS calls of three cheap functions to show what one crossing of
 * the boundary costs. Prints `name value` lines on stdout; exits 1 with the
 * library's message on any failure.
 * Usage: publish DIR N SIZE CALLS */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "syncmq.h"

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static void fail(const char *what, int rc) {
    fprintf(stderr, "publish: %s returned %d (%s): %s\n", what, rc, syncmq_strerror(rc),
            syncmq_last_error());
    exit(1);
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: publish DIR N SIZE CALLS\n");
        return 2;
    }
    long n = atol(argv[2]);
    size_t size = (size_t)atol(argv[3]);
    long calls = atol(argv[4]);
    uint8_t *body = malloc(size > 0 ? size : 1);
    if (body == NULL) {
        fprintf(stderr, "publish: out of memory\n");
        return 1;
    }
    memset(body, 0xA5, size);

    syncmq_queue *q = NULL;
    int rc = syncmq_queue_open(argv[1],
                               "{\"durability\":\"buffered\",\"topics\":[{\"name\":\"bench\","
                               "\"subscribers\":[\"consumer\"]}]}",
                               &q);
    if (rc != SYNCMQ_OK) {
        fail("syncmq_queue_open", rc);
    }

    double started = now_ns();
    for (long i = 0; i < n; i++) {
        rc = syncmq_queue_publish(q, "bench", body, size);
        if (rc != SYNCMQ_OK) {
            fail("syncmq_queue_publish", rc);
        }
    }
    printf("publish_ns %.0f\n", now_ns() - started);

    /* A plain call: no guard, no thread-local (the floor). */
    size_t sum = 0;
    started = now_ns();
    for (long i = 0; i < calls; i++) {
        sum += (size_t)syncmq_strerror((int)(i & 1))[0];
    }
    printf("strerror_ns %.3f\n", (now_ns() - started) / (double)calls);

    /* A guarded call that succeeds: catch_unwind, the last error cleared,
     * the handle checked. */
    syncmq_subscriber *s = NULL;
    rc = syncmq_subscriber_open(q, "bench", "consumer", &s);
    if (rc != SYNCMQ_OK) {
        fail("syncmq_subscriber_open", rc);
    }
    started = now_ns();
    for (long i = 0; i < calls; i++) {
        sum += (size_t)syncmq_subscriber_fd(s);
    }
    printf("guarded_ok_ns %.3f\n", (now_ns() - started) / (double)calls);

    /* A guarded call that fails fast: the NULL topic is refused and the
     * message written to the thread's last error. */
    started = now_ns();
    for (long i = 0; i < calls; i++) {
        if (syncmq_queue_publish(q, NULL, body, size) != SYNCMQ_E_INVALID_ARGUMENT) {
            fail("syncmq_queue_publish with a NULL topic", -1);
        }
    }
    printf("guarded_error_ns %.3f\n", (now_ns() - started) / (double)calls);

    /* Keeps the loops from being optimized away. */
    if (sum == 0) {
        fprintf(stderr, "publish: impossible sum\n");
    }
    syncmq_subscriber_close(s);
    rc = syncmq_queue_close(q);
    if (rc != SYNCMQ_OK) {
        fail("syncmq_queue_close", rc);
    }
    free(body);
    return 0;
}
