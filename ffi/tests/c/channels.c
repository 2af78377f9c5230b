/* Channels from C: a simple adapter carries 100 messages with their keys
 * and headers intact; a durable adapter (in DIR) round-trips one and a
 * nack with requeue brings it back; the errors name what was wrong
 * (an unknown kind, a bad config field, an unknown channel, a receive
 * with nothing to take). Usage: channels DIR */
#include <string.h>

#include "check.h"

#define N 100

/* `call` returns `code` and the last error mentions `needle`. */
#define FAILS(call, code, needle)                                                  \
    do {                                                                           \
        int rc_ = (call);                                                          \
        const char *e_ = syncmq_last_error();                                      \
        if (rc_ != (code) || strstr(e_, (needle)) == NULL) {                       \
            fprintf(stderr, "%s:%d: FAILED: %s returned %d (want %d), last error " \
                    "\"%s\" (want it to mention \"%s\")\n", __FILE__, __LINE__,    \
                    #call, rc_, (code), e_, (needle));                             \
            exit(1);                                                               \
        }                                                                          \
    } while (0)

static void body_is(syncmq_delivery *d, const char *want) {
    size_t len = 0;
    const uint8_t *body = syncmq_delivery_body(d, &len);
    CHECK(body != NULL || len == 0, "a body");
    CHECK(len == strlen(want) && memcmp(body, want, len) == 0, want);
}

static void simple_carries_every_field(void) {
    syncmq_adapter *a = NULL;
    OK(syncmq_adapter_open("simple", NULL, &a));
    OK(syncmq_adapter_new_channel(a, "{\"name\":\"orders\",\"mode\":\"Both\",\"buffer\":256}"));
    char text[32];
    for (int i = 0; i < N; i++) {
        snprintf(text, sizeof text, "order-%d", i);
        syncmq_message *m = NULL;
        OK(syncmq_message_new((const uint8_t *)text, strlen(text), &m));
        OK(syncmq_message_set_key(m, text));
        OK(syncmq_message_set_header(m, "trace", text));
        OK(syncmq_message_set_priority(m, 0));
        OK(syncmq_channel_send(a, "orders", m));
        syncmq_message_free(m);
    }
    for (int i = 0; i < N; i++) {
        syncmq_delivery *d = NULL;
        OK(syncmq_channel_receive(a, "orders", 5000, &d));
        snprintf(text, sizeof text, "order-%d", i);
        body_is(d, text);
        const char *key = syncmq_delivery_key(d);
        CHECK(key != NULL && strcmp(key, text) == 0, "the key, in order");
        const char *trace = syncmq_delivery_header(d, "trace");
        CHECK(trace != NULL && strcmp(trace, text) == 0, "the header");
        CHECK(syncmq_delivery_header(d, "missing") == NULL, "no such header");
        CHECK(syncmq_delivery_priority(d) == 0, "the priority");
        CHECK(syncmq_delivery_deliveries(d) == 1, "delivered once");
        OK(syncmq_delivery_ack(d));
    }
    syncmq_delivery *d = (syncmq_delivery *)&d;
    CHECK(syncmq_channel_receive(a, "orders", 0, &d) == SYNCMQ_E_TIMEOUT, "empty: timeout 0");
    CHECK(d == NULL, "out set to NULL on a timeout");
    CHECK(syncmq_channel_receive(a, "orders", 20, &d) == SYNCMQ_E_TIMEOUT, "empty: timeout 20");

    OK(syncmq_channel_send_bytes(a, "orders", (const uint8_t *)"bytes", 5));
    OK(syncmq_channel_receive(a, "orders", -1, &d));
    body_is(d, "bytes");
    CHECK(syncmq_delivery_key(d) == NULL, "send_bytes: no key");
    OK(syncmq_delivery_ack(d));
    OK(syncmq_adapter_close(a));
}

static void durable_round_trip_and_requeue(const char *dir) {
    char config[4096];
    snprintf(config, sizeof config, "{\"path\":\"%s\",\"durability\":\"buffered\"}", dir);
    syncmq_adapter *a = NULL;
    OK(syncmq_adapter_open("durable", config, &a));
    OK(syncmq_adapter_new_channel(a, "{\"name\":\"jobs\",\"mode\":\"Both\"}"));
    syncmq_message *m = NULL;
    OK(syncmq_message_new((const uint8_t *)"job-1", 5, &m));
    OK(syncmq_message_set_key(m, "k1"));
    OK(syncmq_message_set_header(m, "attempt", "first"));
    OK(syncmq_channel_send(a, "jobs", m));
    syncmq_message_free(m);

    syncmq_delivery *d = NULL;
    OK(syncmq_channel_receive(a, "jobs", 10000, &d));
    body_is(d, "job-1");
    CHECK(strcmp(syncmq_delivery_key(d), "k1") == 0, "the key survives the disk");
    CHECK(strcmp(syncmq_delivery_header(d, "attempt"), "first") == 0, "the header too");
    CHECK(syncmq_delivery_deliveries(d) == 1, "a first delivery");
    OK(syncmq_delivery_nack(d, true));

    OK(syncmq_channel_receive(a, "jobs", 10000, &d));
    body_is(d, "job-1");
    CHECK(syncmq_delivery_deliveries(d) == 2, "a nack with requeue comes back, redelivered");
    OK(syncmq_delivery_ack(d));
    CHECK(syncmq_channel_receive(a, "jobs", 0, &d) == SYNCMQ_E_TIMEOUT, "acked: gone");

    /* An output-only channel refuses sends. */
    OK(syncmq_adapter_new_channel(a, "{\"name\":\"in\",\"mode\":\"Output\"}"));
    FAILS(syncmq_channel_send_bytes(a, "in", (const uint8_t *)"x", 1), SYNCMQ_E_WRONG_MODE,
          "input");
    OK(syncmq_adapter_close(a));
}

static void errors_name_the_problem(void) {
    syncmq_adapter *a = (syncmq_adapter *)&a;
    FAILS(syncmq_adapter_open("kafka", "{}", &a), SYNCMQ_E_INVALID_ARGUMENT, "`kind`");
    CHECK(a == NULL, "out set to NULL on failure");
    CHECK(strstr(syncmq_last_error(), "durable") != NULL, "the kinds are listed");
    FAILS(syncmq_adapter_open(NULL, "{}", &a), SYNCMQ_E_INVALID_ARGUMENT, "`kind`");
    FAILS(syncmq_adapter_open("simple", "{}", NULL), SYNCMQ_E_INVALID_ARGUMENT, "`out`");
    FAILS(syncmq_adapter_open("simple", "{\"bufer\":1}", &a), SYNCMQ_E_INVALID_ARGUMENT,
          "bufer");
    FAILS(syncmq_adapter_open("durable", "{\"path\":\"/tmp/x\",\"durabilty\":\"buffered\"}", &a),
          SYNCMQ_E_INVALID_ARGUMENT, "durabilty");
    FAILS(syncmq_adapter_open("durable", "{}", &a), SYNCMQ_E_INVALID_ARGUMENT, "path");
    FAILS(syncmq_adapter_open("durable", NULL, &a), SYNCMQ_E_INVALID_ARGUMENT, "config_json");
    FAILS(syncmq_adapter_open("rabbitmq", "{\"urls\":[]}", &a), SYNCMQ_E_INVALID_ARGUMENT,
          "urls");
    FAILS(syncmq_adapter_open("rabbitmq", "{\"url\":\"amqp://x\"}", &a),
          SYNCMQ_E_INVALID_ARGUMENT, "url");

    OK(syncmq_adapter_open("simple", "{}", &a));
    FAILS(syncmq_adapter_new_channel(a, "{\"name\":\"c\",\"mode\":\"Sideways\"}"),
          SYNCMQ_E_INVALID_ARGUMENT, "Sideways");
    FAILS(syncmq_adapter_new_channel(a, "{\"name\":\"c\",\"mode\":\"Both\",\"bufer\":1}"),
          SYNCMQ_E_INVALID_ARGUMENT, "bufer");
    FAILS(syncmq_adapter_new_channel(a, "{\"name\":\"c\",\"mode\":\"Both\",\"dedupe\":true}"),
          SYNCMQ_E_INVALID_ARGUMENT, "dedupe");
    OK(syncmq_adapter_new_channel(a, "{\"name\":\"c\",\"mode\":\"Both\"}"));
    FAILS(syncmq_adapter_new_channel(a, "{\"name\":\"c\",\"mode\":\"Both\"}"),
          SYNCMQ_E_ALREADY_EXISTS, "c");
    syncmq_delivery *d = NULL;
    FAILS(syncmq_channel_receive(a, "nope", 0, &d), SYNCMQ_E_NOT_FOUND, "nope");
    FAILS(syncmq_channel_send_bytes(a, "nope", (const uint8_t *)"x", 1), SYNCMQ_E_NOT_FOUND,
          "nope");
    FAILS(syncmq_channel_fd(a, "nope"), SYNCMQ_E_NOT_FOUND, "nope");
    FAILS(syncmq_channel_receive(a, "c", 0, &d), SYNCMQ_E_TIMEOUT, "c");
    FAILS(syncmq_channel_receive(a, NULL, 0, &d), SYNCMQ_E_INVALID_ARGUMENT, "`channel`");
    FAILS(syncmq_channel_send(a, "c", NULL), SYNCMQ_E_INVALID_ARGUMENT, "`m`");
    FAILS(syncmq_channel_send_bytes(a, "c", NULL, 3), SYNCMQ_E_INVALID_ARGUMENT, "`body`");
    FAILS(syncmq_channel_send_bytes(NULL, "c", (const uint8_t *)"x", 1),
          SYNCMQ_E_INVALID_ARGUMENT, "`a`");
    OK(syncmq_adapter_close(a));
    OK(syncmq_adapter_close(NULL));
}

int main(int argc, char **argv) {
    CHECK(argc == 2, "usage: channels DIR");
    simple_carries_every_field();
    durable_round_trip_and_requeue(argv[1]);
    errors_name_the_problem();
    printf("channels: ok\n");
    return 0;
}
