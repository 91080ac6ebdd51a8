// One thread that spins for SLICE_MS, then sleeps for SLICE_MS, for
// SECONDS: half its time on a CPU, half asleep in clock_nanosleep.
//
// usage: sleep_spin SECONDS [SLICE_MS]
// Prints what it measured itself: "elapsed=S spin=S sleep=S" (seconds).
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static volatile unsigned long sink;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

__attribute__((noinline)) void spin_for(double secs) {
    double end = now() + secs;
    while (now() < end)
        for (int i = 0; i < 1000; i++)
            sink += i;
}

int main(int argc, char **argv) {
    double secs = argc > 1 ? atof(argv[1]) : 3.0;
    double slice = (argc > 2 ? atof(argv[2]) : 10.0) / 1e3;
    struct timespec ts = {0, (long)(slice * 1e9)};
    double t0 = now(), end = t0 + secs, spun = 0, slept = 0;
    while (now() < end) {
        double a = now();
        spin_for(slice);
        double b = now();
        clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);
        spun += b - a;
        slept += now() - b;
    }
    printf("elapsed=%.6f spin=%.6f sleep=%.6f\n", now() - t0, spun, slept);
    return 0;
}
