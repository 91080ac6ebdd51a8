//! The Go runtime: its futex waits are its threads' sleeps (an idle M in
//! notesleep, sysmon, the runtime's own internal locks), never a Go
//! program's sync.Mutex, whose contention parks goroutines in the scheduler
//! (runtime.semacquire1 → gopark) without a futex. Read in golang/go
//! `runtime/lock_futex.go`, `os_linux.go`.

use super::{Impl, Kind, Match, Role};

pub const IMPL: Impl = Impl {
    name: "Go runtime",
    shared_memory: false,
    frames: &[
        // runtime.futex is the syscall itself (assembly): every futex wait
        // of the runtime goes through it, whoever called it.
        (Match::Prefix("runtime.futex"), Role::Event(Kind::GoRuntime)),
        (Match::Prefix("runtime."), Role::Internal),
    ],
};

#[cfg(test)]
mod tests {
    use super::super::{Decided, tests::verdict};

    #[test]
    fn go_runtime_waits() {
        let idle = verdict(&[
            "runtime.futex",
            "runtime.notesleep",
            "runtime.stopm",
            "runtime.findRunnable",
            "runtime.schedule",
        ]);
        assert_eq!(
            (idle.0, idle.1, idle.2),
            (Decided::Event, "go-runtime", "Go runtime")
        );
        // The runtime's internal lock, taken by a sync.Mutex unlock: still
        // the runtime's own sleep, never the verdict's lock.
        let internal = verdict(&[
            "runtime.futex",
            "runtime.futexsleep",
            "runtime.lock2",
            "runtime.semrelease1",
            "sync.runtime_Semrelease",
            "sync.(*Mutex).unlockSlow",
            "main.bumpCounter",
        ]);
        assert_eq!((internal.0, internal.1), (Decided::Event, "go-runtime"));
    }
}
