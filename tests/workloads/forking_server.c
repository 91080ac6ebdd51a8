// A server that forks its workers, as PostgreSQL's postmaster or a
// preforking web server does. Each worker sets its process title (it
// rewrites its argv in place, as PostgreSQL does), then runs THREADS
// threads that contend one mutex of its own for ITERS rounds each (each
// round calls worker_round() once).
//
//   forking_server WORKERS THREADS ITERS [prefork]
//
// Prints "pid=P mutex=ADDR" (the workers' mutex, at the same address in
// each of them), then waits for a byte on stdin. Without `prefork` it
// forks the workers after that byte (a tracer attached by --pid sees them
// forked); with `prefork` it forks them first (they wait on a pipe, and
// "workers=W1,W2,..." is printed) and the byte lets them work. At the end
// it prints "worker=PID title=..." per worker and "done=WORKERS".
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static pthread_mutex_t worker_mu = PTHREAD_MUTEX_INITIALIZER;
static volatile unsigned long worker_count;
static long iters;

// One call per round (ITERS per thread): a function to probe whose calls
// the arguments say exactly.
__attribute__((noinline)) void worker_round(void) { __asm__ volatile(""); }

static void *worker_thread(void *arg) {
    (void)arg;
    for (long i = 0; i < iters; i++) {
        worker_round();
        pthread_mutex_lock(&worker_mu);
        for (int k = 0; k < 50; k++)
            worker_count++;
        // Now and then the holder yields its CPU: the others wait.
        if ((i & 63) == 0)
            sched_yield();
        pthread_mutex_unlock(&worker_mu);
    }
    return NULL;
}

// The whole argv area, overwritten with one string (what /proc/PID/cmdline
// then shows).
static void set_title(int argc, char **argv, const char *title) {
    char *start = argv[0];
    char *end = argv[argc - 1] + strlen(argv[argc - 1]);
    size_t room = (size_t)(end - start);
    memset(start, 0, room);
    strncpy(start, title, room);
}

static void worker(int k, int argc, char **argv, int threads, int gate) {
    char title[64];
    snprintf(title, sizeof title, "forking_server: worker %d", k);
    set_title(argc, argv, title);
    if (gate >= 0) {
        char b;
        if (read(gate, &b, 1) < 0)
            _exit(3);
    }
    pthread_t t[64];
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, worker_thread, NULL);
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    _exit(worker_count == (unsigned long)threads * iters * 50 ? 0 : 4);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: forking_server WORKERS THREADS ITERS [prefork]\n");
        return 2;
    }
    int workers = atoi(argv[1]);
    int threads = atoi(argv[2]);
    iters = atol(argv[3]);
    int prefork = argc > 4 && strcmp(argv[4], "prefork") == 0;
    if (workers < 1 || workers > 64 || threads < 1 || threads > 64)
        return 2;
    printf("pid=%d mutex=%p\n", getpid(), (void *)&worker_mu);
    fflush(stdout);
    pid_t pids[64];
    int gate[2] = {-1, -1};
    if (prefork) {
        if (pipe(gate) != 0)
            return 1;
        for (int k = 0; k < workers; k++) {
            pids[k] = fork();
            if (pids[k] == 0) {
                close(gate[1]);
                worker(k, argc, argv, threads, gate[0]);
            }
        }
        close(gate[0]);
        printf("workers=");
        for (int k = 0; k < workers; k++)
            printf("%s%d", k ? "," : "", pids[k]);
        printf("\n");
        fflush(stdout);
    }
    char b;
    if (read(0, &b, 1) != 1)
        return 3;
    if (prefork) {
        char go[64] = {0};
        if (write(gate[1], go, (size_t)workers) != workers)
            return 1;
    } else {
        for (int k = 0; k < workers; k++) {
            pids[k] = fork();
            if (pids[k] == 0)
                worker(k, argc, argv, threads, -1);
        }
    }
    int failed = 0;
    for (int k = 0; k < workers; k++) {
        int status;
        waitpid(pids[k], &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            failed++;
        printf("worker=%d title=forking_server:worker%d\n", pids[k], k);
    }
    printf("done=%d failed=%d\n", workers, failed);
    return failed ? 1 : 0;
}
