/*
 * Many distinct call stacks waiting on one lock, for the report-time
 * benchmark: each of THREADS threads walks a binary tree of DEPTH noinline
 * calls (left or right at each level, from a counter), so 2^DEPTH distinct
 * stacks reach the lock. The lock is a futex mutex of its own (Drepper's
 * three-state mutex) built with frame pointers, so the kernel's
 * frame-pointer walk sees every distinct stack (glibc's lock path has no
 * frame pointers). Prints "ops=N".
 *
 *   stack_storm THREADS DEPTH ITERATIONS
 */
#define _GNU_SOURCE
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

/* 0 free, 1 locked, 2 locked with waiters. */
atomic_int storm_mu;

__attribute__((noinline)) static void storm_lock(void) {
    int c = 0;
    if (atomic_compare_exchange_strong(&storm_mu, &c, 1)) return;
    if (c != 2) c = atomic_exchange(&storm_mu, 2);
    while (c != 0) {
        syscall(SYS_futex, &storm_mu, FUTEX_WAIT_PRIVATE, 2, NULL, NULL, 0);
        c = atomic_exchange(&storm_mu, 2);
    }
}

__attribute__((noinline)) static void storm_unlock(void) {
    if (atomic_fetch_sub(&storm_mu, 1) != 1) {
        atomic_store(&storm_mu, 0);
        syscall(SYS_futex, &storm_mu, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    }
}
static volatile unsigned long shared;
static int depth;
static long iterations;

static void descend(unsigned long path, int level);

__attribute__((noinline)) static void left(unsigned long path, int level) {
    descend(path, level + 1);
    __asm__ volatile("" ::: "memory");
}
__attribute__((noinline)) static void right(unsigned long path, int level) {
    descend(path, level + 1);
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) static void descend(unsigned long path, int level) {
    if (level == depth) {
        storm_lock();
        for (volatile int i = 0; i < 200; i++) shared++;
        storm_unlock();
        return;
    }
    if (path >> level & 1) left(path, level);
    else right(path, level);
    __asm__ volatile("" ::: "memory"); /* no tail call: keep the frame */
}

static void *worker(void *arg) {
    unsigned long seed = (unsigned long)arg * 2654435761u;
    for (long i = 0; i < iterations; i++) descend(seed + (unsigned long)i, 0);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: stack_storm THREADS DEPTH ITERATIONS\n"); return 2; }
    int n = atoi(argv[1]);
    depth = atoi(argv[2]);
    iterations = atol(argv[3]);
    pthread_t th[64];
    if (n > 64) n = 64;
    for (long i = 0; i < n; i++) pthread_create(&th[i], NULL, worker, (void *)i);
    for (int i = 0; i < n; i++) pthread_join(th[i], NULL);
    printf("ops=%ld\n", (long)n * iterations);
    return 0;
}
