//! Rust std (1.80+, Linux futex locks): Mutex and RwLock wait on their own
//! word; Condvar, thread parking, Once and joins are events. Read in
//! rust-lang/rust `library/std/src/sys/sync/`.

use super::{Impl, Kind, Match, Role};

pub const IMPL: Impl = Impl {
    name: "Rust std",
    shared_memory: false,
    frames: &[
        (
            Match::Contains("mutex::futex::Mutex>::lock_contended"),
            Role::Word(Kind::Mutex),
        ),
        (
            Match::Contains("mutex::futex::Mutex::lock_contended"),
            Role::Word(Kind::Mutex),
        ),
        (
            Match::Contains("rwlock::futex::RwLock>::read_contended"),
            Role::Word(Kind::Rwlock),
        ),
        (
            Match::Contains("rwlock::futex::RwLock::read_contended"),
            Role::Word(Kind::Rwlock),
        ),
        (
            Match::Contains("rwlock::futex::RwLock>::write_contended"),
            Role::Word(Kind::Rwlock),
        ),
        (
            Match::Contains("rwlock::futex::RwLock::write_contended"),
            Role::Word(Kind::Rwlock),
        ),
        (
            Match::Contains("condvar::futex::Condvar"),
            Role::Event(Kind::Condvar),
        ),
        (
            Match::Contains("thread_parking::futex::Parker"),
            Role::Event(Kind::Wait),
        ),
        (
            Match::Contains("once::futex::Once"),
            Role::Event(Kind::Wait),
        ),
        (Match::Prefix("std::thread::park"), Role::Event(Kind::Wait)),
        (
            Match::Contains("std::sync::mpmc::"),
            Role::Event(Kind::Wait),
        ),
        (Match::Contains("JoinInner"), Role::Event(Kind::Wait)),
        (Match::Prefix("<std::sys::"), Role::Internal),
        (Match::Prefix("std::sys::"), Role::Internal),
        (Match::Prefix("<std::sync::"), Role::Internal),
        (Match::Prefix("std::sync::"), Role::Internal),
        (Match::Prefix("std::thread::"), Role::Internal),
        (Match::Prefix("core::"), Role::Internal),
    ],
};

#[cfg(test)]
mod tests {
    use super::super::{Decided, tests::verdict};

    #[test]
    fn rust_std_waits() {
        let m = verdict(&[
            "syscall@libc",
            "std::sys::pal::unix::futex::futex_wait",
            "std::sys::sync::mutex::futex::Mutex::lock_contended",
            "std::sync::poison::mutex::Mutex<T>::lock",
            "rust_mutex::main::{{closure}}",
        ]);
        assert_eq!(
            m,
            (
                Decided::Word,
                "mutex",
                "Rust std",
                Some("rust_mutex::main::{{closure}}".into())
            )
        );
        let cv = verdict(&[
            "syscall@libc",
            "std::sys::sync::condvar::futex::Condvar::wait_optional_timeout",
            "app::consume",
        ]);
        assert_eq!((cv.0, cv.1), (Decided::Event, "condvar"));
    }
}
