// CPU in a known ratio: burn_alpha 60%, burn_beta 30%, burn_gamma 10% of
// the work units, each reached through its own non-inlined caller
// (via_alpha, via_beta, via_gamma) from dispatch. Built with
// -fomit-frame-pointer by the profile tests: only .eh_frame unwinding
// gives these callers.
//
// usage: cpu_mix SECONDS [THREADS]   (prints its unit counts at the end;
// THREADS threads each run the same mix, default 1)
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define UNIT 200000

static volatile unsigned long sink;

#define BURN(name)                                                     \
    __attribute__((noinline)) void name(void) {                        \
        unsigned long x = sink;                                        \
        for (long i = 0; i < UNIT; i++) {                              \
            x = x * 6364136223846793005UL + 1442695040888963407UL;     \
            __asm__ volatile("" : "+r"(x));                            \
        }                                                              \
        sink = x;                                                      \
    }

BURN(burn_alpha)
BURN(burn_beta)
BURN(burn_gamma)

__attribute__((noinline)) void via_alpha(void) { burn_alpha(); __asm__ volatile(""); }
__attribute__((noinline)) void via_beta(void) { burn_beta(); __asm__ volatile(""); }
__attribute__((noinline)) void via_gamma(void) { burn_gamma(); __asm__ volatile(""); }

static unsigned long units[3];

static void count(int k) { __atomic_fetch_add(&units[k], 1, __ATOMIC_RELAXED); }

__attribute__((noinline)) void dispatch(int i) {
    if (i < 6) {
        via_alpha();
        count(0);
    } else if (i < 9) {
        via_beta();
        count(1);
    } else {
        via_gamma();
        count(2);
    }
    __asm__ volatile("");
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static double end_at;

static void *run(void *arg) {
    (void)arg;
    while (now() < end_at)
        for (int i = 0; i < 10; i++)
            dispatch(i);
    return NULL;
}

int main(int argc, char **argv) {
    double secs = argc > 1 ? atof(argv[1]) : 3.0;
    int threads = argc > 2 ? atoi(argv[2]) : 1;
    double t0 = now();
    end_at = t0 + secs;
    pthread_t t[64];
    for (int i = 1; i < threads && i < 64; i++)
        pthread_create(&t[i], NULL, run, NULL);
    run(NULL);
    for (int i = 1; i < threads && i < 64; i++)
        pthread_join(t[i], NULL);
    double took = now() - t0;
    unsigned long all = units[0] + units[1] + units[2];
    printf("units alpha=%lu beta=%lu gamma=%lu units_per_s=%.1f\n", units[0], units[1], units[2],
           all / took);
    return 0;
}
