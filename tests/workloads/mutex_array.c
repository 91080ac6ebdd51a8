/*
 * A lock class: 64 pthread mutexes in an array (a sharded table), all
 * taken by one function, `bump_shard`, on a random shard. Each mutex alone
 * is waited on a few hundred times a second; together, far more. Prints
 * "pid=P", waits for a byte on stdin, runs, prints "acquisitions=N".
 *
 *   mutex_array THREADS ITERATIONS
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define SHARDS 64
static struct {
    pthread_mutex_t mu;
    long value;
    char pad[64];
} shards[SHARDS];
static long iterations;

__attribute__((noinline)) void bump_shard(unsigned s) {
    pthread_mutex_lock(&shards[s].mu);
    shards[s].value++;
    for (volatile int k = 0; k < 3000; k++) {
    }
    pthread_mutex_unlock(&shards[s].mu);
}

static void *worker(void *arg) {
    uint32_t x = (uint32_t)(uintptr_t)arg * 2654435761u + 1;
    for (long i = 0; i < iterations; i++) {
        x ^= x << 13; x ^= x >> 17; x ^= x << 5;
        bump_shard(x % SHARDS);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: mutex_array THREADS ITERATIONS\n"); return 2; }
    int n = atoi(argv[1]);
    iterations = atol(argv[2]);
    for (int i = 0; i < SHARDS; i++) pthread_mutex_init(&shards[i].mu, NULL);
    printf("pid=%d\n", getpid());
    fflush(stdout);
    char b;
    if (read(0, &b, 1) != 1) return 3;
    pthread_t t[64];
    for (int i = 0; i < n && i < 64; i++) pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(i + 1));
    for (int i = 0; i < n && i < 64; i++) pthread_join(t[i], NULL);
    long total = 0;
    for (int i = 0; i < SHARDS; i++) total += shards[i].value;
    printf("acquisitions=%ld\n", total);
    return 0;
}
