//! PostgreSQL: an LWLock waiter sleeps on its backend's own POSIX semaphore
//! (PGSemaphoreLock → sem_wait, a shared futex), so an LWLock is named by
//! the caller of LWLockAcquire. Heavyweight locks (ProcSleep), buffer pins
//! and condition variables wait on a latch (epoll), not on a futex: they
//! show as other sleeps, not here. Read in postgres/postgres `lwlock.c`,
//! `posix_sema.c`, `proc.c`.

use super::{Impl, Kind, Match, Role};

pub const IMPL: Impl = Impl {
    name: "PostgreSQL",
    // LWLocks live in shared memory: a call site is one lock in every
    // backend.
    shared_memory: true,
    frames: &[
        (
            Match::Exact("LWLockAcquire"),
            Role::Parked(Kind::Lwlock, "LWLock"),
        ),
        (
            Match::Exact("LWLockAcquireOrWait"),
            Role::Parked(Kind::Lwlock, "LWLock"),
        ),
        (
            Match::Exact("LWLockWaitForVar"),
            Role::Parked(Kind::Lwlock, "LWLock"),
        ),
        (Match::Exact("PGSemaphoreLock"), Role::Park),
    ],
};

#[cfg(test)]
mod tests {
    use super::super::{Decided, tests::verdict};

    #[test]
    fn postgres_waits() {
        let lw = verdict(&[
            "__futex_abstimed_wait_common@libc",
            "__new_sem_wait_slow64@libc",
            "PGSemaphoreLock",
            "LWLockAcquire",
            "heap_update",
        ]);
        assert_eq!(
            lw,
            (
                Decided::Parked("LWLock"),
                "lwlock",
                "PostgreSQL",
                Some("heap_update".into())
            )
        );
        // The semaphore without an LWLock above it (a group update waiting
        // for its leader) is an event.
        let group = verdict(&[
            "__futex_abstimed_wait_common@libc",
            "__new_sem_wait_slow64@libc",
            "PGSemaphoreLock",
            "ProcArrayGroupClearXid",
        ]);
        assert_eq!((group.0, group.1), (Decided::Event, "wait"));
    }
}
