//! musl (1.2.x, usually static): its mutex waits on the lock's own word
//! through `__timedwait`; condition variables, semaphores and joins are
//! events. musl is built without unwind tables, so these frames come from
//! the unwinder's stack scan (unwind.rs). Read in bminor/musl `src/thread/`.

use super::{Impl, Kind, Match, Role};

pub const IMPL: Impl = Impl {
    name: "musl",
    shared_memory: false,
    frames: &[
        (
            Match::Exact("__pthread_mutex_timedlock"),
            Role::Word(Kind::Mutex),
        ),
        (
            Match::Exact("pthread_mutex_timedlock_pi"),
            Role::Word(Kind::PiMutex),
        ),
        (
            Match::Exact("__pthread_mutex_lock"),
            Role::Word(Kind::Mutex),
        ),
        (
            Match::Prefix("__pthread_rwlock_timed"),
            Role::Word(Kind::Rwlock),
        ),
        (Match::Prefix("pthread_rwlock_"), Role::Word(Kind::Rwlock)),
        (Match::Exact("__lock"), Role::Word(Kind::Mutex)),
        (
            Match::Prefix("__pthread_cond_timedwait"),
            Role::Event(Kind::Condvar),
        ),
        (Match::Prefix("pthread_cond_"), Role::Event(Kind::Condvar)),
        (
            Match::Prefix("__pthread_timedjoin"),
            Role::Event(Kind::Wait),
        ),
        (Match::Prefix("__pthread_join"), Role::Event(Kind::Wait)),
        (
            Match::Exact("pthread_barrier_wait"),
            Role::Event(Kind::Wait),
        ),
        (Match::Exact("__pthread_once"), Role::Event(Kind::Wait)),
        (Match::Exact("sem_timedwait"), Role::Park),
        (Match::Exact("sem_wait"), Role::Park),
        (Match::Exact("__wait"), Role::Internal),
        (Match::Prefix("__timedwait"), Role::Internal),
        (Match::Prefix("__syscall_cp"), Role::Internal),
        (Match::Exact("sccp"), Role::Internal),
        (Match::Exact("__futexwait"), Role::Internal),
    ],
};

#[cfg(test)]
mod tests {
    use super::super::{Decided, tests::verdict};

    #[test]
    fn musl_waits() {
        let m = verdict(&[
            "sccp",
            "__timedwait_cp",
            "__timedwait",
            "__pthread_mutex_timedlock",
            "credit_account",
            "worker",
        ]);
        assert_eq!(
            m,
            (
                Decided::Word,
                "mutex",
                "musl",
                Some("credit_account".into())
            )
        );
        let c = verdict(&[
            "__syscall_cp_asm",
            "__timedwait_cp",
            "__pthread_cond_timedwait",
            "consume",
        ]);
        assert_eq!((c.0, c.1), (Decided::Event, "condvar"));
    }
}
