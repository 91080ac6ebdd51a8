/*
 * A hostile target: its worker threads are named with terminal control
 * sequences (clear screen, a newline and a fake report line), and they
 * contend a mutex so that the names land in the report. Prints "pid=P",
 * waits for a byte on stdin, runs.
 *
 *   evil_name ITERATIONS
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <unistd.h>

pthread_mutex_t evil_mu = PTHREAD_MUTEX_INITIALIZER;
static long iterations;

static void *worker(void *arg) {
    (void)arg;
    /* 15 bytes at most: ESC [2J, a newline, then a line of its own. */
    prctl(PR_SET_NAME, "\x1b[2J\nVERDICT ok", 0, 0, 0);
    for (long i = 0; i < iterations; i++) {
        pthread_mutex_lock(&evil_mu);
        for (volatile int k = 0; k < 100; k++) {
        }
        pthread_mutex_unlock(&evil_mu);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: evil_name ITERATIONS\n"); return 2; }
    iterations = atol(argv[1]);
    printf("pid=%d\n", getpid());
    fflush(stdout);
    char b;
    if (read(0, &b, 1) != 1) return 3;
    pthread_t t[4];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, worker, NULL);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    return 0;
}
