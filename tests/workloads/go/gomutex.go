// A contended sync.Mutex and a sync.RWMutex in Go. sync.Mutex parks
// goroutines in the Go scheduler (runtime.semacquire1), never on a futex;
// the futex words a Go program waits on are its runtime's own thread
// sleeps. GOROUTINES goroutines each call bumpCounter ITERATIONS times (one
// hot Mutex); then, with RW > 0, RW goroutines read a table under an
// RWMutex (readTable) ITERATIONS times each while RW more write it
// (writeTable) ITERATIONS/4 times each.
// The program keeps its own mutex profile (SetMutexProfileFraction(1)).
// Prints "pid=P", waits for a byte on stdin, runs, prints
// "acquisitions=N reads=N writes=N", then the mutex profile's contention
// count per main-package function that unlocked a contended lock
// ("profile main.bumpCounter=N …").
//
//	gomutex GOROUTINES ITERATIONS [RW]
package main

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

var (
	mu      sync.Mutex
	counter int64
	sink    int64

	tableMu sync.RWMutex
	table   = map[int]int{}
	reads   int64
	writes  int64
	readsMu sync.Mutex
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

//go:noinline
func readTable(k int) int {
	tableMu.RLock()
	v := table[k%64]
	for i := 0; i < 100; i++ {
		v += i
	}
	tableMu.RUnlock()
	return v
}

//go:noinline
func writeTable(k int) {
	tableMu.Lock()
	table[k%64] = k
	for i := 0; i < 300; i++ {
		sink += int64(i)
	}
	tableMu.Unlock()
}

func main() {
	n, _ := strconv.Atoi(os.Args[1])
	iters, _ := strconv.Atoi(os.Args[2])
	rw := 0
	if len(os.Args) > 3 {
		rw, _ = strconv.Atoi(os.Args[3])
	}
	runtime.SetMutexProfileFraction(1)
	fmt.Printf("pid=%d\n", os.Getpid())
	b := make([]byte, 1)
	if _, err := os.Stdin.Read(b); err != nil {
		os.Exit(3)
	}
	start := time.Now()
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
	// One phase after the other, so each lock is contended on 2 CPUs.
	wg.Wait()
	var r, w int64
	for i := 0; i < rw; i++ {
		wg.Add(2)
		go func(i int) {
			defer wg.Done()
			var mine int64
			for j := 0; j < iters; j++ {
				sink += int64(readTable(j))
				mine++
			}
			readsMu.Lock()
			r += mine
			readsMu.Unlock()
		}(i)
		go func(i int) {
			defer wg.Done()
			var mine int64
			for j := 0; j < iters/4; j++ {
				writeTable(j)
				mine++
			}
			readsMu.Lock()
			w += mine
			readsMu.Unlock()
		}(i)
	}
	wg.Wait()
	reads, writes = r, w
	fmt.Printf("acquisitions=%d reads=%d writes=%d\n", counter, reads, writes)
	// Its own time from the go on stdin to the end of both phases.
	fmt.Printf("work_ns=%d\n", time.Since(start).Nanoseconds())
	// The runtime's own count of contended unlocks, per main function.
	var recs []runtime.BlockProfileRecord
	for {
		k, ok := runtime.MutexProfile(recs)
		if ok {
			recs = recs[:k]
			break
		}
		recs = make([]runtime.BlockProfileRecord, k+16)
	}
	per := map[string]int64{}
	for _, rec := range recs {
		frames := runtime.CallersFrames(rec.Stack())
		for {
			f, more := frames.Next()
			if strings.HasPrefix(f.Function, "main.") {
				per[f.Function] += rec.Count
				break
			}
			if !more {
				break
			}
		}
	}
	names := make([]string, 0, len(per))
	for k := range per {
		names = append(names, k)
	}
	sort.Strings(names)
	out := []string{"profile"}
	for _, k := range names {
		out = append(out, fmt.Sprintf("%s=%d", k, per[k]))
	}
	fmt.Println(strings.Join(out, " "))
}
