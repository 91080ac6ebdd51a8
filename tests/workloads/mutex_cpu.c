// A hot contended mutex and CPU work: THREADS workers each loop on
// think() (CPU outside the lock), then take hot_mu in take_and_bump() and
// do a little work under it. The lock is called from take_and_bump only,
// so that is its call site.
//
// usage: mutex_cpu THREADS SECONDS
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

pthread_mutex_t hot_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned long counter;
static volatile unsigned long sink;
static double end_at;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

__attribute__((noinline)) void think(void) {
    unsigned long x = sink;
    for (int i = 0; i < 20000; i++) {
        x = x * 6364136223846793005UL + 1;
        __asm__ volatile("" : "+r"(x));
    }
    sink = x;
}

__attribute__((noinline)) void take_and_bump(void) {
    pthread_mutex_lock(&hot_mu);
    unsigned long x = counter;
    for (int i = 0; i < 2000; i++) {
        x = x * 6364136223846793005UL + 1;
        __asm__ volatile("" : "+r"(x));
    }
    counter++;
    sink = x;
    pthread_mutex_unlock(&hot_mu);
}

static void *worker(void *arg) {
    (void)arg;
    while (now() < end_at) {
        think();
        take_and_bump();
    }
    return NULL;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 4;
    double secs = argc > 2 ? atof(argv[2]) : 3.0;
    end_at = now() + secs;
    pthread_t t[64];
    for (int i = 0; i < n && i < 64; i++)
        pthread_create(&t[i], NULL, worker, NULL);
    for (int i = 0; i < n && i < 64; i++)
        pthread_join(t[i], NULL);
    printf("acquisitions=%lu\n", counter);
    return 0;
}
