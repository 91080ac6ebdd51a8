/*
 * The futex2 syscalls glibc does not use: futex_waitv(2) (5.16+),
 * futex_wait(2) and futex_wake(2) (6.7+), called directly. Every wait has a
 * 1 ms absolute timeout and nobody wakes it, so each call is one wait that
 * times out: the workload's own call counts are the ground truth.
 * Prints "pid=P waitv=0xA wait=0xB wake=0xC", waits for a byte on stdin,
 * runs, prints "waitv_calls=N wait_calls=M wake_calls=K".
 *
 *   futex2 N
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif
#ifndef SYS_futex_wake
#define SYS_futex_wake 454
#endif
#ifndef SYS_futex_wait
#define SYS_futex_wait 455
#endif
#define F2_SIZE_U32 0x02
#define F2_PRIVATE 128

struct waitv {
    uint64_t val;
    uint64_t uaddr;
    uint32_t flags;
    uint32_t reserved;
};

uint32_t waitv_word;
uint32_t wait_word;
uint32_t wake_word;

static struct timespec in_1ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_nsec += 1000000;
    if (ts.tv_nsec >= 1000000000) { ts.tv_sec++; ts.tv_nsec -= 1000000000; }
    return ts;
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: futex2 N\n"); return 2; }
    int n = atoi(argv[1]);
    printf("pid=%d waitv=%p wait=%p wake=%p\n", getpid(), (void *)&waitv_word, (void *)&wait_word,
           (void *)&wake_word);
    fflush(stdout);
    char b;
    if (read(0, &b, 1) != 1) return 3;
    long waitv_calls = 0, wait_calls = 0, wake_calls = 0;
    for (int i = 0; i < n; i++) {
        struct waitv w = {.val = 0, .uaddr = (uintptr_t)&waitv_word, .flags = F2_SIZE_U32 | F2_PRIVATE};
        struct timespec ts = in_1ms();
        long r = syscall(SYS_futex_waitv, &w, 1, 0, &ts, CLOCK_MONOTONIC);
        if (r == -1 && errno != ETIMEDOUT) { perror("futex_waitv"); return 4; }
        waitv_calls++;
        ts = in_1ms();
        r = syscall(SYS_futex_wait, &wait_word, 0, (unsigned long)FUTEX_BITSET_MATCH_ANY,
                    F2_SIZE_U32 | F2_PRIVATE, &ts, CLOCK_MONOTONIC);
        if (r == -1 && errno != ETIMEDOUT) { perror("futex_wait"); return 4; }
        wait_calls++;
        r = syscall(SYS_futex_wake, &wake_word, (unsigned long)FUTEX_BITSET_MATCH_ANY, 1,
                    F2_SIZE_U32 | F2_PRIVATE);
        if (r == -1) { perror("futex_wake"); return 4; }
        wake_calls++;
    }
    printf("waitv_calls=%ld wait_calls=%ld wake_calls=%ld\n", waitv_calls, wait_calls, wake_calls);
    return 0;
}
