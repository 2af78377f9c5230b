/* 4 threads publish 10,000 messages each at once to one queue handle, then
 * one subscriber takes them all: nothing lost, nothing duplicated. Then the
 * same while 2 threads consume from one subscriber handle at once.
 * Usage: threads DIR */
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "check.h"

#define THREADS 4
#define PER_THREAD 10000

#define CONSUMERS 2
#define LIVE_PER_THREAD 2500
/* Only a bound for messages that never come: a failure, not a wait. */
#define PATIENCE_S 60

static syncmq_queue *q;
static unsigned char seen[THREADS][PER_THREAD];

struct publishing {
    const char *topic;
    int p;
    int count;
};

static void *publisher(void *arg) {
    const struct publishing *job = arg;
    char body[32];
    for (int i = 0; i < job->count; i++) {
        int n = snprintf(body, sizeof body, "%d-%d", job->p, i);
        OK(syncmq_queue_publish(q, job->topic, (const uint8_t *)body, (size_t)n));
    }
    return NULL;
}

static void start_publishers(pthread_t *threads, struct publishing *jobs, const char *topic,
                             int count) {
    for (int p = 0; p < THREADS; p++) {
        jobs[p] = (struct publishing){.topic = topic, .p = p, .count = count};
        CHECK(pthread_create(&threads[p], NULL, publisher, &jobs[p]) == 0, "pthread_create");
    }
}

/* The publisher and number of a body "p-i". */
static void parse(syncmq_delivery *d, int *p, int *i, int per_thread) {
    size_t len;
    const uint8_t *body = syncmq_delivery_body(d, &len);
    char text[32];
    CHECK(len < sizeof text, "a body of the expected size");
    memcpy(text, body, len);
    text[len] = '\0';
    CHECK(sscanf(text, "%d-%d", p, i) == 2, text);
    CHECK(*p >= 0 && *p < THREADS && *i >= 0 && *i < per_thread, text);
}

/* Phase 2: consumers sharing one subscriber handle. */
static syncmq_subscriber *shared_sub;
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned char live_seen[THREADS][LIVE_PER_THREAD];
static int live_taken;

static void *consumer(void *arg) {
    (void)arg;
    time_t give_up = time(NULL) + PATIENCE_S;
    for (;;) {
        pthread_mutex_lock(&live_lock);
        int done = live_taken == THREADS * LIVE_PER_THREAD;
        pthread_mutex_unlock(&live_lock);
        if (done) {
            return NULL;
        }
        CHECK(time(NULL) < give_up, "every message taken within the patience bound");
        syncmq_delivery *d;
        int rc = syncmq_subscriber_next(shared_sub, 100, &d);
        if (rc == SYNCMQ_E_TIMEOUT) {
            continue;
        }
        OK(rc);
        int p, i;
        parse(d, &p, &i, LIVE_PER_THREAD);
        pthread_mutex_lock(&live_lock);
        CHECK(!live_seen[p][i], "no message twice across consumers");
        live_seen[p][i] = 1;
        live_taken++;
        pthread_mutex_unlock(&live_lock);
        OK(syncmq_delivery_ack(d));
    }
}

int main(int argc, char **argv) {
    CHECK(argc == 2, "usage: threads DIR");
    OK(syncmq_queue_open(
        argv[1],
        "{\"durability\":\"buffered\",\"topics\":[{\"name\":\"t\",\"subscribers\":[\"s\"]},"
        "{\"name\":\"u\",\"subscribers\":[\"s\"]}]}",
        &q));
    pthread_t threads[THREADS];
    struct publishing jobs[THREADS];
    start_publishers(threads, jobs, "t", PER_THREAD);
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
        int p, i;
        parse(d, &p, &i, PER_THREAD);
        CHECK(!seen[p][i], "no message twice");
        CHECK(i > last[p], "each publisher's messages in order");
        seen[p][i] = 1;
        last[p] = i;
        taken++;
        OK(syncmq_delivery_ack(d));
    }
    CHECK(taken == THREADS * PER_THREAD, "every message taken");
    syncmq_subscriber_close(s);

    OK(syncmq_subscriber_open(q, "u", "s", &shared_sub));
    pthread_t consumers[CONSUMERS];
    for (int c = 0; c < CONSUMERS; c++) {
        CHECK(pthread_create(&consumers[c], NULL, consumer, NULL) == 0, "pthread_create");
    }
    start_publishers(threads, jobs, "u", LIVE_PER_THREAD);
    for (int p = 0; p < THREADS; p++) {
        CHECK(pthread_join(threads[p], NULL) == 0, "pthread_join");
    }
    for (int c = 0; c < CONSUMERS; c++) {
        CHECK(pthread_join(consumers[c], NULL) == 0, "pthread_join");
    }
    syncmq_delivery *extra;
    CHECK(syncmq_subscriber_next(shared_sub, 0, &extra) == SYNCMQ_E_TIMEOUT, "nothing left");
    syncmq_subscriber_close(shared_sub);
    OK(syncmq_queue_close(q));
    printf("threads: ok, %d messages, then %d with %d consumers at once\n", taken, live_taken,
           CONSUMERS);
    return 0;
}
