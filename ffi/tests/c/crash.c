/* A child publishes in a loop and prints the number of each message whose
 * publish returned SYNCMQ_OK, one line each, flushed. The parent kills it
 * with SIGKILL after a random number of lines (so at a random moment of a
 * publish), reopens the queue and checks that every printed message is
 * there: a publish that returned 0 is durable.
 * Usage: crash DIR [SEED] */
#include <signal.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

#define CONFIG "{\"topics\":[{\"name\":\"t\",\"subscribers\":[\"s\"]}]}"
#define MAX_MESSAGES 100000

static void child(const char *dir, int out) {
    CHECK(dup2(out, STDOUT_FILENO) >= 0, "dup2");
    syncmq_queue *q;
    OK(syncmq_queue_open(dir, CONFIG, &q));
    char body[32];
    for (int i = 0; i < MAX_MESSAGES; i++) {
        int n = snprintf(body, sizeof body, "%d", i);
        OK(syncmq_queue_publish(q, "t", (const uint8_t *)body, (size_t)n));
        printf("%d\n", i);
        fflush(stdout);
    }
    /* Never reached in the test: the parent kills it first. */
    exit(3);
}

int main(int argc, char **argv) {
    CHECK(argc == 2 || argc == 3, "usage: crash DIR [SEED]");
    unsigned seed = argc == 3 ? (unsigned)strtoul(argv[2], NULL, 10)
                              : (unsigned)time(NULL) ^ (unsigned)getpid();
    srand(seed);
    int kill_after = 1 + rand() % 300;
    printf("crash: seed %u, killing after %d lines\n", seed, kill_after);
    fflush(stdout);

    int fds[2];
    CHECK(pipe(fds) == 0, "pipe");
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        close(fds[0]);
        child(argv[1], fds[1]);
    }
    close(fds[1]);
    FILE *in = fdopen(fds[0], "r");
    CHECK(in != NULL, "fdopen");

    static unsigned char printed[MAX_MESSAGES];
    int lines = 0, killed = 0;
    char line[64];
    while (fgets(line, sizeof line, in) != NULL) {
        if (strchr(line, '\n') == NULL) {
            break; /* a torn last line: its publish may not have returned */
        }
        int id = atoi(line);
        CHECK(id >= 0 && id < MAX_MESSAGES, "an id in range");
        printed[id] = 1;
        lines++;
        if (!killed && lines == kill_after) {
            CHECK(kill(pid, SIGKILL) == 0, "kill -9 the child");
            killed = 1;
        }
    }
    fclose(in);
    int status;
    CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "the child died by SIGKILL");
    CHECK(lines >= kill_after, "the child printed until it was killed");

    syncmq_queue *q;
    OK(syncmq_queue_open(argv[1], CONFIG, &q));
    syncmq_subscriber *s;
    OK(syncmq_subscriber_open(q, "t", "s", &s));
    static unsigned char stored[MAX_MESSAGES];
    int found = 0;
    for (;;) {
        syncmq_delivery *d;
        int rc = syncmq_subscriber_next(s, 0, &d);
        if (rc == SYNCMQ_E_TIMEOUT) {
            break;
        }
        OK(rc);
        size_t len;
        const uint8_t *body = syncmq_delivery_body(d, &len);
        char text[32];
        CHECK(len > 0 && len < sizeof text, "a body of the expected size");
        memcpy(text, body, len);
        text[len] = '\0';
        int id = atoi(text);
        CHECK(id >= 0 && id < MAX_MESSAGES, "a stored id in range");
        stored[id] = 1;
        found++;
        OK(syncmq_delivery_ack(d));
    }
    for (int id = 0; id < MAX_MESSAGES; id++) {
        if (printed[id] && !stored[id]) {
            fprintf(stderr, "crash: FAILED: message %d was published (0 returned) but is lost\n", id);
            return 1;
        }
    }
    syncmq_subscriber_close(s);
    OK(syncmq_queue_close(q));
    printf("crash: ok, %d printed, %d stored\n", lines, found);
    return 0;
}
