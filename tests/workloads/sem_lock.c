/*
 * Forked workers and a lock of their own in shared memory, the way
 * PostgreSQL's LWLocks work: a waiter queues itself and sleeps on its own
 * process-shared POSIX semaphore (sem_wait), and the releaser posts the
 * first waiter's semaphore. `shared_lock_acquire` is the lock function;
 * `wait_for_job` sleeps on a semaphore that is an event, not a lock.
 * WORKERS processes take the lock ITERATIONS times each; the parent then
 * posts each worker's job semaphore once. Prints "pid=P", waits for a
 * byte on stdin, runs, prints "acquisitions=N sleeps=N" (sleeps: how many
 * times a worker slept on its semaphore for the lock, its own count).
 *
 *   sem_lock WORKERS ITERATIONS
 */
#define _GNU_SOURCE
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAXW 16
struct shared {
    atomic_flag spin;       /* protects the fields below */
    int held;
    int queue[MAXW];        /* waiting workers, FIFO */
    int head, tail;
    long counter;
    atomic_long sleeps;
    sem_t sem[MAXW];        /* one per worker: what it sleeps on */
    sem_t job[MAXW];        /* events: a job for worker i */
};
static struct shared *sh;

static void spin_lock(void) { while (atomic_flag_test_and_set(&sh->spin)) ; }
static void spin_unlock(void) { atomic_flag_clear(&sh->spin); }

__attribute__((noinline)) void shared_lock_acquire(int me) {
    for (;;) {
        spin_lock();
        if (!sh->held) {
            sh->held = 1;
            spin_unlock();
            return;
        }
        sh->queue[sh->tail++ % MAXW] = me;
        spin_unlock();
        atomic_fetch_add(&sh->sleeps, 1);
        while (sem_wait(&sh->sem[me]) != 0) ;
    }
}

__attribute__((noinline)) void shared_lock_release(void) {
    spin_lock();
    sh->held = 0;
    int next = sh->head != sh->tail ? sh->queue[sh->head++ % MAXW] : -1;
    spin_unlock();
    if (next >= 0) sem_post(&sh->sem[next]);
}

__attribute__((noinline)) void wait_for_job(int me) {
    while (sem_wait(&sh->job[me]) != 0) ;
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: sem_lock WORKERS ITERATIONS\n"); return 2; }
    int n = atoi(argv[1]);
    long iters = atol(argv[2]);
    if (n > MAXW) n = MAXW;
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) return 4;
    for (int i = 0; i < MAXW; i++) {
        sem_init(&sh->sem[i], 1, 0);
        sem_init(&sh->job[i], 1, 0);
    }
    printf("pid=%d\n", getpid());
    fflush(stdout);
    char b;
    if (read(0, &b, 1) != 1) return 3;
    for (int w = 0; w < n; w++) {
        if (fork() == 0) {
            for (long i = 0; i < iters; i++) {
                shared_lock_acquire(w);
                sh->counter++;
                for (volatile int k = 0; k < 300; k++) {
                }
                shared_lock_release();
            }
            wait_for_job(w);
            _exit(0);
        }
    }
    usleep(200000);
    for (int w = 0; w < n; w++) {
        usleep(20000);
        sem_post(&sh->job[w]);
    }
    while (wait(NULL) > 0) ;
    printf("acquisitions=%ld sleeps=%ld\n", sh->counter, atomic_load(&sh->sleeps));
    return 0;
}
