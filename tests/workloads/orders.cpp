// A C++ uprobe target: a namespaced method called CALLS times, matched in
// the tests by a glob on its demangled name (orders::Book::match*).
// Prints "pid=P", waits for a byte on stdin, runs, prints "matched=N".
#include <cstdio>
#include <cstdlib>
#include <unistd.h>

namespace orders {
class Book {
  public:
    __attribute__((noinline)) long match(long price, int qty);
    long total = 0;
};
long Book::match(long price, int qty) {
    usleep(100);
    total += price * qty;
    return total;
}
} // namespace orders

int main(int argc, char **argv) {
    if (argc != 2) { std::fprintf(stderr, "usage: orders CALLS\n"); return 2; }
    long calls = std::atol(argv[1]);
    std::printf("pid=%d\n", getpid());
    std::fflush(stdout);
    char b;
    if (read(0, &b, 1) != 1) return 3;
    orders::Book book;
    for (long i = 0; i < calls; i++) book.match(i, 2);
    std::printf("matched=%ld total=%ld\n", calls, book.total);
    return 0;
}
