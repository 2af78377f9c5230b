/* The queue extras: 1,000 pipelined sends with their receipts outstanding,
 * all waited durable, then all consumed in order; a receipt freed unwaited
 * still publishes; the stats as JSON follow the depth; a message past its
 * max_deliveries is dead-lettered, listed as JSON, replayed and consumed
 * again; a binary body is listed as hex and purged; a receipt waited after
 * the queue closed is durable. Usage: extras DIR */
#include <string.h>

#include "check.h"

#define SENDS 1000

/* Whether the JSON `json` contains `needle`; prints the JSON when not. */
static int has(const char *json, const char *needle) {
    if (strstr(json, needle) != NULL) {
        return 1;
    }
    fprintf(stderr, "no %s in %s\n", needle, json);
    return 0;
}

static syncmq_message *message(const void *body, size_t len) {
    syncmq_message *m = NULL;
    OK(syncmq_message_new((const uint8_t *)body, len, &m));
    return m;
}

static void check_depth(syncmq_queue *q, const char *topic, const char *depth) {
    char *json = NULL;
    OK(syncmq_queue_stats_json(q, topic, &json));
    CHECK(json != NULL && has(json, depth), "the stats JSON has the depth");
    syncmq_string_free(json);
}

static void consume(syncmq_subscriber *s, const char *expected) {
    syncmq_delivery *d = NULL;
    OK(syncmq_subscriber_next(s, 1000, &d));
    size_t len = 0;
    const uint8_t *body = syncmq_delivery_body(d, &len);
    CHECK(len == strlen(expected) && memcmp(body, expected, len) == 0, expected);
    OK(syncmq_delivery_ack(d));
}

static void pipelined(syncmq_queue *q, syncmq_subscriber *s) {
    static syncmq_receipt *receipts[SENDS];
    char body[16];
    for (int i = 0; i < SENDS; i++) {
        snprintf(body, sizeof body, "m%d", i);
        syncmq_message *m = message(body, strlen(body));
        OK(syncmq_queue_send(q, "jobs", m, &receipts[i]));
        syncmq_message_free(m);
        CHECK(receipts[i] != NULL, "a receipt");
        CHECK(i == 0 || syncmq_receipt_ticket(receipts[i]) > syncmq_receipt_ticket(receipts[i - 1]),
              "tickets follow the send order");
    }
    /* Visible before any wait. */
    check_depth(q, "jobs", "\"depth\":1000,");
    for (int i = 0; i < SENDS; i++) {
        OK(syncmq_receipt_wait(receipts[i], i % 2 == 0 ? -1 : 5000));
    }

    /* Freed without a wait: still published. */
    syncmq_message *m = message("unwaited", 8);
    syncmq_receipt *r = NULL;
    OK(syncmq_queue_send(q, "jobs", m, &r));
    syncmq_message_free(m);
    syncmq_receipt_free(r);
    syncmq_receipt_free(NULL);
    check_depth(q, "jobs", "\"depth\":1001,");

    char *json = NULL;
    OK(syncmq_subscriber_stats_json(s, &json));
    CHECK(has(json, "\"depth\":1001,") && has(json, "\"subscriber\":\"worker\"") &&
              has(json, "\"topic\":\"jobs\"") && json[0] == '{',
          "the subscriber's stats are one object");
    syncmq_string_free(json);

    for (int i = 0; i < SENDS; i++) {
        snprintf(body, sizeof body, "m%d", i);
        consume(s, body);
    }
    consume(s, "unwaited");
    syncmq_delivery *none = NULL;
    CHECK(syncmq_subscriber_next(s, 0, &none) == SYNCMQ_E_TIMEOUT, "nothing else");
    check_depth(q, "jobs", "\"depth\":0,");
}

