/*
 * Many (lock, thread) pairs waiting at once, for the unwind-sample path:
 * THREADS threads each cycle over WORDS futex words of their own for
 * SECONDS, calling hot_fn() and then waiting on the word with a value that
 * does not match (EAGAIN at once), so every pair keeps asking for unwind
 * samples. cold_0 … cold_11 are never called: probed with hot_fn, they
 * make detaching the probes slow. Prints "pid=P", waits for a byte on
 * stdin, runs, prints "waits=N".
 *
 *   pairs THREADS WORDS SECONDS
 */
#define _GNU_SOURCE
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int words;
static double seconds;
static atomic_long total;
static volatile uint64_t sink;

__attribute__((noinline)) void hot_fn(void) { sink++; }
#define COLD(n) __attribute__((noinline)) void cold_##n(void) { sink += n; }
COLD(0) COLD(1) COLD(2) COLD(3) COLD(4) COLD(5) COLD(6) COLD(7) COLD(8) COLD(9) COLD(10) COLD(11)

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void *worker(void *arg) {
    (void)arg;
    uint32_t *w = calloc(words, sizeof *w);
    long n = 0;
    double end = now() + seconds;
    while (now() < end) {
        for (int i = 0; i < words; i++) {
            hot_fn();
            syscall(SYS_futex, &w[i], FUTEX_WAIT_PRIVATE, 1, NULL, NULL, 0);
            n++;
        }
    }
    atomic_fetch_add(&total, n);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: pairs THREADS WORDS SECONDS\n"); return 2; }
    int t = atoi(argv[1]);
    words = atoi(argv[2]);
    seconds = atof(argv[3]);
    printf("pid=%d\n", getpid());
    fflush(stdout);
    char b;
    if (read(0, &b, 1) != 1) return 3;
    pthread_t th[64];
    for (int i = 0; i < t && i < 64; i++) pthread_create(&th[i], NULL, worker, NULL);
    for (int i = 0; i < t && i < 64; i++) pthread_join(th[i], NULL);
    printf("waits=%ld\n", atomic_load(&total));
    return 0;
}
