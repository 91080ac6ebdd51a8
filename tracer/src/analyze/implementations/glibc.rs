//! glibc (2.36–2.41, nptl): its mutex and rwlock wait on the lock's own
//! word; condition variables, semaphores, joins, once and barriers are
//! event waits (a semaphore under a lock-like function is a lock: see
//! `classify`). Read in bminor/glibc `nptl/` at glibc-2.36 and glibc-2.41.

use super::{Impl, Kind, Match, Role};

pub const IMPL: Impl = Impl {
    name: "glibc",
    shared_memory: false,
    frames: &[
        // A condition variable re-taking its mutex after a wakeup waits on
        // the mutex: listed first, innermost wins.
        (Match::Contains("__lll_lock_wait"), Role::Word(Kind::Mutex)),
        (
            Match::Contains("__futex_lock_pi"),
            Role::Word(Kind::PiMutex),
        ),
        (
            Match::Contains("pthread_mutex_cond_lock"),
            Role::Word(Kind::Mutex),
        ),
        (
            Match::Contains("pthread_mutex_clocklock"),
            Role::Word(Kind::Mutex),
        ),
        (
            Match::Contains("pthread_mutex_timedlock"),
            Role::Word(Kind::Mutex),
        ),
        (
            Match::Contains("pthread_mutex_lock"),
            Role::Word(Kind::Mutex),
        ),
        (Match::Contains("pthread_rwlock_"), Role::Word(Kind::Rwlock)),
        (
            Match::Contains("pthread_spin_lock"),
            Role::Word(Kind::Spinlock),
        ),
        (Match::Contains("pthread_cond_"), Role::Event(Kind::Condvar)),
        (Match::Contains("__condvar_"), Role::Event(Kind::Condvar)),
        (
            Match::Contains("pthread_clockjoin"),
            Role::Event(Kind::Wait),
        ),
        (
            Match::Contains("pthread_timedjoin"),
            Role::Event(Kind::Wait),
        ),
        (Match::Contains("pthread_join"), Role::Event(Kind::Wait)),
        (Match::Contains("pthread_once"), Role::Event(Kind::Wait)),
        (
            Match::Contains("pthread_barrier_wait"),
            Role::Event(Kind::Wait),
        ),
        // C11 threads.
        (Match::Prefix("mtx_lock"), Role::Word(Kind::Mutex)),
        (Match::Prefix("mtx_timedlock"), Role::Word(Kind::Mutex)),
        (Match::Prefix("cnd_"), Role::Event(Kind::Condvar)),
        (Match::Prefix("thrd_join"), Role::Event(Kind::Wait)),
        // A semaphore: a lock or an event by its caller.
        (Match::Contains("sem_wait"), Role::Park),
        (Match::Contains("sem_timedwait"), Role::Park),
        (Match::Contains("sem_clockwait"), Role::Park),
        (Match::Contains("do_futex_wait"), Role::Internal),
        (Match::Contains("__futex_abstimed_wait"), Role::Internal),
        (Match::Contains("__internal_syscall_cancel"), Role::Internal),
        (Match::Contains("__syscall_cancel"), Role::Internal),
        (
            Match::Contains("__pthread_enable_asynccancel"),
            Role::Internal,
        ),
        (Match::Exact("syscall"), Role::Internal),
        (Match::Prefix("__GI___"), Role::Internal),
    ],
};

#[cfg(test)]
mod tests {
    use super::super::{Decided, tests::verdict};

    #[test]
    fn glibc_waits() {
        let mutex = verdict(&[
            "__GI___lll_lock_wait@libc",
            "___pthread_mutex_lock@libc",
            "sequencer_assign",
            "sequencer_worker",
        ]);
        assert_eq!(
            mutex,
            (
                Decided::Word,
                "mutex",
                "glibc",
                Some("sequencer_assign".into())
            )
        );
        // The mutex re-taken inside pthread_cond_wait is the mutex's wait.
        let relock = verdict(&[
            "__GI___lll_lock_wait@libc",
            "__pthread_mutex_cond_lock@libc",
            "___pthread_cond_wait@libc",
            "consume",
        ]);
        assert_eq!((relock.0, relock.1), (Decided::Word, "mutex"));
        let cond = verdict(&[
            "__futex_abstimed_wait_common@libc",
            "___pthread_cond_wait@libc",
            "consume",
        ]);
        assert_eq!(
            (cond.0, cond.1, cond.3.as_deref()),
            (Decided::Event, "condvar", Some("consume"))
        );
        let join = verdict(&[
            "__futex_abstimed_wait_common@libc",
            "__pthread_clockjoin_ex@libc",
            "main",
        ]);
        assert_eq!((join.0, join.1), (Decided::Event, "wait"));
        let pi = verdict(&[
            "__futex_lock_pi64@libc",
            "__pthread_mutex_lock_full@libc",
            "bump_pi",
        ]);
        assert_eq!(
            (pi.0, pi.1, pi.3.as_deref()),
            (Decided::Word, "pi-mutex", Some("bump_pi"))
        );
        let rw = verdict(&[
            "__futex_abstimed_wait_common@libc",
            "___pthread_rwlock_wrlock@libc",
            "writer",
        ]);
        assert_eq!((rw.0, rw.1), (Decided::Word, "rwlock"));
    }
}
