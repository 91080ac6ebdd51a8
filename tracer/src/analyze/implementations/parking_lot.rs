//! parking_lot 0.12 / parking_lot_core 0.9 / lock_api 0.4: every waiter
//! parks on a futex word of its own (thread-local), so a lock is named by
//! its call site. Read in Amanieu/parking_lot at its release tags.

use super::{Impl, Kind, Match, Role};

pub const IMPL: Impl = Impl {
    name: "parking_lot",
    shared_memory: false,
    frames: &[
        (
            Match::Contains("parking_lot::raw_mutex::RawMutex::lock_slow"),
            Role::Parked(Kind::Mutex, "parking_lot::Mutex"),
        ),
        (
            Match::Contains("parking_lot::raw_fair_mutex::RawFairMutex"),
            Role::Parked(Kind::Mutex, "parking_lot::FairMutex"),
        ),
        (
            Match::Contains("parking_lot::raw_rwlock::RawRwLock"),
            Role::Parked(Kind::Rwlock, "parking_lot::RwLock"),
        ),
        (
            Match::Contains("parking_lot::condvar::Condvar"),
            Role::Event(Kind::Condvar),
        ),
        (
            Match::Contains("parking_lot::once::Once"),
            Role::Event(Kind::Wait),
        ),
        (
            // The lock of a parking-lot hash bucket, taken inside lock and
            // unlock: its waiters park on their own thread's word too.
            Match::Contains("parking_lot_core::word_lock::WordLock"),
            Role::Parked(Kind::Mutex, "parking_lot bucket lock"),
        ),
        (
            Match::Contains("parking_lot_core::parking_lot::park"),
            Role::Park,
        ),
        (Match::Contains("parking_lot_core::"), Role::Internal),
        (Match::Contains("parking_lot::"), Role::Internal),
        (Match::Prefix("lock_api::"), Role::Internal),
        (Match::Prefix("<lock_api::"), Role::Internal),
    ],
};

#[cfg(test)]
mod tests {
    use super::super::{Decided, tests::verdict};

    #[test]
    fn parking_lot_waits() {
        let m = verdict(&[
            "syscall@libc",
            "parking_lot_core::thread_parker::imp::ThreadParker::futex_wait",
            "parking_lot_core::parking_lot::park::{{closure}}",
            "parking_lot_core::parking_lot::park",
            "parking_lot::raw_mutex::RawMutex::lock_slow",
            "lock_api::mutex::Mutex<R,T>::lock",
            "orders::apply_order",
        ]);
        assert_eq!(
            m,
            (
                Decided::Parked("parking_lot::Mutex"),
                "mutex",
                "parking_lot",
                Some("orders::apply_order".into())
            )
        );
        let cv = verdict(&[
            "syscall@libc",
            "parking_lot_core::parking_lot::park",
            "parking_lot::condvar::Condvar::wait_until_internal",
            "orders::drain",
        ]);
        assert_eq!((cv.0, cv.1), (Decided::Event, "condvar"));
    }
}
