/*
 * The demo workload for `cargo xtask demo`: shaped like the users' brokers.
 * A pool of sequencer threads assigns global sequence numbers to batches
 * under one global mutex (global_seq_batch_seq_mu_), after building each
 * batch on an allocation-heavy path; a reporter thread snapshots statistics
 * under a second, rarely contended mutex. It prints its own counts at exit,
 * so the report can be checked against them.
 *
 *   sequencer [--threads N] [--seconds S] [--batch B] [--work W]
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

pthread_mutex_t global_seq_batch_seq_mu_ = PTHREAD_MUTEX_INITIALIZER;
static uint64_t next_seq;
static uint64_t batches_sequenced;

static pthread_mutex_t stats_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t stats_snapshots;

/* The critical section's length (--work, or -DWORK=N at build time: the
 * compare tests build a deliberately slower sequencer this way). */
#ifndef WORK
#define WORK 200
#endif
static int threads = 4, batch = 16, work = WORK;
static double seconds = 5.0;
static volatile int stop;
static uint64_t allocations[64];

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The allocation-heavy path: a batch of messages of varied sizes. */
static uint64_t build_batch(unsigned *seed, char **msgs) {
    uint64_t sum = 0;
    for (int i = 0; i < batch; i++) {
        size_t n = 64 + rand_r(seed) % 4096;
        msgs[i] = malloc(n);
        memset(msgs[i], i, n);
        sum += (unsigned char)msgs[i][n / 2];
    }
    return sum;
}

/* The critical section: assign sequence numbers to the batch. */
__attribute__((noinline)) static uint64_t sequencer_assign(uint64_t count) {
    pthread_mutex_lock(&global_seq_batch_seq_mu_);
    uint64_t first = next_seq;
    next_seq += count;
    batches_sequenced++;
    for (volatile int i = 0; i < work; i++) {
    }
    pthread_mutex_unlock(&global_seq_batch_seq_mu_);
    return first;
}

static void *sequencer_worker(void *arg) {
    long id = (long)arg;
    char name[16];
    snprintf(name, sizeof name, "sequencer-%ld", id);
    pthread_setname_np(pthread_self(), name);
    unsigned seed = (unsigned)id * 7919u + 1;
    char **msgs = calloc(batch, sizeof *msgs);
    while (!stop) {
        build_batch(&seed, msgs);
        sequencer_assign(batch);
        for (int i = 0; i < batch; i++) free(msgs[i]);
        allocations[id] += batch;
    }
    free(msgs);
    return NULL;
}

static void *reporter(void *arg) {
    (void)arg;
    pthread_setname_np(pthread_self(), "reporter");
    struct timespec tick = {0, 10 * 1000 * 1000};
    while (!stop) {
        nanosleep(&tick, NULL);
        pthread_mutex_lock(&stats_mu);
        stats_snapshots++;
        pthread_mutex_unlock(&stats_mu);
    }
    return NULL;
}

int main(int argc, char **argv) {
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seconds")) seconds = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch")) batch = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--work")) work = atoi(argv[i + 1]);
        else { fprintf(stderr, "unknown option %s\n", argv[i]); return 2; }
    }
    if (threads < 1 || threads > 64 || batch < 1) { fprintf(stderr, "bad --threads/--batch\n"); return 2; }
    pthread_t tids[64], rep;
    for (long i = 0; i < threads; i++) pthread_create(&tids[i], NULL, sequencer_worker, (void *)i);
    pthread_create(&rep, NULL, reporter, NULL);
    double end = now() + seconds;
    struct timespec tick = {0, 20 * 1000 * 1000};
    while (now() < end) nanosleep(&tick, NULL);
    stop = 1;
    for (int i = 0; i < threads; i++) pthread_join(tids[i], NULL);
    pthread_join(rep, NULL);
    uint64_t allocs = 0;
    for (int i = 0; i < threads; i++) allocs += allocations[i];
    printf("sequencer: %d threads, %.1f s: %llu batches sequenced, %llu sequence numbers, "
           "%llu allocations, %llu stats snapshots\n",
           threads, seconds, (unsigned long long)batches_sequenced, (unsigned long long)next_seq,
           (unsigned long long)allocs, (unsigned long long)stats_snapshots);
    return 0;
}
