/*
 * A known scheduling pattern for checking the scheduler view against /proc:
 * SLEEPERS threads each nanosleep 1 ms ROUNDS times (voluntary switches),
 * SPINNERS threads burn CPU for SPIN_MS (more spinners than cores:
 * involuntary switches and run-queue time). Every thread is parked in a
 * blocking pipe read before and after its work, so /proc counters read
 * while parked bracket exactly the traced activity.
 * Prints "pid=P", waits for a byte on stdin, runs, prints "done", waits for
 * another byte, exits.
 *
 *   sched_pattern SLEEPERS ROUNDS SPINNERS SPIN_MS
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static int start_pipe[2], done_pipe[2], exit_pipe[2];
static int rounds, spin_ms;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void park(int fd) {
    char b;
    if (read(fd, &b, 1) != 1) exit(3);
}

static void *sleeper(void *arg) {
    (void)arg;
    park(start_pipe[0]);
    struct timespec ms = {0, 1000000};
    for (int i = 0; i < rounds; i++) nanosleep(&ms, NULL);
    if (write(done_pipe[1], "d", 1) != 1) exit(3);
    park(exit_pipe[0]);
    return NULL;
}

static void *spinner(void *arg) {
    (void)arg;
    park(start_pipe[0]);
    double end = now() + spin_ms / 1e3;
    volatile unsigned long x = 0;
    while (now() < end) x++;
    if (write(done_pipe[1], "d", 1) != 1) exit(3);
    park(exit_pipe[0]);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 5) { fprintf(stderr, "usage: sched_pattern SLEEPERS ROUNDS SPINNERS SPIN_MS\n"); return 2; }
    int sleepers = atoi(argv[1]), spinners = atoi(argv[3]);
    rounds = atoi(argv[2]);
    spin_ms = atoi(argv[4]);
    if (pipe(start_pipe) || pipe(done_pipe) || pipe(exit_pipe)) return 3;
    int n = sleepers + spinners;
    pthread_t t[64];
    for (int i = 0; i < n && i < 64; i++) pthread_create(&t[i], NULL, i < sleepers ? sleeper : spinner, NULL);
    printf("pid=%d\n", getpid());
    fflush(stdout);
    park(0);
    for (int i = 0; i < n; i++) if (write(start_pipe[1], "s", 1) != 1) return 3;
    for (int i = 0; i < n; i++) park(done_pipe[0]);
    printf("done\n");
    fflush(stdout);
    park(0);
    for (int i = 0; i < n; i++) if (write(exit_pipe[1], "e", 1) != 1) return 3;
    for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
    return 0;
}
