/*
 * A mutex on the heap (no symbol names it): the tracer must label it by its
 * call site. Threads run heap_worker(), which calls take_heap_lock(), which
 * calls pthread_mutex_lock. Prints "pid=P mutex=0xADDR", waits for a byte on
 * stdin, runs, prints "acquisitions=N".
 *
 *   heap_mutex THREADS ITERATIONS
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

struct counter {
    pthread_mutex_t mu;
    uint64_t n;
};

static struct counter *shared;
static long iterations;
static volatile int go;

__attribute__((noinline)) static void take_heap_lock(void) {
    pthread_mutex_lock(&shared->mu);
    shared->n++;
    for (volatile int k = 0; k < 100; k++) {
    }
    pthread_mutex_unlock(&shared->mu);
}

__attribute__((noinline)) static void *heap_worker(void *arg) {
    (void)arg;
    /* Spin (yielding, no futex) so every thread starts at once: with
     * staggered starts a thread can finish alone and never contend. */
    while (!go) sched_yield();
    for (long i = 0; i < iterations; i++) take_heap_lock();
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: heap_mutex THREADS ITERATIONS\n"); return 2; }
    int n = atoi(argv[1]);
    iterations = atol(argv[2]);
    shared = calloc(1, sizeof *shared);
    pthread_mutex_init(&shared->mu, NULL);
    pthread_t t[64];
    for (int i = 0; i < n && i < 64; i++) pthread_create(&t[i], NULL, heap_worker, NULL);
    printf("pid=%d mutex=%p\n", getpid(), (void *)&shared->mu);
    fflush(stdout);
    char b;
    if (read(0, &b, 1) != 1) return 3;
    go = 1;
    for (int i = 0; i < n && i < 64; i++) pthread_join(t[i], NULL);
    printf("acquisitions=%llu\n", (unsigned long long)shared->n);
    return 0;
}
