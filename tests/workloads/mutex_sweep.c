/*
 * A contended mutex at a chosen intensity, for the benchmark sweep: THREADS
 * threads each loop { lock sweep_mu; ~50 ns of work; unlock; THINK_NS of
 * work outside the lock } for SECONDS. Less think time, more contention.
 * Prints "ops=N secs=S ops_per_s=R" (lock acquisitions).
 *
 *   mutex_sweep THREADS SECONDS THINK_NS
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

pthread_mutex_t sweep_mu = PTHREAD_MUTEX_INITIALIZER;
static volatile unsigned long shared;
static atomic_int stop;
static long think_ns;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Roughly `ns` of work without syscalls (calibrated once in main). */
static double spins_per_ns = 1.0;
static void work(long ns) {
    for (volatile long i = 0; i < (long)(ns * spins_per_ns); i++) {
    }
}

static void *worker(void *arg) {
    unsigned long *ops = arg;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        pthread_mutex_lock(&sweep_mu);
        shared++;
        work(50);
        pthread_mutex_unlock(&sweep_mu);
        work(think_ns);
        (*ops)++;
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: mutex_sweep THREADS SECONDS THINK_NS\n"); return 2; }
    int n = atoi(argv[1]);
    double secs = atof(argv[2]);
    think_ns = atol(argv[3]);
    double t = now();
    for (volatile long i = 0; i < 10000000; i++) {
    }
    spins_per_ns = 10000000 / ((now() - t) * 1e9);
    pthread_t th[64];
    unsigned long ops[64] = {0};
    if (n > 64) n = 64;
    double t0 = now();
    for (int i = 0; i < n; i++) pthread_create(&th[i], NULL, worker, &ops[i]);
    struct timespec d = {(time_t)secs, (long)((secs - (time_t)secs) * 1e9)};
    nanosleep(&d, NULL);
    atomic_store(&stop, 1);
    unsigned long total = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        total += ops[i];
    }
    double el = now() - t0;
    printf("ops=%lu secs=%.3f ops_per_s=%.0f\n", total, el, total / el);
    return 0;
}
