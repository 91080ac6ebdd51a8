/*
 * A target that touches many futex words, then a hot lock: first WORDS
 * futex words are each waited on once (FUTEX_WAIT_BITSET with a value that
 * does not match, so every call returns EAGAIN at once), as a program with
 * a huge sharded table would; then THREADS threads contend one pthread
 * mutex (`hot_mu`, FUTEX_WAIT_PRIVATE) ITERATIONS times each. A tracer
 * whose lock map filled during the first phase cannot see the second.
 * Prints "pid=P mutex=0xADDR", waits for a byte on stdin, runs, prints
 * "words=N eagain=N".
 *
 *   futex_words WORDS THREADS ITERATIONS
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

pthread_mutex_t hot_mu = PTHREAD_MUTEX_INITIALIZER;
static long iterations;
static volatile uint64_t counter;

static void *worker(void *arg) {
    (void)arg;
    for (long i = 0; i < iterations; i++) {
        pthread_mutex_lock(&hot_mu);
        counter++;
        for (volatile int k = 0; k < 200; k++) {
        }
        pthread_mutex_unlock(&hot_mu);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: futex_words WORDS THREADS ITERATIONS\n"); return 2; }
    long words = atol(argv[1]);
    int n = atoi(argv[2]);
    iterations = atol(argv[3]);
    uint32_t *w = calloc(words, sizeof *w);
    if (!w) return 4;
    printf("pid=%d mutex=%p\n", getpid(), (void *)&hot_mu);
    fflush(stdout);
    char b;
    if (read(0, &b, 1) != 1) return 3;
    long eagain = 0;
    for (long i = 0; i < words; i++) {
        long r = syscall(SYS_futex, &w[i], FUTEX_WAIT_BITSET_PRIVATE, 1, NULL, NULL,
                         FUTEX_BITSET_MATCH_ANY);
        if (r == -1 && errno == EAGAIN) eagain++;
    }
    pthread_t t[64];
    for (int i = 0; i < n && i < 64; i++) pthread_create(&t[i], NULL, worker, NULL);
    for (int i = 0; i < n && i < 64; i++) pthread_join(t[i], NULL);
    printf("words=%ld eagain=%ld\n", words, eagain);
    return 0;
}
