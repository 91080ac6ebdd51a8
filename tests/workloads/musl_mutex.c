/*
 * A pthread mutex hot across THREADS threads, built static against musl
 * (musl-gcc -static): musl's lock path (pthread_mutex_lock →
 * __pthread_mutex_timedlock → __timedwait → __syscall_cp_asm) has frames of
 * its own, some in assembly. `credit_account` takes the lock. Prints
 * "pid=P mutex=0xADDR", waits for a byte on stdin, runs, prints
 * "acquisitions=N".
 *
 *   musl_mutex THREADS ITERATIONS
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

pthread_mutex_t account_mu = PTHREAD_MUTEX_INITIALIZER;
static long balance, iterations;

__attribute__((noinline)) void credit_account(long n) {
    pthread_mutex_lock(&account_mu);
    balance += n;
    for (volatile int k = 0; k < 200; k++) {
    }
    pthread_mutex_unlock(&account_mu);
}

static void *worker(void *arg) {
    (void)arg;
    for (long i = 0; i < iterations; i++) credit_account(1);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: musl_mutex THREADS ITERATIONS\n"); return 2; }
    int n = atoi(argv[1]);
    iterations = atol(argv[2]);
    printf("pid=%d mutex=%p\n", getpid(), (void *)&account_mu);
    fflush(stdout);
    char b;
    if (read(0, &b, 1) != 1) return 3;
    pthread_t t[64];
    for (int i = 0; i < n && i < 64; i++) pthread_create(&t[i], NULL, worker, NULL);
    for (int i = 0; i < n && i < 64; i++) pthread_join(t[i], NULL);
    printf("acquisitions=%ld\n", balance);
    return 0;
}
