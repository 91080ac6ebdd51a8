// A contended sync.Mutex in Go: GOMAXPROCS(2) goroutines... many goroutines
// lock one mutex. sync.Mutex parks goroutines in the Go scheduler
// (runtime.semacquire1), never on a futex; the futex words a Go program
// waits on are its runtime's own thread sleeps. Prints "pid=P", waits for a
// byte on stdin, runs, prints "acquisitions=N".
//
//   gomutex GOROUTINES ITERATIONS
package main

import (
	"fmt"
	"os"
	"strconv"
	"sync"
)

var (
	mu      sync.Mutex
	counter int64
	sink    int64
)

//go:noinline
func bumpCounter() {
	mu.Lock()
	counter++
	for k := 0; k < 200; k++ {
		sink += int64(k)
	}
	mu.Unlock()
}

func main() {
	n, _ := strconv.Atoi(os.Args[1])
	iters, _ := strconv.Atoi(os.Args[2])
	fmt.Printf("pid=%d\n", os.Getpid())
	b := make([]byte, 1)
	if _, err := os.Stdin.Read(b); err != nil {
		os.Exit(3)
	}
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < iters; j++ {
				bumpCounter()
			}
		}()
	}
	wg.Wait()
	fmt.Printf("acquisitions=%d\n", counter)
}
