/* The readiness fd of a channel output: not readable while the channel is
 * empty, readable after a send from another thread, a poll()-driven loop
 * drains N messages sent by another thread, after which it is not
 * readable; then closing the adapter stops the ready thread (the test's
 * time limit catches a close that hangs). Usage: channel_poll */
#include <dirent.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "check.h"

#define N 300
/* Only a bound for a wake-up that never comes: a failure, not a wait. */
#define PATIENCE_MS 20000

static syncmq_adapter *a;

static void *send_one(void *arg) {
    (void)arg;
    OK(syncmq_channel_send_bytes(a, "c", (const uint8_t *)"first", 5));
    return NULL;
}

static void *send_many(void *arg) {
    (void)arg;
    char body[16];
    for (int i = 0; i < N; i++) {
        int n = snprintf(body, sizeof body, "%d", i);
        OK(syncmq_channel_send_bytes(a, "c", (const uint8_t *)body, (size_t)n));
    }
    return NULL;
}

/* How many of this process's threads are ready threads (the kernel keeps
 * the first 15 bytes of a name: "syncmq-ffi-read"). */
static int ready_threads(void) {
    DIR *tasks = opendir("/proc/self/task");
    CHECK(tasks != NULL, "opendir /proc/self/task");
    int count = 0;
    struct dirent *e;
    while ((e = readdir(tasks)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        char path[300], comm[32] = {0};
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL) {
            continue; /* a thread that just ended */
        }
        if (fgets(comm, sizeof comm, f) != NULL && strncmp(comm, "syncmq-ffi-read", 15) == 0) {
            count++;
        }
        fclose(f);
    }
    closedir(tasks);
    return count;
}

/* Whether ready_threads() becomes `want`, looking until PATIENCE_MS: a
 * thread names itself as it starts, and the kernel drops a joined thread
 * from /proc a moment after the join returns. */
static int ready_threads_become(int want) {
    for (int i = 0; i < PATIENCE_MS; i++) {
        if (ready_threads() == want) {
            return 1;
        }
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    return 0;
}

int main(void) {
    OK(syncmq_adapter_open("simple", "{}", &a));
    /* A small buffer: the sender meets back-pressure along the way. */
    OK(syncmq_adapter_new_channel(a, "{\"name\":\"c\",\"mode\":\"Both\",\"buffer\":8}"));
    OK(syncmq_adapter_new_channel(a, "{\"name\":\"in\",\"mode\":\"Input\"}"));
    CHECK(syncmq_channel_fd(a, "in") == SYNCMQ_E_WRONG_MODE, "no fd for an input channel");
    int fd = syncmq_channel_fd(a, "c");
    CHECK(fd >= 0, "an fd");
    CHECK(syncmq_channel_fd(a, "c") == fd, "the same fd each time");
    CHECK(!readable(fd, 0), "not readable on an empty channel");
    CHECK(ready_threads_become(1), "one ready thread for the watched channel");

    pthread_t t;
    CHECK(pthread_create(&t, NULL, send_one, NULL) == 0, "pthread_create");
    CHECK(readable(fd, PATIENCE_MS), "readable after a send from another thread");
    CHECK(pthread_join(t, NULL) == 0, "pthread_join");
    CHECK(readable(fd, 0), "still readable: nothing was taken");
    syncmq_delivery *d;
    OK(syncmq_channel_receive(a, "c", 0, &d));
    OK(syncmq_delivery_ack(d));
    CHECK(!readable(fd, 0), "not readable once the only message is taken");
    CHECK(syncmq_channel_receive(a, "c", 0, &d) == SYNCMQ_E_TIMEOUT, "nothing left");

    /* The consumer waits only in poll(), and takes with a timeout of 0. */
    CHECK(pthread_create(&t, NULL, send_many, NULL) == 0, "pthread_create");
    int taken = 0, wakeups = 0;
    while (taken < N) {
        CHECK(readable(fd, PATIENCE_MS), "a wake-up for each message still to come");
        wakeups++;
        for (;;) {
            int rc = syncmq_channel_receive(a, "c", 0, &d);
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

    /* A blocking receive on a watched channel takes from the slot too. */
    OK(syncmq_channel_send_bytes(a, "c", (const uint8_t *)"last", 4));
    OK(syncmq_channel_receive(a, "c", PATIENCE_MS, &d));
    OK(syncmq_delivery_ack(d));

    /* One more left in the slot: close drops it and stops the thread. */
    OK(syncmq_channel_send_bytes(a, "c", (const uint8_t *)"held", 4));
    CHECK(readable(fd, PATIENCE_MS), "readable: the ready thread holds it");
    OK(syncmq_adapter_close(a));
    CHECK(ready_threads_become(0), "the ready thread stopped with the adapter");
    printf("channel_poll: ok, %d messages in %d wake-ups\n", taken, wakeups);
    return 0;
}
