/* 4 threads publish 10,000 messages each at once to one queue handle, then
 * one subscriber takes them all: nothing lost, nothing duplicated.
 * Usage: threads DIR */
#include <pthread.h>
#include <string.h>

#include "check.h"

#define THREADS 4
#define PER_THREAD 10000

static syncmq_queue *q;
static unsigned char seen[THREADS][PER_THREAD];

static void *publisher(void *arg) {
    int p = (int)(intptr_t)arg;
    char body[32];
    for (int i = 0; i < PER_THREAD; i++) {
        int n = snprintf(body, sizeof body, "%d-%d", p, i);
        OK(syncmq_queue_publish(q, "t", (const uint8_t *)body, (size_t)n));
    }
    return NULL;
}

int main(int argc, char **argv) {
    CHECK(argc == 2, "usage: threads DIR");
    OK(syncmq_queue_open(
        argv[1], "{\"durability\":\"buffered\",\"topics\":[{\"name\":\"t\",\"subscribers\":[\"s\"]}]}",
        &q));
    pthread_t threads[THREADS];
    for (int p = 0; p < THREADS; p++) {
        CHECK(pthread_create(&threads[p], NULL, publisher, (void *)(intptr_t)p) == 0,
              "pthread_create");
    }
    for (int p = 0; p < THREADS; p++) {
        CHECK(pthread_join(threads[p], NULL) == 0, "pthread_join");
    }

    syncmq_subscriber *s;
    OK(syncmq_subscriber_open(q, "t", "s", &s));
    int taken = 0;
    int last[THREADS] = {-1, -1, -1, -1};
    for (;;) {
        syncmq_delivery *d;
        int rc = syncmq_subscriber_next(s, 0, &d);
        if (rc == SYNCMQ_E_TIMEOUT) {
            break;
        }
        OK(rc);
        size_t len;
        const uint8_t *body = syncmq_delivery_body(d, &len);
        char text[32];
        CHECK(len < sizeof text, "a body of the expected size");
        memcpy(text, body, len);
        text[len] = '\0';
        int p, i;
        CHECK(sscanf(text, "%d-%d", &p, &i) == 2, text);
        CHECK(p >= 0 && p < THREADS && i >= 0 && i < PER_THREAD, text);
        CHECK(!seen[p][i], "no message twice");
        CHECK(i > last[p], "each publisher's messages in order");
        seen[p][i] = 1;
        last[p] = i;
        taken++;
        OK(syncmq_delivery_ack(d));
    }
    CHECK(taken == THREADS * PER_THREAD, "every message taken");
    syncmq_subscriber_close(s);
    OK(syncmq_queue_close(q));
    printf("threads: ok, %d messages\n", taken);
    return 0;
}
