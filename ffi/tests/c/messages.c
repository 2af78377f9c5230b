/* Whole messages: build them field by field, publish three as one batch,
 * read every field back from the deliveries; a NULL element and a negative
 * time to live are refused, naming what was wrong, and store nothing.
 * Usage: messages DIR */
#include <string.h>

#include "check.h"

static syncmq_message *message(const char *body, const char *key, uint8_t priority) {
    syncmq_message *m = NULL;
    OK(syncmq_message_new((const uint8_t *)body, strlen(body), &m));
    CHECK(m != NULL, "a message handle");
    OK(syncmq_message_set_key(m, key));
    OK(syncmq_message_set_priority(m, priority));
    OK(syncmq_message_set_header(m, "trace", body));
    OK(syncmq_message_set_routing_key(m, "orders.placed"));
    OK(syncmq_message_set_ttl_ms(m, 60000));
    return m;
}

int main(int argc, char **argv) {
    CHECK(argc == 2, "usage: messages DIR");
    syncmq_queue *q = NULL;
    OK(syncmq_queue_open(argv[1],
                         "{\"topics\":[{\"name\":\"orders\",\"subscribers\":[\"billing\"],"
                         "\"priorities\":3}]}",
                         &q));

    syncmq_message *batch[3] = {message("low", "k-low", 2), message("high", "k-high", 0),
                                message("mid", "k-mid", 1)};

    /* Refusals first: nothing of a refused batch is stored. */
    const syncmq_message *holed[3] = {batch[0], NULL, batch[2]};
    CHECK(syncmq_queue_publish_messages(q, "orders", holed, 3) == SYNCMQ_E_INVALID_ARGUMENT,
          "a NULL element is refused");
    CHECK(strstr(syncmq_last_error(), "messages[1]") != NULL, "the error names the element");
    CHECK(syncmq_queue_publish_messages(q, "orders", NULL, 2) == SYNCMQ_E_INVALID_ARGUMENT,
          "a NULL array is refused");
    CHECK(syncmq_message_set_ttl_ms(batch[0], -5) == SYNCMQ_E_INVALID_ARGUMENT,
          "a negative ttl is refused");
    CHECK(strstr(syncmq_last_error(), "ttl_ms") != NULL, "the error names ttl_ms");
    CHECK(syncmq_message_set_key(batch[0], "") == SYNCMQ_E_INVALID_ARGUMENT,
          "an empty key is refused");
    CHECK(syncmq_message_set_header(batch[0], "h", NULL) == SYNCMQ_E_INVALID_ARGUMENT,
          "a NULL header value is refused");
    CHECK(strstr(syncmq_last_error(), "value") != NULL, "the error names value");
    OK(syncmq_queue_publish_messages(q, "orders", NULL, 0));

    OK(syncmq_queue_publish_messages(q, "orders", (const syncmq_message *const *)batch, 3));
    for (int i = 0; i < 3; i++) {
        syncmq_message_free(batch[i]);
    }
    syncmq_message_free(NULL);

    syncmq_subscriber *s = NULL;
    OK(syncmq_subscriber_open(q, "orders", "billing", &s));
    /* Priority 0 first, then 1, then 2. */
    const char *order[3] = {"high", "mid", "low"};
    for (int i = 0; i < 3; i++) {
        syncmq_delivery *d = NULL;
        OK(syncmq_subscriber_next(s, 1000, &d));
        size_t len = 0;
        const uint8_t *body = syncmq_delivery_body(d, &len);
        CHECK(len == strlen(order[i]) && memcmp(body, order[i], len) == 0, order[i]);
        CHECK(syncmq_delivery_priority(d) == i, "the priority travelled");
        char key[16];
        snprintf(key, sizeof key, "k-%s", order[i]);
        CHECK(syncmq_delivery_key(d) != NULL && strcmp(syncmq_delivery_key(d), key) == 0,
              "the key travelled");
        const char *trace = syncmq_delivery_header(d, "trace");
        CHECK(trace != NULL && strcmp(trace, order[i]) == 0, "the header travelled");
        OK(syncmq_delivery_ack(d));
    }
    syncmq_delivery *none = NULL;
    CHECK(syncmq_subscriber_next(s, 0, &none) == SYNCMQ_E_TIMEOUT, "nothing else was stored");
    syncmq_subscriber_close(s);
    OK(syncmq_queue_close(q));
    printf("messages: ok\n");
    return 0;
}
