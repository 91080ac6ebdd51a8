// Kernel-lock contention between processes: WORKERS forked processes
// create and unlink files in one directory ROUNDS times each, fighting
// over the directory inode's rwsem (one kernel lock, many processes).
//
//   dir_storm DIR WORKERS ROUNDS
//
// Prints "pid=P", waits for a byte on stdin, forks the workers, and prints
// "worker=PID" per worker and "done" when all have exited.
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: dir_storm DIR WORKERS ROUNDS\n");
        return 2;
    }
    int workers = atoi(argv[2]);
    long rounds = atol(argv[3]);
    if (workers < 1 || workers > 64 || rounds < 1) {
        fprintf(stderr, "dir_storm: WORKERS is 1..64, ROUNDS at least 1\n");
        return 2;
    }
    printf("pid=%d\n", getpid());
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
            char name[4096];
            snprintf(name, sizeof name, "%s/f%d", argv[1], k);
            for (long i = 0; i < rounds; i++) {
                int fd = open(name, O_CREAT | O_WRONLY, 0600);
                if (fd < 0)
                    _exit(4);
                close(fd);
                unlink(name);
            }
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
    printf("done failed=%d\n", failed);
    return 0;
}
