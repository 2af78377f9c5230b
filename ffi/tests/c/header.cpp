// The header from C++: it compiles with -Wall -Werror, its functions link
// with C linkage (extern "C"), and a few calls behave.
#include <cstdio>
#include <cstring>
#include <string>

#include "syncmq.h"

int main() {
    syncmq_queue *q = nullptr;
    int rc = syncmq_queue_open(nullptr, "{}", &q);
    if (rc != SYNCMQ_E_INVALID_ARGUMENT || q != nullptr) {
        std::fprintf(stderr, "header.cpp: FAILED: open(NULL) returned %d\n", rc);
        return 1;
    }
    std::string error = syncmq_last_error();
    if (error.find("path") == std::string::npos) {
        std::fprintf(stderr, "header.cpp: FAILED: last error \"%s\"\n", error.c_str());
        return 1;
    }
    if (std::strcmp(syncmq_strerror(SYNCMQ_OK), "success") != 0) {
        std::fprintf(stderr, "header.cpp: FAILED: strerror(SYNCMQ_OK)\n");
        return 1;
    }
    std::printf("header.cpp: ok\n");
    return 0;
}
