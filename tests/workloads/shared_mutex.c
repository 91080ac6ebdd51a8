// Processes contending one lock in shared memory, as PostgreSQL's backends
// or a preforking server's workers do: a PTHREAD_PROCESS_SHARED mutex in a
// MAP_SHARED anonymous mapping made before the fork (each worker has it at
// the same address, and the kernel keys its futex by the mapping, not by
// the address).
//
//   shared_mutex WORKERS ITERS
//
// Prints "pid=P mutex=ADDR", then waits for a byte on stdin; then forks
// WORKERS single-threaded processes that lock the mutex ITERS times each.
// At the end it prints "worker=PID" per worker and "count=N expected=M"
// (the shared counter the mutex guards: equal when the lock held).
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

struct shared {
    pthread_mutex_t mu;
    unsigned long count;
};

static void work(struct shared *s, long iters) {
    for (long i = 0; i < iters; i++) {
        pthread_mutex_lock(&s->mu);
        for (int k = 0; k < 50; k++)
            s->count++;
        // Now and then the holder yields its CPU: the others wait.
        if ((i & 31) == 0)
            sched_yield();
        pthread_mutex_unlock(&s->mu);
    }
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: shared_mutex WORKERS ITERS\n");
        return 2;
    }
    int workers = atoi(argv[1]);
    long iters = atol(argv[2]);
    if (workers < 1 || workers > 64 || iters < 1) {
        fprintf(stderr, "shared_mutex: WORKERS is 1..64, ITERS at least 1\n");
        return 2;
    }
    struct shared *s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE,
                            MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (s == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutex_init(&s->mu, &a);
    printf("pid=%d mutex=%p\n", getpid(), (void *)&s->mu);
    fflush(stdout);
    char b;
    if (read(0, &b, 1) != 1)
        return 3;
    pid_t pids[64];
    for (int k = 0; k < workers; k++) {
        pids[k] = fork();
        if (pids[k] < 0) {
            perror("fork");
            return 1;
        }
        if (pids[k] == 0) {
            work(s, iters);
            _exit(0);
        }
    }
    int failed = 0;
    for (int k = 0; k < workers; k++) {
        int st;
        waitpid(pids[k], &st, 0);
        failed += !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        printf("worker=%d\n", pids[k]);
    }
    printf("count=%lu expected=%lu failed=%d\n", s->count,
           (unsigned long)workers * (unsigned long)iters * 50, failed);
    return 0;
}