static void dead_letters(syncmq_queue *q, syncmq_subscriber *p) {
    OK(syncmq_queue_publish(q, "poison", (const uint8_t *)"bad", 3));
    syncmq_delivery *d = NULL;
    OK(syncmq_subscriber_next(p, 1000, &d));
    /* Its one allowed delivery is used: a requeue dead-letters it. */
    OK(syncmq_delivery_nack(d, true));
    CHECK(syncmq_subscriber_next(p, 0, &d) == SYNCMQ_E_TIMEOUT, "not redelivered");

    char *json = NULL;
    OK(syncmq_queue_stats_json(q, NULL, &json));
    CHECK(json[0] == '[' && has(json, "\"topic\":\"jobs\"") && has(json, "\"topic\":\"poison\"") &&
              has(json, "\"dead_lettered\":1,"),
          "the stats of every topic");
    syncmq_string_free(json);

    OK(syncmq_subscriber_dead_letters_json(p, 10, &json));
    CHECK(has(json, "\"body_utf8\":\"bad\"") && has(json, "\"deliveries\":1") &&
              has(json, "\"position\":") && strstr(json, "body_hex") == NULL,
          "the dead letter is listed");
    syncmq_string_free(json);
    OK(syncmq_subscriber_dead_letters_json(p, 0, &json));
    CHECK(strcmp(json, "[]") == 0, "a limit of 0 lists none");
    syncmq_string_free(json);

    uint64_t count = 99;
    OK(syncmq_subscriber_replay_dead_letters(p, &count));
    CHECK(count == 1, "one dead letter replayed");
    consume(p, "bad");
    OK(syncmq_subscriber_replay_dead_letters(p, NULL));

    /* A body that is not UTF-8 is listed as hex. */
    const uint8_t binary[3] = {0xff, 0x00, 0x1a};
    OK(syncmq_queue_publish(q, "poison", binary, sizeof binary));
    OK(syncmq_subscriber_next(p, 1000, &d));
    OK(syncmq_delivery_nack(d, false));
    OK(syncmq_subscriber_dead_letters_json(p, 10, &json));
    CHECK(has(json, "\"body_hex\":\"ff001a\"") && strstr(json, "body_utf8") == NULL,
          "a binary body is hex");
    syncmq_string_free(json);
    count = 99;
    OK(syncmq_subscriber_purge_dead_letters(p, &count));
    CHECK(count == 1, "one dead letter purged");
    OK(syncmq_subscriber_purge_dead_letters(p, &count));
    CHECK(count == 0, "none left");
    check_depth(q, "poison", "\"dead_lettered\":0,");
}

static void refusals(syncmq_queue *q, syncmq_subscriber *s) {
    syncmq_receipt *r = (syncmq_receipt *)&r;
    CHECK(syncmq_queue_send(q, "jobs", NULL, &r) == SYNCMQ_E_INVALID_ARGUMENT && r == NULL,
          "a NULL message is refused");
    CHECK(strstr(syncmq_last_error(), "`m`") != NULL, "the error names m");
    syncmq_message *m = message("x", 1);
    CHECK(syncmq_queue_send(q, "nope", m, &r) == SYNCMQ_E_NOT_FOUND && r == NULL,
          "an unknown topic is refused");
    syncmq_message_free(m);
    CHECK(syncmq_receipt_wait(NULL, -1) == SYNCMQ_E_INVALID_ARGUMENT, "waiting on NULL");
    CHECK(syncmq_receipt_ticket(NULL) == 0, "the ticket of NULL");
    char *json = (char *)&json;
    CHECK(syncmq_queue_stats_json(q, "nope", &json) == SYNCMQ_E_NOT_FOUND && json == NULL,
          "stats of an unknown topic");
    CHECK(strstr(syncmq_last_error(), "nope") != NULL, "the error names the topic");
    CHECK(syncmq_queue_stats_json(q, "", &json) == SYNCMQ_E_INVALID_ARGUMENT, "an empty topic");
    CHECK(syncmq_subscriber_stats_json(NULL, &json) == SYNCMQ_E_INVALID_ARGUMENT, "a NULL s");
    CHECK(syncmq_subscriber_dead_letters_json(s, 1, NULL) == SYNCMQ_E_INVALID_ARGUMENT,
          "a NULL out");
    CHECK(strstr(syncmq_last_error(), "`out`") != NULL, "the error names out");
    uint64_t count = 99;
    CHECK(syncmq_subscriber_purge_dead_letters(NULL, &count) == SYNCMQ_E_INVALID_ARGUMENT &&
              count == 0,
          "a NULL s, the count zeroed");
    syncmq_string_free(NULL);
}

int main(int argc, char **argv) {
    CHECK(argc == 2, "usage: extras DIR");
    syncmq_queue *q = NULL;
    OK(syncmq_queue_open(argv[1],
                         "{\"topics\":[{\"name\":\"jobs\",\"subscribers\":[\"worker\"]},"
                         "{\"name\":\"poison\",\"subscribers\":[\"p\"],\"max_deliveries\":1}]}",
                         &q));
    syncmq_subscriber *s = NULL;
    syncmq_subscriber *p = NULL;
    OK(syncmq_subscriber_open(q, "jobs", "worker", &s));
    OK(syncmq_subscriber_open(q, "poison", "p", &p));

    pipelined(q, s);
    dead_letters(q, p);
    refusals(q, s);

    /* A receipt outlives its queue: close synced the send. */
    syncmq_message *m = message("last", 4);
    syncmq_receipt *r = NULL;
    OK(syncmq_queue_send(q, "jobs", m, &r));
    syncmq_message_free(m);
    OK(syncmq_queue_close(q));
    OK(syncmq_receipt_wait(r, 0));

    syncmq_subscriber_close(s);
    syncmq_subscriber_close(p);
    printf("extras: ok\n");
    return 0;
}
