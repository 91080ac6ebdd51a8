//! Kernel programs of `tracer`. One module per hook family; the maps they
//! share live in `maps`. Everything aggregates in maps: nothing is sent to
//! userspace per event.
#![no_std]
#![no_main]
#![feature(core_intrinsics)]
#![expect(
    internal_features,
    reason = "core::intrinsics::atomic_xadd: BPF has no AtomicU64 RMW"
)]

mod futex;
mod klock;
mod maps;
mod profile;
mod sched;
mod task;
mod uprobe;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // Unreachable in a verified program: the verifier rejects any path that
    // could get here, and the code has no indexing or unwrap that could.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
