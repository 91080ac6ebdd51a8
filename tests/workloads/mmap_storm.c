/*
 * Kernel-lock contention on purpose: THREADS threads mmap, touch and munmap
 * 1 MiB ROUNDS times each, fighting over the process's mmap_lock (an rwsem)
 * and page-table spinlocks. Prints "pid=P", waits for a byte on stdin, runs.
 *
 *   mmap_storm THREADS ROUNDS
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static int rounds;
static int start_pipe[2];

static void *worker(void *arg) {
    (void)arg;
    char b;
    if (read(start_pipe[0], &b, 1) != 1) exit(3);
    for (int i = 0; i < rounds; i++) {
        char *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) exit(4);
        p[0] = 1;
        p[1 << 19] = 1;
        munmap(p, 1 << 20);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: mmap_storm THREADS ROUNDS\n"); return 2; }
    int n = atoi(argv[1]);
    rounds = atoi(argv[2]);
    if (pipe(start_pipe)) return 3;
    pthread_t t[64];
    for (int i = 0; i < n && i < 64; i++) pthread_create(&t[i], NULL, worker, NULL);
    printf("pid=%d\n", getpid());
    fflush(stdout);
    char b;
    if (read(0, &b, 1) != 1) return 3;
    for (int i = 0; i < n; i++) if (write(start_pipe[1], "s", 1) != 1) return 3;
    for (int i = 0; i < n && i < 64; i++) pthread_join(t[i], NULL);
    printf("done\n");
    return 0;
}
