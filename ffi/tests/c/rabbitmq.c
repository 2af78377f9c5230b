/* RabbitMQ from C: a "rabbitmq" adapter channel carries a message with its
 * key and header, and a publisher's publish to that channel's queue (the
 * default exchange) returns once confirmed and arrives there; a mandatory
 * publish no queue takes is refused; pipelined sends with receipts; a
 * polled consumer on an exchange of its own, whose nack is retried and
 * whose fd becomes readable. Usage: rabbitmq URL QUEUE */
#include <string.h>

#include "check.h"

/* Only a bound for a broker that never answers: a failure, not a wait. */
#define PATIENCE_MS 30000

static void body_is(syncmq_delivery *d, const char *want) {
    size_t len = 0;
    const uint8_t *body = syncmq_delivery_body(d, &len);
    CHECK(len == strlen(want) && memcmp(body, want, len) == 0, want);
}

int main(int argc, char **argv) {
    CHECK(argc == 3, "usage: rabbitmq URL QUEUE");
    const char *url = argv[1], *queue = argv[2];
    char config[2048], spec[1024];
    snprintf(config, sizeof config, "{\"urls\":[\"%s\"],\"shuffle\":false}", url);
    snprintf(spec, sizeof spec, "{\"name\":\"%s\",\"mode\":\"Both\"}", queue);

    syncmq_adapter *a = NULL;
    OK(syncmq_adapter_open("rabbitmq", config, &a));
    OK(syncmq_adapter_new_channel(a, spec));
    syncmq_message *m = NULL;
    OK(syncmq_message_new((const uint8_t *)"via-channel", 11, &m));
    OK(syncmq_message_set_key(m, "k-1"));
    OK(syncmq_message_set_header(m, "trace", "t-1"));
    OK(syncmq_channel_send(a, queue, m));
    syncmq_delivery *d = NULL;
    OK(syncmq_channel_receive(a, queue, PATIENCE_MS, &d));
    body_is(d, "via-channel");
    CHECK(strcmp(syncmq_delivery_key(d), "k-1") == 0, "the key crosses the broker");
    CHECK(strcmp(syncmq_delivery_header(d, "trace"), "t-1") == 0, "the header too");
    CHECK(syncmq_delivery_deliveries(d) == 1, "a first delivery");
    OK(syncmq_delivery_ack(d));
    syncmq_message_free(m);

    char pconfig[2048];
    snprintf(pconfig, sizeof pconfig,
             "{\"urls\":[\"%s\"],\"window\":16,\"mandatory\":true,\"confirm_timeout_ms\":%d}", url,
             PATIENCE_MS);
    syncmq_publisher *p = NULL;
    CHECK(syncmq_publisher_open("{\"urls\":[\"amqp://h\"],\"windw\":1}", &p) ==
              SYNCMQ_E_INVALID_ARGUMENT && strstr(syncmq_last_error(), "windw") != NULL,
          "an unknown publisher field is named");
    OK(syncmq_publisher_open(pconfig, &p));
    OK(syncmq_message_new((const uint8_t *)"published", 9, &m));
    CHECK(syncmq_publisher_publish(p, NULL, queue, m) == SYNCMQ_E_INVALID_ARGUMENT &&
              strstr(syncmq_last_error(), "`exchange`") != NULL,
          "a NULL exchange is refused (\"\" is the default one)");
    OK(syncmq_publisher_publish(p, "", queue, m));
    CHECK(syncmq_publisher_publish(p, "", "syncmq-ffi-no-such-queue", m) == SYNCMQ_E_REFUSED,
          "a mandatory message no queue takes is refused");

    /* Pipelined: 100 sends with their receipts outstanding, then the
     * waits; an unroutable one among them fails alone, at its wait. */
    enum { SENDS = 100 };
    syncmq_receipt *receipts[SENDS];
    syncmq_receipt *unroutable = NULL;
    for (int i = 0; i < SENDS; i++) {
        OK(syncmq_publisher_send(p, "", queue, m, &receipts[i]));
        if (i == SENDS / 2) {
            OK(syncmq_publisher_send(p, "", "syncmq-ffi-no-such-queue", m, &unroutable));
        }
    }
    syncmq_receipt *none = receipts[0];
    CHECK(syncmq_publisher_send(p, "", queue, NULL, &none) == SYNCMQ_E_INVALID_ARGUMENT &&
              none == NULL,
          "a NULL message is refused at once, and the out pointer is NULL");
    for (int i = 0; i < SENDS; i++) {
        OK(syncmq_receipt_wait(receipts[i], -1));
    }
    CHECK(syncmq_receipt_wait(unroutable, -1) == SYNCMQ_E_REFUSED,
          "the unroutable send fails at its wait");
    syncmq_message_free(m);
    OK(syncmq_publisher_close(p));

    for (int i = 0; i < 1 + SENDS; i++) {
        OK(syncmq_channel_receive(a, queue, PATIENCE_MS, &d));
        body_is(d, "published");
        OK(syncmq_delivery_ack(d));
    }
    CHECK(syncmq_channel_receive(a, queue, 200, &d) == SYNCMQ_E_TIMEOUT, "nothing else came");
    OK(syncmq_adapter_close(a));

    /* A polled consumer: its own exchange, binding and queue. */
    char cconfig[2048];
    syncmq_consumer *c = NULL;
    snprintf(cconfig, sizeof cconfig, "{\"urls\":[\"%s\"],\"exchange\":\"%s-x\",\"routing_key\":"
             "\"orders\",\"prefech\":8}", url, queue);
    CHECK(syncmq_consumer_open(cconfig, &c) == SYNCMQ_E_INVALID_ARGUMENT &&
              strstr(syncmq_last_error(), "prefech") != NULL && c == NULL,
          "an unknown consumer field is named");
    snprintf(cconfig, sizeof cconfig, "{\"urls\":[\"%s\"],\"exchange\":\"%s-x\",\"routing_key\":"
             "\"orders\",\"queue_type\":\"fast\"}", url, queue);
    CHECK(syncmq_consumer_open(cconfig, &c) == SYNCMQ_E_INVALID_ARGUMENT &&
              strstr(syncmq_last_error(), "queue_type") != NULL,
          "an unknown queue type is named");
    snprintf(cconfig, sizeof cconfig, "{\"urls\":[\"%s\"],\"exchange\":\"%s-x\",\"routing_key\":"
             "\"orders\",\"queue\":\"%s-consumer\",\"concurrency\":4,\"prefetch\":16,"
             "\"connect_timeout_ms\":%d}", url, queue, queue, PATIENCE_MS);
    /* Nothing listens on port 1: the open gives up at its connect timeout. */
    c = (syncmq_consumer *)&cconfig;
    CHECK(syncmq_consumer_open("{\"urls\":[\"amqp://guest:guest@127.0.0.1:1/%2f\"],"
                               "\"exchange\":\"x\",\"routing_key\":\"k\","
                               "\"connect_timeout_ms\":300}",
                               &c) == SYNCMQ_E_TIMEOUT &&
              c == NULL,
          "a broker that never answers within connect_timeout_ms is a timeout");
    OK(syncmq_consumer_open(cconfig, &c));
    CHECK(syncmq_consumer_next(c, 0, &d) == SYNCMQ_E_TIMEOUT, "nothing yet");

    OK(syncmq_publisher_open(pconfig, &p));
    char xname[1024];
    snprintf(xname, sizeof xname, "%s-x", queue);
    for (int i = 0; i < 4; i++) {
        char body[16];
        snprintf(body, sizeof body, "c-%d", i);
        OK(syncmq_message_new((const uint8_t *)body, strlen(body), &m));
        OK(syncmq_publisher_publish(p, xname, "orders", m));
        syncmq_message_free(m);
    }
    /* Four handler threads: all four are with the host at once. */
    syncmq_delivery *held[4];
    int seen = 0;
    for (int i = 0; i < 4; i++) {
        OK(syncmq_consumer_next(c, PATIENCE_MS, &held[i]));
        size_t len = 0;
        const uint8_t *body = syncmq_delivery_body(held[i], &len);
        CHECK(len == 3 && memcmp(body, "c-", 2) == 0, "a consumer delivery");
        seen |= 1 << (body[2] - '0');
    }
    CHECK(seen == 0xF, "each of the four came once");
    /* A nack is a failed handling: the message comes again. */
    size_t len = 0;
    const uint8_t *first = syncmq_delivery_body(held[0], &len);
    char again[4] = {0};
    memcpy(again, first, 3);
    OK(syncmq_delivery_nack(held[0], true));
    for (int i = 1; i < 4; i++) {
        OK(syncmq_delivery_ack(held[i]));
    }
    OK(syncmq_consumer_next(c, PATIENCE_MS, &d));
    body_is(d, again);
    CHECK(syncmq_delivery_deliveries(d) == 2, "retried: it was delivered before");
    OK(syncmq_delivery_ack(d));

    /* The fd: readable once a delivery is ready. */
    int fd = syncmq_consumer_fd(c);
    CHECK(fd >= 0, "a consumer fd");
    OK(syncmq_message_new((const uint8_t *)"by-fd", 5, &m));
    OK(syncmq_publisher_publish(p, xname, "orders", m));
    syncmq_message_free(m);
    CHECK(readable(fd, PATIENCE_MS), "the fd became readable");
    OK(syncmq_consumer_next(c, 0, &d));
    body_is(d, "by-fd");
    OK(syncmq_delivery_ack(d));
    OK(syncmq_publisher_close(p));
    OK(syncmq_consumer_close(c));
    OK(syncmq_consumer_close(NULL));
    printf("rabbitmq: ok\n");
    return 0;
}
