/*
 * Thread churn: THREADS short-lived threads, at most 4 alive at a time,
 * each waiting once on a shared futex word (FUTEX_WAIT_BITSET_PRIVATE with
 * a value that does not match: EAGAIN at once) and then exiting. Each
 * thread adds a (lock, thread) entry and a scheduler entry to a tracer's
 * maps; more threads than the maps hold must not fill them. With LINGER_US,
 * each thread sleeps that long after its wait before exiting. Prints
 * "pid=P", waits for a byte on stdin, runs, prints "threads=N waits=N".
 *
 *   thread_churn THREADS [LINGER_US]
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

static uint32_t word;
static long linger_us;

static void *worker(void *arg) {
    (void)arg;
    syscall(SYS_futex, &word, FUTEX_WAIT_BITSET_PRIVATE, 1, NULL, NULL, FUTEX_BITSET_MATCH_ANY);
    if (linger_us > 0) usleep(linger_us);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 2 && argc != 3) { fprintf(stderr, "usage: thread_churn THREADS [LINGER_US]\n"); return 2; }
    long n = atol(argv[1]);
    linger_us = argc == 3 ? atol(argv[2]) : 0;
    printf("pid=%d\n", getpid());
    fflush(stdout);
    char b;
    if (read(0, &b, 1) != 1) return 3;
    pthread_t t[4];
    long done = 0;
    while (done < n) {
        int k = 0;
        for (; k < 4 && done + k < n; k++)
            if (pthread_create(&t[k], NULL, worker, NULL) != 0) return 4;
        for (int j = 0; j < k; j++) pthread_join(t[j], NULL);
        done += k;
    }
    printf("threads=%ld waits=%ld\n", done, done);
    return 0;
}
