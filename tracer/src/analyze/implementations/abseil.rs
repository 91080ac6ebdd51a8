//! Abseil's absl::Mutex: a waiter sleeps on its own per-thread semaphore
//! (the futex waiter on Linux), so a lock is named by the frame that
//! called Lock(). Names carry an inline namespace (`absl::lts_20240722::`,
//! Debian's `absl::debian3::`), hence matches on the part after it. Read in
//! abseil/abseil-cpp `absl/synchronization/` at its LTS tags.

use super::{Impl, Kind, Match, Role};

pub const IMPL: Impl = Impl {
    name: "Abseil",
    shared_memory: false,
    frames: &[
        (
            Match::Contains("::Mutex::LockWhen"),
            Role::Event(Kind::Condvar),
        ),
        (
            Match::Contains("::Mutex::Await"),
            Role::Event(Kind::Condvar),
        ),
        (Match::Contains("::CondVar::"), Role::Event(Kind::Condvar)),
        (Match::Contains("::Notification::"), Role::Event(Kind::Wait)),
        (
            Match::Contains("::BlockingCounter::"),
            Role::Event(Kind::Wait),
        ),
        (Match::Contains("::Barrier::Block"), Role::Event(Kind::Wait)),
        (
            Match::Contains("::Mutex::ReaderLock"),
            Role::Parked(Kind::Rwlock, "absl::Mutex (shared)"),
        ),
        (
            Match::Contains("::Mutex::LockSlow"),
            Role::Parked(Kind::Mutex, "absl::Mutex"),
        ),
        (Match::Contains("::Mutex::Block("), Role::Internal),
        (Match::Contains("::Mutex::Lock()"), Role::Internal),
        (Match::Contains("::Mutex::Unlock()"), Role::Internal),
        (Match::Contains("::MutexLock::"), Role::Internal),
        (Match::Contains("::SpinLock::"), Role::Word(Kind::Spinlock)),
        (Match::Prefix("AbslInternalSpinLockDelay"), Role::Internal),
        (Match::Prefix("AbslInternalPerThreadSemWait"), Role::Park),
        (
            Match::Contains("synchronization_internal::"),
            Role::Internal,
        ),
        (Match::Contains("base_internal::"), Role::Internal),
    ],
};

#[cfg(test)]
mod tests {
    use super::super::{Decided, tests::verdict};

    #[test]
    fn abseil_waits() {
        let m = verdict(&[
            "syscall@libc",
            "absl::debian3::synchronization_internal::FutexWaiter::Wait(absl::debian3::synchronization_internal::KernelTimeout)",
            "AbslInternalPerThreadSemWait_debian3",
            "absl::debian3::Mutex::Block(absl::debian3::base_internal::PerThreadSynch*)",
            "absl::debian3::Mutex::LockSlowLoop(absl::debian3::SynchWaitParams*, int)",
            "absl::debian3::Mutex::LockSlowWithDeadline(absl::debian3::MuHowS const*, absl::debian3::Condition const*, absl::debian3::synchronization_internal::KernelTimeout, int)",
            "absl::debian3::Mutex::LockSlow(absl::debian3::MuHowS const*, absl::debian3::Condition const*, int)",
            "absl::debian3::Mutex::Lock()",
            "apply_update(long)",
        ]);
        assert_eq!(
            m,
            (
                Decided::Parked("absl::Mutex"),
                "mutex",
                "Abseil",
                Some("apply_update(long)".into())
            )
        );
        let cv = verdict(&[
            "syscall@libc",
            "AbslInternalPerThreadSemWait_lts_20240722",
            "absl::lts_20240722::CondVar::WaitCommon(absl::lts_20240722::Mutex*, absl::lts_20240722::synchronization_internal::KernelTimeout)",
            "consume()",
        ]);
        assert_eq!((cv.0, cv.1), (Decided::Event, "condvar"));
    }
}
