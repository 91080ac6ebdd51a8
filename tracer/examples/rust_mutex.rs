//! A Rust `std::sync::Mutex` under contention (std's futex mutex waits with
//! FUTEX_WAIT_BITSET). Used by the integration tests; also a quick way to
//! see the tracer on a Rust program:
//!
//!     cargo run --example rust_mutex -- 4 200000 < /dev/null &
//!     sudo tracer contention --pid $!
//!
//! Prints "pid=P", waits for one byte on stdin (EOF also starts it), runs
//! THREADS threads doing ITERATIONS lock/unlock each, prints its own count.

use std::{
    io::Read as _,
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

static SEQUENCER_STATE: Mutex<u64> = Mutex::new(0);
static GO: AtomicBool = AtomicBool::new(false);

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (threads, iterations) = (
        args.first().copied().unwrap_or(4),
        args.get(1).copied().unwrap_or(100_000),
    );
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            std::thread::spawn(move || {
                // Start together (yield, no futex): staggered starts can let
                // one thread finish alone and never contend.
                while !GO.load(Ordering::Acquire) {
                    std::thread::yield_now();
                }
                for _ in 0..iterations {
                    let mut n = SEQUENCER_STATE.lock().unwrap();
                    *n += 1;
                    std::hint::black_box(&mut *n);
                }
            })
        })
        .collect();
    println!("pid={}", std::process::id());
    let _ = std::io::stdin().read(&mut [0u8]);
    GO.store(true, Ordering::Release);
    for w in workers {
        w.join().unwrap();
    }
    println!("acquisitions={}", *SEQUENCER_STATE.lock().unwrap());
}
