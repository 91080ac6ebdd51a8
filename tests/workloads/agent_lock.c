/*
 * A hot lock of our own on a futex word (`hot_lock`, the three-state mutex
 * of Drepper's "Futexes Are Tricky"), so the program counts its own
 * slow-path waits: every FUTEX_WAIT that slept and was woken (returned 0),
 * and those that found the word changed (EAGAIN). THREADS workers take it
 * for SECONDS; every 100 ms the program appends "UNIX_MS SLEPT EAGAIN" to
 * LOG (when given), the ground truth for `tracer agent`'s rates.
 *
 *   agent_lock THREADS SECONDS [LOG]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

atomic_uint hot_lock;
static atomic_long slept, eagain;
static volatile unsigned long sink;
static double end_at;

static double now(int clock) {
    struct timespec t;
    clock_gettime(clock, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void lock(void) {
    unsigned c = 0;
    if (atomic_compare_exchange_strong(&hot_lock, &c, 1))
        return;
    if (c != 2)
        c = atomic_exchange(&hot_lock, 2);
    while (c != 0) {
        long r = syscall(SYS_futex, &hot_lock, FUTEX_WAIT_PRIVATE, 2, NULL, NULL, 0);
        if (r == 0)
            atomic_fetch_add(&slept, 1);
        else if (errno == EAGAIN)
            atomic_fetch_add(&eagain, 1);
        c = atomic_exchange(&hot_lock, 2);
    }
}

static void unlock(void) {
    if (atomic_fetch_sub(&hot_lock, 1) != 1) {
        atomic_store(&hot_lock, 0);
        syscall(SYS_futex, &hot_lock, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    }
}

static void *worker(void *arg) {
    (void)arg;
    while (now(CLOCK_MONOTONIC) < end_at) {
        lock();
        for (volatile int k = 0; k < 2000; k++) sink++;
        unlock();
        for (volatile int k = 0; k < 2000; k++) sink++;
    }
    return NULL;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 4;
    double secs = argc > 2 ? atof(argv[2]) : 10;
    FILE *log = argc > 3 ? fopen(argv[3], "a") : NULL;
    end_at = now(CLOCK_MONOTONIC) + secs;
    pthread_t t[64];
    for (int i = 0; i < n && i < 64; i++)
        pthread_create(&t[i], NULL, worker, NULL);
    while (now(CLOCK_MONOTONIC) < end_at) {
        if (log) {
            fprintf(log, "%.0f %ld %ld\n", now(CLOCK_REALTIME) * 1e3, atomic_load(&slept),
                    atomic_load(&eagain));
            fflush(log);
        }
        usleep(100000);
    }
    for (int i = 0; i < n && i < 64; i++)
        pthread_join(t[i], NULL);
    printf("slept=%ld eagain=%ld\n", atomic_load(&slept), atomic_load(&eagain));
    return 0;
}
