// An absl::Mutex hot across THREADS threads: each waiter sleeps on its own
// per-thread semaphore, not on the mutex word. `apply_update` is the
// function that locks it. Prints "pid=P", waits for a byte on stdin, runs,
// prints "acquisitions=N".
//
//   absl_mutex THREADS ITERATIONS
#include <absl/synchronization/mutex.h>

#include <cstdio>
#include <cstdlib>
#include <thread>
#include <unistd.h>
#include <vector>

static absl::Mutex ledger_mu;
static long ledger;

__attribute__((noinline)) void apply_update(long n) {
    absl::MutexLock l(&ledger_mu);
    ledger += n;
    for (volatile int k = 0; k < 300; k++) {
    }
}

int main(int argc, char **argv) {
    if (argc != 3) { std::fprintf(stderr, "usage: absl_mutex THREADS ITERATIONS\n"); return 2; }
    int n = std::atoi(argv[1]);
    long iters = std::atol(argv[2]);
    std::printf("pid=%d\n", getpid());
    std::fflush(stdout);
    char b;
    if (read(0, &b, 1) != 1) return 3;
    std::vector<std::thread> t;
    for (int i = 0; i < n; i++)
        t.emplace_back([iters] { for (long j = 0; j < iters; j++) apply_update(1); });
    for (auto &x : t) x.join();
    std::printf("acquisitions=%ld\n", ledger);
    return 0;
}
