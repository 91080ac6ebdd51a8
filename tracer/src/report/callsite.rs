//! What a lock's stacks say: which frame is its caller (the first one
//! outside the lock implementation) and what kind of lock it is (the
//! innermost frame that names a lock or wait primitive).

use super::model::Frame;

/// Frames that belong to the lock implementation rather than its caller.
pub fn is_lock_impl(f: &Frame) -> bool {
    let module = f
        .module
        .as_deref()
        .and_then(|m| m.rsplit('/').next())
        .unwrap_or("");
    if ["libc.so", "libpthread", "ld-linux", "libc-", "ld-"]
        .iter()
        .any(|p| module.starts_with(p))
    {
        return true;
    }
    let Some(sym) = f.symbol.as_deref() else {
        return module.is_empty();
    };
    // `<std::sys::…::Mutex>::lock_contended`: an inherent method's path.
    let sym = sym.trim_start_matches('<');
    const IMPL: &[&str] = &[
        "__lll_",
        "___pthread",
        "__pthread",
        "pthread_",
        "__futex",
        "futex",
        "syscall",
        "__GI_",
        "std::sys::",
        "std::sync::",
        "core::",
        "parking_lot",
        "lock_api::",
        "std::thread::",
        "std::mutex::",
        "__gthread",
    ];
    IMPL.iter().any(|p| sym.starts_with(p))
}

/// The first frame outside the lock implementation.
pub fn caller(frames: &[Frame]) -> Option<&Frame> {
    frames.iter().find(|f| !is_lock_impl(f))
}

/// Name patterns (lower case) of lock and wait primitives, by kind. Matched
/// innermost frame first, so a condvar wait re-taking its mutex
/// (`__lll_lock_wait` inside `pthread_cond_wait`) is a mutex wait.
const KINDS: &[(&str, &[&str])] = &[
    (
        "mutex",
        &[
            "__lll_lock_wait",
            "pthread_mutex",
            "mutex::futex::mutex",
            "sync::mutex::",
            "raw_mutex",
            "mtx_lock",
            "mtx_timedlock",
        ],
    ),
    (
        "rwlock",
        &["pthread_rwlock", "rwlock::", "raw_rwlock", "rwlock_"],
    ),
    (
        "condvar",
        &[
            "pthread_cond_",
            "__pthread_cond",
            "cnd_wait",
            "cnd_timedwait",
            "condvar::",
        ],
    ),
    (
        "wait",
        &[
            "pthread_join",
            "pthread_clockjoin",
            "pthread_timedjoin",
            "pthread_barrier",
            "sem_wait",
            "sem_timedwait",
            "sem_clockwait",
            "thread_parking",
            "parker::park",
            "thread::park",
            "once::",
            "pthread_once",
        ],
    ),
];

/// The kind one stack shows, with the frame that decided it; None when no
/// frame names a primitive.
pub fn kind_of(frames: &[Frame]) -> Option<(&'static str, String)> {
    for f in frames {
        let Some(sym) = f.symbol.as_deref() else {
            continue;
        };
        let low = sym.to_lowercase();
        for (kind, pats) in KINDS {
            if pats.iter().any(|p| low.contains(p)) {
                return Some((kind, sym.to_string()));
            }
        }
    }
    None
}

/// Waits on these kinds are threads waiting for an event, not for a lock.
pub fn is_lock_kind(kind: &str) -> bool {
    !matches!(kind, "condvar" | "wait")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(sym: &str, module: &str) -> Frame {
        Frame {
            symbol: Some(sym.into()),
            module: Some(module.into()),
            ..Default::default()
        }
    }

    const LIBC: &str = "/usr/lib/x86_64-linux-gnu/libc.so.6";

    #[test]
    fn glibc_mutex_caller_and_kind() {
        let s = [
            f("__lll_lock_wait", LIBC),
            f("___pthread_mutex_lock", LIBC),
            f("sequencer_assign", "/opt/app"),
            f("sequencer_worker", "/opt/app"),
            f("start_thread", LIBC),
        ];
        assert_eq!(
            caller(&s).unwrap().symbol.as_deref(),
            Some("sequencer_assign")
        );
        assert_eq!(kind_of(&s).unwrap().0, "mutex");
    }

    #[test]
    fn condvar_wait_vs_its_mutex_reacquire() {
        let wait = [
            f("__futex_abstimed_wait_common", LIBC),
            f("___pthread_cond_wait", LIBC),
            f("consumer", "/opt/app"),
        ];
        assert_eq!(kind_of(&wait).unwrap().0, "condvar");
        assert!(!is_lock_kind("condvar"));
        let relock = [
            f("__lll_lock_wait", LIBC),
            f("__pthread_mutex_cond_lock", LIBC),
            f("___pthread_cond_wait", LIBC),
            f("consumer", "/opt/app"),
        ];
        assert_eq!(kind_of(&relock).unwrap().0, "mutex");
    }

    #[test]
    fn rust_std_primitives() {
        let m = [
            f("std::sys::pal::unix::futex::futex_wait", "/opt/r"),
            f(
                "std::sys::sync::mutex::futex::Mutex::lock_contended",
                "/opt/r",
            ),
            f("app::assign", "/opt/r"),
        ];
        assert_eq!(kind_of(&m).unwrap().0, "mutex");
        assert_eq!(caller(&m).unwrap().symbol.as_deref(), Some("app::assign"));
        let inherent = [
            f("syscall", LIBC),
            f(
                "<std::sys::sync::mutex::futex::Mutex>::lock_contended",
                "/opt/r",
            ),
            f("std::sync::poison::mutex::Mutex<T>::lock", "/opt/r"),
            f("app::main::{{closure}}", "/opt/r"),
        ];
        assert_eq!(
            caller(&inherent).unwrap().symbol.as_deref(),
            Some("app::main::{{closure}}")
        );
        let c = [
            f("std::sys::pal::unix::futex::futex_wait", "/opt/r"),
            f("std::sys::sync::condvar::futex::Condvar::wait", "/opt/r"),
            f("app::consume", "/opt/r"),
        ];
        assert_eq!(kind_of(&c).unwrap().0, "condvar");
        let r = [f(
            "std::sys::sync::rwlock::futex::RwLock::write_contended",
            "/opt/r",
        )];
        assert_eq!(kind_of(&r).unwrap().0, "rwlock");
        let p = [f(
            "std::sys::sync::thread_parking::futex::Parker::park",
            "/opt/r",
        )];
        assert_eq!(kind_of(&p).unwrap().0, "wait");
        assert!(kind_of(&[f("syscall", LIBC), f("main", "/opt/r")]).is_none());
    }
}
