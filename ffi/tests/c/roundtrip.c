/* Open with a JSON config, publish 3, subscribe, take each, check the
 * bodies, ack, nack with requeue (it comes back, counted), close.
 * Usage: roundtrip DIR */
#include <string.h>

#include "check.h"

static void expect_body(syncmq_delivery *d, const char *want) {
    size_t len = 99;
    const uint8_t *body = syncmq_delivery_body(d, &len);
    CHECK(body != NULL, "a body");
    CHECK(len == strlen(want) && memcmp(body, want, len) == 0, want);
}

int main(int argc, char **argv) {
    CHECK(argc == 2, "usage: roundtrip DIR");
    syncmq_queue *q = NULL;
    OK(syncmq_queue_open(argv[1],
                         "{\"topics\":[{\"name\":\"orders\",\"subscribers\":[\"billing\"]}]}",
                         &q));
    CHECK(q != NULL, "a queue handle");
    const char *bodies[] = {"one", "two", "three"};
    for (int i = 0; i < 3; i++) {
        OK(syncmq_queue_publish(q, "orders", (const uint8_t *)bodies[i], strlen(bodies[i])));
    }
    OK(syncmq_queue_publish_message(q, "orders", (const uint8_t *)"keyed", 5, "k-1", 0, -1));

    syncmq_subscriber *s = NULL;
    OK(syncmq_subscriber_open(q, "orders", "billing", &s));

    syncmq_delivery *d = NULL;
    OK(syncmq_subscriber_next(s, 1000, &d));
    expect_body(d, "one");
    CHECK(syncmq_delivery_deliveries(d) == 1, "first delivery");
    CHECK(syncmq_delivery_priority(d) == 0, "priority 0");
    CHECK(syncmq_delivery_key(d) == NULL, "no key");
    CHECK(syncmq_delivery_header(d, "absent") == NULL, "no header");
    OK(syncmq_delivery_ack(d));

    OK(syncmq_subscriber_next(s, 1000, &d));
    expect_body(d, "two");
    OK(syncmq_delivery_nack(d, true));
    /* Requeued at the front, as delivery 2. */
    OK(syncmq_subscriber_next(s, 1000, &d));
    expect_body(d, "two");
    CHECK(syncmq_delivery_deliveries(d) == 2, "the requeued delivery counts");
    OK(syncmq_delivery_ack(d));

    OK(syncmq_subscriber_next(s, 1000, &d));
    expect_body(d, "three");
    /* Freed unsettled: back at the front at once, not counted. */
    syncmq_delivery_free(d);
    OK(syncmq_subscriber_next(s, 1000, &d));
    expect_body(d, "three");
    CHECK(syncmq_delivery_deliveries(d) == 1, "a freed delivery is not counted");
    OK(syncmq_delivery_ack(d));

    OK(syncmq_subscriber_next(s, 1000, &d));
    expect_body(d, "keyed");
    CHECK(syncmq_delivery_key(d) != NULL && strcmp(syncmq_delivery_key(d), "k-1") == 0,
          "the key");
    /* Kept past its subscriber: settled after the handle is closed, with
     * a publish in between (whose wake-up has no readiness fd to go to). */
    syncmq_subscriber_close(s);
    OK(syncmq_queue_publish(q, "orders", (const uint8_t *)"after", 5));
    OK(syncmq_delivery_ack(d));

    CHECK(syncmq_subscriber_next(NULL, 0, &d) == SYNCMQ_E_INVALID_ARGUMENT, "NULL s");
    OK(syncmq_queue_close(q));
    printf("roundtrip: ok\n");
    return 0;
}
