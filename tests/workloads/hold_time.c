/*
 * A known hold time: a holder thread takes `hold_mu`, lets the waiter know,
 * sleeps HOLD_US inside the lock, and releases it; the waiter measures its
 * own pthread_mutex_lock time with CLOCK_MONOTONIC. The handshake uses
 * atomics and short sleeps, never a futex, so the only futex waits are the
 * waiter's on hold_mu. Prints "pid=P mutex=0xADDR", waits for a byte on
 * stdin, runs, prints "median_wait_ns=N waits=K".
 *
 *   hold_time HOLD_US ROUNDS
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

pthread_mutex_t hold_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_int phase; /* 0 idle, 1 held, 2 waiter done */
static long hold_us, rounds;
static uint64_t *waits;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static void *waiter(void *arg) {
    (void)arg;
    for (long r = 0; r < rounds; r++) {
        while (atomic_load(&phase) != 1) sched_yield();
        usleep(50); /* let the holder be asleep inside the lock */
        uint64_t t0 = now_ns();
        pthread_mutex_lock(&hold_mu);
        waits[r] = now_ns() - t0;
        pthread_mutex_unlock(&hold_mu);
        atomic_store(&phase, 2);
    }
    return NULL;
}

static int cmp(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: hold_time HOLD_US ROUNDS\n"); return 2; }
    hold_us = atol(argv[1]);
    rounds = atol(argv[2]);
    waits = calloc(rounds, sizeof *waits);
    pthread_t w;
    pthread_create(&w, NULL, waiter, NULL);
    printf("pid=%d mutex=%p\n", getpid(), (void *)&hold_mu);
    fflush(stdout);
    char b;
    if (read(0, &b, 1) != 1) return 3;
    for (long r = 0; r < rounds; r++) {
        pthread_mutex_lock(&hold_mu);
        atomic_store(&phase, 1);
        usleep(hold_us);
        pthread_mutex_unlock(&hold_mu);
        while (atomic_load(&phase) != 2) sched_yield();
        atomic_store(&phase, 0);
    }
    pthread_join(w, NULL);
    qsort(waits, rounds, sizeof *waits, cmp);
    printf("median_wait_ns=%llu waits=%ld\n", (unsigned long long)waits[rounds / 2], rounds);
    return 0;
}
