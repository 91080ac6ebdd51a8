//! A uprobe target with known calls, latencies and allocations, for the
//! integration tests:
//! - `probe_target_sleep(us)`: C ABI, unmangled, sleeps `us` µs;
//! - `probe_target::orders::assign`: a mangled Rust function;
//! - `malloc` of 777 bytes ALLOCS times and of 12345 bytes ALLOCS/2 times.
//!
//! Prints "pid=P", waits for one byte on stdin, runs, prints its counts.
//!
//!     probe_target CALLS SLEEP_US ALLOCS

use std::{io::Read as _, time::Duration};

#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn probe_target_sleep(us: u64) {
    std::thread::sleep(Duration::from_micros(us));
}

mod orders {
    #[inline(never)]
    pub fn assign(n: u64) -> u64 {
        std::hint::black_box(n).wrapping_mul(2654435761)
    }
}

fn main() {
    let a: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (calls, sleep_us, allocs) = (a[0], a[1], a[2]);
    println!("pid={}", std::process::id());
    let _ = std::io::stdin().read(&mut [0u8]);
    let mut sum = 0u64;
    let mut took = Vec::with_capacity(calls as usize);
    for i in 0..calls {
        let t = std::time::Instant::now();
        probe_target_sleep(sleep_us);
        took.push(t.elapsed().as_nanos() as u64);
        sum = sum.wrapping_add(orders::assign(i));
    }
    took.sort_unstable();
    let median = took.get(took.len() / 2).copied().unwrap_or(0);
    let mut ptrs = Vec::with_capacity((allocs + allocs / 2) as usize);
    for i in 0..allocs + allocs / 2 {
        let size = if i < allocs { 777 } else { 12345 };
        // SAFETY: plain libc allocation, freed below.
        ptrs.push(unsafe { libc::malloc(size) });
    }
    for p in ptrs {
        // SAFETY: each pointer came from malloc above.
        unsafe { libc::free(p) };
    }
    println!(
        "calls={calls} median_ns={median} assigns={calls} mallocs_777={allocs} mallocs_12345={} sum={sum}",
        allocs / 2
    );
}
