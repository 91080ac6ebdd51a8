/*
 * A uprobe target whose function exists only in a separate debug file:
 * the test strips this binary and keeps its symbols in
 * DIR/.build-id/xx/rest.debug. hidden_step() is static, so it is in no
 * dynamic symbol table either. Prints "pid=P", waits for a byte on stdin,
 * calls hidden_step() CALLS times, prints "steps=N".
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static volatile long acc;

__attribute__((noinline)) static void hidden_step(long i) { acc += i; }

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: stripped CALLS\n"); return 2; }
    long calls = atol(argv[1]);
    printf("pid=%d\n", getpid());
    fflush(stdout);
    char b;
    if (read(0, &b, 1) != 1) return 3;
    for (long i = 0; i < calls; i++) hidden_step(i);
    printf("steps=%ld\n", calls);
    return 0;
}
