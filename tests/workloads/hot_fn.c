/*
 * A hot function for probe-cost benchmarks: calls hot_step() back to back
 * for SECONDS and prints "pid=P" first, then "calls=N calls_per_s=R".
 * Starts at once (no gate): benchmarks compare throughput over the whole
 * run.
 *
 *   hot_fn SECONDS
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static volatile unsigned long acc;

__attribute__((noinline)) void hot_step(unsigned long i) { acc += i; }

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: hot_fn SECONDS\n"); return 2; }
    double secs = atof(argv[1]);
    printf("pid=%d\n", getpid());
    fflush(stdout);
    unsigned long n = 0;
    double t0 = now(), t = t0;
    while (t - t0 < secs) {
        for (int k = 0; k < 1000; k++) hot_step(n++);
        t = now();
    }
    printf("calls=%lu calls_per_s=%.0f\n", n, n / (t - t0));
    return 0;
}
