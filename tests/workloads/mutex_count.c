/*
 * N threads on one pthread mutex (a named global, `contended_mu`).
 * Prints "pid=P mutex=0xADDR", waits for one byte on stdin (so the tracer
 * and the ground truth start in the same window), runs, then prints its own
 * acquisition count and how long the contended phase took. The main thread is one of the workers, so no thread
 * blocks in a long join.
 *
 *   mutex_count THREADS ITERATIONS
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

pthread_mutex_t contended_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t acquisitions;
static long iterations;
static volatile int go;

static void *worker(void *arg) {
    (void)arg;
    while (!go) sched_yield(); /* start together (yield, no futex) */
    for (long i = 0; i < iterations; i++) {
        pthread_mutex_lock(&contended_mu);
        acquisitions++;
        for (volatile int k = 0; k < 100; k++) {
        }
        pthread_mutex_unlock(&contended_mu);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: mutex_count THREADS ITERATIONS\n"); return 2; }
    int n = atoi(argv[1]);
    iterations = atol(argv[2]);
    pthread_t t[64];
    for (int i = 1; i < n && i < 64; i++) pthread_create(&t[i], NULL, worker, NULL);
    printf("pid=%d mutex=%p\n", getpid(), (void *)&contended_mu);
    fflush(stdout);
    char b;
    if (read(0, &b, 1) != 1) return 3;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    go = 1;
    worker(NULL);
    for (int i = 1; i < n && i < 64; i++) pthread_join(t[i], NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("acquisitions=%llu elapsed_us=%lld\n", (unsigned long long)acquisitions,
           (long long)((t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000));
    return 0;
}
