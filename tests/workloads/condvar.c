/*
 * Condition-variable waits that are not lock contention: a consumer thread
 * waits in consume() on `ready` for each of ROUNDS items, which main
 * produces one every 500 µs. Prints "pid=P cond=0xADDR", waits for a byte
 * on stdin, runs, prints "consumed=N".
 *
 *   condvar ROUNDS
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

pthread_mutex_t queue_mu = PTHREAD_MUTEX_INITIALIZER;
pthread_cond_t ready = PTHREAD_COND_INITIALIZER;
static long items, consumed, rounds;

__attribute__((noinline)) static void consume(void) {
    pthread_mutex_lock(&queue_mu);
    while (items == 0) pthread_cond_wait(&ready, &queue_mu);
    items--;
    consumed++;
    pthread_mutex_unlock(&queue_mu);
}

static void *consumer(void *arg) {
    (void)arg;
    for (long r = 0; r < rounds; r++) consume();
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: condvar ROUNDS\n"); return 2; }
    rounds = atol(argv[1]);
    printf("pid=%d cond=%p\n", getpid(), (void *)&ready);
    fflush(stdout);
    char b;
    if (read(0, &b, 1) != 1) return 3;
    pthread_t c;
    pthread_create(&c, NULL, consumer, NULL);
    for (long r = 0; r < rounds; r++) {
        usleep(500);
        pthread_mutex_lock(&queue_mu);
        items++;
        pthread_cond_signal(&ready);
        pthread_mutex_unlock(&queue_mu);
    }
    pthread_join(c, NULL);
    printf("consumed=%ld\n", consumed);
    return 0;
}
