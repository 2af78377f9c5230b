/* The readiness fd: not readable on an empty queue, readable after a
 * publish from another thread, and a poll()-driven consumer drains N
 * messages published by another thread, after which the fd is not
 * readable; after the queue closes it is readable and next says CLOSED.
 * Usage: poll DIR */
#include <pthread.h>
#include <string.h>

#include "check.h"

/* Durable publishes (an fsync each), so that the consumer meets them as
 * they come, over many wake-ups. */
#define N 300
/* Only a bound for a wake-up that never comes: a failure, not a wait. */
#define PATIENCE_MS 20000

static syncmq_queue *q;

static void *publish_one(void *arg) {
    (void)arg;
    OK(syncmq_queue_publish(q, "t", (const uint8_t *)"first", 5));
    return NULL;
}

static void *publish_many(void *arg) {
    (void)arg;
    char body[16];
    for (int i = 0; i < N; i++) {
        int n = snprintf(body, sizeof body, "%d", i);
        OK(syncmq_queue_publish(q, "t", (const uint8_t *)body, (size_t)n));
    }
    return NULL;
}

int main(int argc, char **argv) {
    CHECK(argc == 2, "usage: poll DIR");
    OK(syncmq_queue_open(
        argv[1], "{\"topics\":[{\"name\":\"t\",\"subscribers\":[\"s\"]}]}",
        &q));
    syncmq_subscriber *s;
    OK(syncmq_subscriber_open(q, "t", "s", &s));
    int fd = syncmq_subscriber_fd(s);
    CHECK(fd >= 0, "an fd");
    CHECK(syncmq_subscriber_fd(s) == fd, "the same fd each time");
    CHECK(!readable(fd, 0), "not readable on an empty queue");

    pthread_t t;
    CHECK(pthread_create(&t, NULL, publish_one, NULL) == 0, "pthread_create");
    CHECK(readable(fd, PATIENCE_MS), "readable after a publish from another thread");
    CHECK(pthread_join(t, NULL) == 0, "pthread_join");
    CHECK(readable(fd, 0), "still readable: nothing was taken");
    syncmq_delivery *d;
    OK(syncmq_subscriber_next(s, 0, &d));
    OK(syncmq_delivery_ack(d));
    CHECK(!readable(fd, 0), "not readable once the only message is taken");

    /* The consumer waits only in poll(), and takes with a timeout of 0. */
    CHECK(pthread_create(&t, NULL, publish_many, NULL) == 0, "pthread_create");
    int taken = 0, wakeups = 0;
    while (taken < N) {
        CHECK(readable(fd, PATIENCE_MS), "a wake-up for each message still to come");
        wakeups++;
        for (;;) {
            int rc = syncmq_subscriber_next(s, 0, &d);
            if (rc == SYNCMQ_E_TIMEOUT) {
                break;
            }
            OK(rc);
            size_t len;
            const uint8_t *body = syncmq_delivery_body(d, &len);
            char text[16];
            CHECK(len > 0 && len < sizeof text, "a body");
            memcpy(text, body, len);
            text[len] = '\0';
            CHECK(atoi(text) == taken, "in order");
            taken++;
            OK(syncmq_delivery_ack(d));
        }
    }
    CHECK(pthread_join(t, NULL) == 0, "pthread_join");
    CHECK(!readable(fd, 0), "not readable once drained");

    /* A message freed unsettled is back: readable again. */
    OK(syncmq_queue_publish(q, "t", (const uint8_t *)"again", 5));
    OK(syncmq_subscriber_next(s, 0, &d));
    CHECK(!readable(fd, 0), "not readable while the message is in flight");
    syncmq_delivery_free(d);
    CHECK(readable(fd, 0), "readable when the freed message is back");
    OK(syncmq_subscriber_next(s, 0, &d));
    OK(syncmq_delivery_ack(d));

    OK(syncmq_queue_close(q));
    CHECK(readable(fd, 0), "readable once the queue closed");
    CHECK(syncmq_subscriber_next(s, 0, &d) == SYNCMQ_E_CLOSED, "next says closed");
    CHECK(readable(fd, 0), "still readable: closed stays closed");
    syncmq_subscriber_close(s);
    printf("poll: ok, %d messages in %d wake-ups\n", taken, wakeups);
    return 0;
}
