/* Every error path returns its code, and syncmq_last_error() names what was
 * wrong. Usage: errors DIR */
#include <string.h>

#include "check.h"

#define CONFIG "{\"topics\":[{\"name\":\"t\",\"subscribers\":[\"s\"]}]}"

/* `call` returns `code` and the last error mentions `needle`. */
#define FAILS(call, code, needle)                                                  \
    do {                                                                           \
        int rc_ = (call);                                                          \
        const char *e_ = syncmq_last_error();                                      \
        if (rc_ != (code) || e_ == NULL || strstr(e_, (needle)) == NULL) {         \
            fprintf(stderr, "%s:%d: FAILED: %s returned %d (want %d), last error " \
                    "\"%s\" (want it to mention \"%s\")\n", __FILE__, __LINE__,    \
                    #call, rc_, (code), e_ ? e_ : "(NULL)", (needle));             \
            exit(1);                                                               \
        }                                                                          \
    } while (0)

int main(int argc, char **argv) {
    CHECK(argc == 2, "usage: errors DIR");
    const char *dir = argv[1];
    syncmq_queue *q = (syncmq_queue *)&q; /* not NULL: a failure must reset it */

    CHECK(strcmp(syncmq_last_error(), "") == 0, "no error before any call");
    FAILS(syncmq_queue_open(NULL, CONFIG, &q), SYNCMQ_E_INVALID_ARGUMENT, "`path`");
    CHECK(q == NULL, "out set to NULL on failure");
    FAILS(syncmq_queue_open(dir, CONFIG, NULL), SYNCMQ_E_INVALID_ARGUMENT, "`out`");
    FAILS(syncmq_queue_open("", CONFIG, &q), SYNCMQ_E_INVALID_ARGUMENT, "empty");
    FAILS(syncmq_queue_open("\xff\xfe", CONFIG, &q), SYNCMQ_E_INVALID_ARGUMENT, "UTF-8");
    FAILS(syncmq_queue_open(dir, NULL, &q), SYNCMQ_E_INVALID_ARGUMENT, "`config_json`");
    FAILS(syncmq_queue_open(dir, "{\"topicz\":[]}", &q), SYNCMQ_E_INVALID_ARGUMENT, "topicz");
    FAILS(syncmq_queue_open(dir, "{\"topics\":[{\"name\":\"t\",\"subscriberz\":[]}]}", &q),
          SYNCMQ_E_INVALID_ARGUMENT, "subscriberz");
    FAILS(syncmq_queue_open(dir, "{\"topics\":", &q), SYNCMQ_E_INVALID_ARGUMENT, "config_json");
    FAILS(syncmq_queue_open(dir, "{\"topics\":[{\"name\":\"\",\"subscribers\":[\"s\"]}]}", &q),
          SYNCMQ_E_INVALID_ARGUMENT, "topics[0]");

    OK(syncmq_queue_open(dir, CONFIG, &q));
    CHECK(strcmp(syncmq_last_error(), "") == 0, "a call that succeeds clears the error");
    syncmq_queue *second = NULL;
    FAILS(syncmq_queue_open(dir, CONFIG, &second), SYNCMQ_E_STORAGE, "");
    CHECK(second == NULL, "no second handle on an open directory");

    const uint8_t *body = (const uint8_t *)"x";
    FAILS(syncmq_queue_publish(NULL, "t", body, 1), SYNCMQ_E_INVALID_ARGUMENT, "`q`");
    FAILS(syncmq_queue_publish(q, NULL, body, 1), SYNCMQ_E_INVALID_ARGUMENT, "`topic`");
    FAILS(syncmq_queue_publish(q, "\xc3\x28", body, 1), SYNCMQ_E_INVALID_ARGUMENT, "`topic`");
    FAILS(syncmq_queue_publish(q, "", body, 1), SYNCMQ_E_INVALID_ARGUMENT, "`topic`: is empty");
    FAILS(syncmq_queue_publish(q, "nope", body, 1), SYNCMQ_E_NOT_FOUND, "nope");
    FAILS(syncmq_queue_publish(q, "t", NULL, 3), SYNCMQ_E_INVALID_ARGUMENT, "`body`");
    OK(syncmq_queue_publish(q, "t", NULL, 0)); /* an empty body may be NULL */
    FAILS(syncmq_queue_publish_message(q, "t", body, 1, "\xff", 0, -1),
          SYNCMQ_E_INVALID_ARGUMENT, "`key`");

    syncmq_subscriber *s = (syncmq_subscriber *)&s;
    FAILS(syncmq_subscriber_open(q, "nope", "s", &s), SYNCMQ_E_NOT_FOUND, "nope");
    CHECK(s == NULL, "out set to NULL on failure");
    FAILS(syncmq_subscriber_open(q, "t", "nobody", &s), SYNCMQ_E_NOT_FOUND, "nobody");
    FAILS(syncmq_subscriber_open(q, "t", "", &s), SYNCMQ_E_INVALID_ARGUMENT, "`name`");
    FAILS(syncmq_subscriber_open(q, "t", NULL, &s), SYNCMQ_E_INVALID_ARGUMENT, "`name`");
    FAILS(syncmq_subscriber_open(q, "t", "s", NULL), SYNCMQ_E_INVALID_ARGUMENT, "`out`");
    OK(syncmq_subscriber_open(q, "t", "s", &s));
    FAILS(syncmq_subscriber_fd(NULL), SYNCMQ_E_INVALID_ARGUMENT, "`s`");

    syncmq_delivery *d = NULL;
    OK(syncmq_subscriber_next(s, 0, &d)); /* the empty body */
    size_t len = 7;
    CHECK(syncmq_delivery_body(d, &len) != NULL && len == 0, "an empty body");
    CHECK(syncmq_delivery_body(d, NULL) == NULL, "NULL len");
    CHECK(strstr(syncmq_last_error(), "`len`") != NULL, "names len");
    CHECK(syncmq_delivery_body(NULL, &len) == NULL && len == 0, "NULL d");
    CHECK(syncmq_delivery_header(d, NULL) == NULL, "NULL header name");
    CHECK(strstr(syncmq_last_error(), "`name`") != NULL, "names name");
    FAILS(syncmq_delivery_priority(NULL), SYNCMQ_E_INVALID_ARGUMENT, "`d`");
    CHECK(syncmq_delivery_deliveries(NULL) == SYNCMQ_E_INVALID_ARGUMENT, "NULL d");
    OK(syncmq_delivery_ack(d));
    FAILS(syncmq_delivery_ack(NULL), SYNCMQ_E_INVALID_ARGUMENT, "`d`");
    FAILS(syncmq_delivery_nack(NULL, true), SYNCMQ_E_INVALID_ARGUMENT, "`d`");

    d = (syncmq_delivery *)&d;
    FAILS(syncmq_subscriber_next(s, 0, &d), SYNCMQ_E_TIMEOUT, "subscriber `s`");
    CHECK(d == NULL, "no delivery on a timeout");
    FAILS(syncmq_subscriber_next(s, 0, NULL), SYNCMQ_E_INVALID_ARGUMENT, "`out`");

    /* A subscriber outlives its queue: its calls say the queue closed. */
    OK(syncmq_queue_close(q));
    FAILS(syncmq_subscriber_next(s, -1, &d), SYNCMQ_E_CLOSED, "closed");
    syncmq_subscriber_close(s);

    /* Closing and freeing NULL do nothing. */
    OK(syncmq_queue_close(NULL));
    syncmq_subscriber_close(NULL);
    syncmq_delivery_free(NULL);

    int codes[] = {SYNCMQ_OK, SYNCMQ_E_INVALID_ARGUMENT, SYNCMQ_E_NOT_FOUND,
                   SYNCMQ_E_ALREADY_EXISTS, SYNCMQ_E_WRONG_MODE, SYNCMQ_E_CLOSED,
                   SYNCMQ_E_TIMEOUT, SYNCMQ_E_CODEC, SYNCMQ_E_CORRUPT, SYNCMQ_E_IO,
                   SYNCMQ_E_STORAGE, SYNCMQ_E_DISCONNECTED, SYNCMQ_E_BUSY, SYNCMQ_E_REFUSED,
                   SYNCMQ_E_STALE_DELIVERY, SYNCMQ_E_REJECTED, SYNCMQ_E_PANICKED,
                   SYNCMQ_E_BLOCK, SYNCMQ_E_PANIC, SYNCMQ_E_UNKNOWN};
    size_t n = sizeof codes / sizeof codes[0];
    for (size_t i = 0; i < n; i++) {
        const char *text = syncmq_strerror(codes[i]);
        CHECK(text != NULL && text[0] != '\0', "a description for each code");
        CHECK(strcmp(text, "unknown error code") != 0, "a known code is known");
        for (size_t j = 0; j < i; j++) {
            CHECK(codes[i] != codes[j], "distinct codes");
            CHECK(strcmp(text, syncmq_strerror(codes[j])) != 0, "distinct descriptions");
        }
        printf("%4d %s\n", codes[i], text);
    }
    CHECK(strcmp(syncmq_strerror(12345), "unknown error code") == 0, "an unknown code");
    CHECK(strcmp(syncmq_strerror(-1000), "unknown error code") == 0, "an unknown code");
    printf("errors: ok\n");
    return 0;
}
