//! A `parking_lot::Mutex` under contention: each waiter parks on a futex
//! word of its own (parking_lot_core's thread parker), never on the mutex,
//! so the tracer sees one wait channel per thread and must gather them into
//! one lock, named by its call site (`apply_order`). Used by the
//! integration tests.
//!
//! Prints "pid=P", waits for one byte on stdin, runs THREADS threads doing
//! ITERATIONS lock/unlock each, prints "acquisitions=N parks=N", where
//! parks is the program's own count of lock calls that found the mutex
//! held and had to wait (a contended `try_lock` before each `lock`).

use std::{
    io::Read as _,
    sync::atomic::{AtomicU64, Ordering},
};

use parking_lot::Mutex;

static BOOK: Mutex<u64> = Mutex::new(0);
static CONTENDED: AtomicU64 = AtomicU64::new(0);

#[inline(never)]
fn apply_order(spin: u64) {
    let mut g = match BOOK.try_lock() {
        Some(g) => g,
        None => {
            CONTENDED.fetch_add(1, Ordering::Relaxed);
            BOOK.lock()
        }
    };
    *g += 1;
    let mut x = 0u64;
    for k in 0..spin {
        x = std::hint::black_box(x.wrapping_add(k));
    }
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (threads, iterations) = (
        args.first().copied().unwrap_or(4),
        args.get(1).copied().unwrap_or(100_000),
    );
    println!("pid={}", std::process::id());
    let mut b = [0u8; 1];
    let _ = std::io::stdin().read(&mut b);
    let handles: Vec<_> = (0..threads)
        .map(|_| std::thread::spawn(move || (0..iterations).for_each(|_| apply_order(300))))
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    println!(
        "acquisitions={} contended={}",
        *BOOK.lock(),
        CONTENDED.load(Ordering::Relaxed)
    );
}
