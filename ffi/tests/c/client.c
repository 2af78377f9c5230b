/* The queue server client from C: publish 3 as one batch, subscribe,
 * receive them in order with their keys, ack two, nack one with requeue
 * and take it again, redelivered; unknown names are NOT_FOUND, an address
 * where nothing answers DISCONNECTED. Usage: client ADDR
 * (the server has topic "orders" with subscriber "billing") */
#include <string.h>

#include "check.h"

#define PATIENCE_MS 20000

static void body_is(syncmq_delivery *d, const char *want) {
    size_t len = 0;
    const uint8_t *body = syncmq_delivery_body(d, &len);
    CHECK(len == strlen(want) && memcmp(body, want, len) == 0, want);
}

int main(int argc, char **argv) {
    CHECK(argc == 2, "usage: client ADDR");
    syncmq_client *c = (syncmq_client *)&c;
    CHECK(syncmq_client_connect("127.0.0.1:1", &c) == SYNCMQ_E_DISCONNECTED,
          "nothing answers on port 1");
    CHECK(c == NULL, "out set to NULL on failure");
    OK(syncmq_client_connect(argv[1], &c));

    const char *bodies[3] = {"o-0", "o-1", "o-2"};
    syncmq_message *batch[3];
    for (int i = 0; i < 3; i++) {
        OK(syncmq_message_new((const uint8_t *)bodies[i], 3, &batch[i]));
        OK(syncmq_message_set_key(batch[i], bodies[i]));
    }
    const syncmq_message *const *messages = (const syncmq_message *const *)batch;
    CHECK(syncmq_client_publish(c, "nope", messages, 3) == SYNCMQ_E_NOT_FOUND,
          "an unknown topic");
    OK(syncmq_client_publish(c, "orders", messages, 3));
    OK(syncmq_client_publish(c, "orders", NULL, 0));
    for (int i = 0; i < 3; i++) {
        syncmq_message_free(batch[i]);
    }

    syncmq_remote_subscriber *s = NULL;
    CHECK(syncmq_client_subscribe(c, "orders", "nobody", &s) == SYNCMQ_E_NOT_FOUND,
          "an unknown subscriber");
    CHECK(s == NULL, "out set to NULL on failure");
    OK(syncmq_client_subscribe(c, "orders", "billing", &s));
    for (int i = 0; i < 3; i++) {
        syncmq_delivery *d = NULL;
        OK(syncmq_remote_subscriber_next(s, PATIENCE_MS, &d));
        body_is(d, bodies[i]);
        CHECK(strcmp(syncmq_delivery_key(d), bodies[i]) == 0, "the key");
        CHECK(syncmq_delivery_deliveries(d) == 1, "a first delivery");
        if (i < 2) {
            OK(syncmq_delivery_ack(d));
        } else {
            OK(syncmq_delivery_nack(d, true));
        }
    }
    syncmq_delivery *d = NULL;
    OK(syncmq_remote_subscriber_next(s, PATIENCE_MS, &d));
    body_is(d, "o-2");
    CHECK(syncmq_delivery_deliveries(d) == 2, "the nacked one came back, redelivered");
    OK(syncmq_delivery_ack(d));
    CHECK(syncmq_remote_subscriber_next(s, 0, &d) == SYNCMQ_E_TIMEOUT, "nothing left");
    CHECK(syncmq_remote_subscriber_next(s, 50, &d) == SYNCMQ_E_TIMEOUT, "nothing comes");
    CHECK(d == NULL, "out set to NULL on a timeout");
    syncmq_remote_subscriber_close(s);
    syncmq_remote_subscriber_close(NULL);
    OK(syncmq_client_close(c));
    OK(syncmq_client_close(NULL));
    printf("client: ok\n");
    return 0;
}
