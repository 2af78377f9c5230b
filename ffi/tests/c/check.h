/* Shared by the C test programs: CHECK(cond, what) prints what failed,
 * with syncmq_last_error(), and exits non-zero. */
#ifndef SYNCMQ_TEST_CHECK_H
#define SYNCMQ_TEST_CHECK_H

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>

#include "syncmq.h"

#define CHECK(cond, what)                                                          \
    do {                                                                           \
        if (!(cond)) {                                                             \
            fprintf(stderr, "%s:%d: FAILED: %s (%s); last error: \"%s\"\n",        \
                    __FILE__, __LINE__, what, #cond, syncmq_last_error());         \
            exit(1);                                                               \
        }                                                                          \
    } while (0)

/* A call that must return SYNCMQ_OK. */
#define OK(call)                                                                   \
    do {                                                                           \
        int rc_ = (call);                                                          \
        if (rc_ != SYNCMQ_OK) {                                                    \
            fprintf(stderr, "%s:%d: FAILED: %s returned %d (%s); last error: "     \
                    "\"%s\"\n", __FILE__, __LINE__, #call, rc_,                    \
                    syncmq_strerror(rc_), syncmq_last_error());                    \
            exit(1);                                                               \
        }                                                                          \
    } while (0)

/* poll() on fd for up to timeout_ms: 1 when readable, 0 when not. */
static inline int readable(int fd, int timeout_ms) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int n = poll(&p, 1, timeout_ms);
    CHECK(n >= 0, "poll");
    CHECK((p.revents & (POLLERR | POLLNVAL)) == 0, "a valid fd");
    return n == 1 && (p.revents & POLLIN);
}

#endif
