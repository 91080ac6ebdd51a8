/*
 * A priority-inheritance pthread mutex (PTHREAD_PRIO_INHERIT) hot across
 * THREADS threads: glibc waits with FUTEX_LOCK_PI and releases with
 * FUTEX_UNLOCK_PI, which returns no count of waiters woken. Prints
 * "pid=P mutex=0xADDR", waits for a byte on stdin, runs, prints
 * "acquisitions=N".
 *
 *   pi_mutex THREADS ITERATIONS
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

pthread_mutex_t pi_mu;
static long counter, iterations;

__attribute__((noinline)) void bump_pi(void) {
    pthread_mutex_lock(&pi_mu);
    counter++;
    for (volatile int k = 0; k < 200; k++) {
    }
    pthread_mutex_unlock(&pi_mu);
}

static void *worker(void *arg) {
    (void)arg;
    for (long i = 0; i < iterations; i++) bump_pi();
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: pi_mutex THREADS ITERATIONS\n"); return 2; }
    int n = atoi(argv[1]);
    iterations = atol(argv[2]);
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setprotocol(&a, PTHREAD_PRIO_INHERIT);
    pthread_mutex_init(&pi_mu, &a);
    printf("pid=%d mutex=%p\n", getpid(), (void *)&pi_mu);
    fflush(stdout);
    char b;
    if (read(0, &b, 1) != 1) return 3;
    pthread_t th[64];
    for (int i = 0; i < n && i < 64; i++) pthread_create(&th[i], NULL, worker, NULL);
    for (int i = 0; i < n && i < 64; i++) pthread_join(th[i], NULL);
    printf("acquisitions=%ld\n", counter);
    return 0;
}
