//! OpenJDK HotSpot (17): a thread waiting for a `synchronized` monitor
//! parks on its own ParkEvent (ObjectMonitor::EnterI), and one waiting in
//! java.util.concurrent parks on its own Parker (Unsafe_Park): both are
//! parked locks, named by their call site — the JIT-compiled frame that
//! entered the monitor or called park (Java names come with a perf map).
//! A j.u.c. park is a ReentrantLock acquire, or a Condition or queue wait:
//! native frames cannot tell them apart, so without Java names its kind
//! says so (`juc-park`) and a timed park (parkNanos: pools, timed waits) is
//! an event; with a perf map, the Java frames above the park decide
//! (`ReentrantLock`, an AQS acquire, a Condition's await, a latch).
//! `Object.wait` and the VM's own monitors waiting are events. Read in
//! openjdk/jdk17u `objectMonitor.cpp`, `os_posix.cpp`.

use super::{Impl, Kind, Match, Role};

pub const IMPL: Impl = Impl {
    name: "HotSpot",
    shared_memory: false,
    frames: &[
        (
            Match::Prefix("ObjectMonitor::wait"),
            Role::Event(Kind::Wait),
        ),
        (Match::Prefix("JVM_MonitorWait"), Role::Event(Kind::Wait)),
        (
            Match::Prefix("ObjectMonitor::EnterI"),
            Role::Parked(Kind::Monitor, "Java monitor"),
        ),
        (
            Match::Prefix("ObjectMonitor::ReenterI"),
            Role::Parked(Kind::Monitor, "Java monitor"),
        ),
        (Match::Prefix("ObjectMonitor::enter"), Role::Internal),
        (Match::Prefix("ObjectSynchronizer::"), Role::Internal),
        (
            Match::Prefix("SharedRuntime::complete_monitor_locking"),
            Role::Internal,
        ),
        (
            Match::Prefix("InterpreterRuntime::monitorenter"),
            Role::Internal,
        ),
        (
            Match::Prefix("SharedRuntime::monitor_enter_helper"),
            Role::Internal,
        ),
        (Match::Prefix("Runtime1::monitorenter"), Role::Internal),
        (
            Match::Prefix("Unsafe_Park"),
            Role::Parked(Kind::JucPark, "j.u.c. lock or condition"),
        ),
        // Parker::park waits untimed in pthread_cond_wait, timed in
        // pthread_cond_timedwait: the timed one is a timed wait, an event.
        (Match::Prefix("Parker::park"), Role::Internal),
        (Match::Prefix("os::PlatformEvent::park"), Role::Internal),
        // The VM's own mutexes are pthread mutexes: wrappers here.
        (Match::Prefix("Mutex::lock"), Role::Internal),
        (Match::Prefix("Monitor::wait"), Role::Event(Kind::Wait)),
        (
            Match::Prefix("os::PlatformMonitor::wait"),
            Role::Event(Kind::Wait),
        ),
        (Match::Prefix("os::PlatformMutex::lock"), Role::Internal),
        (Match::Prefix("JavaThread::sleep"), Role::Event(Kind::Wait)),
        // Java frames (named by a perf map: `CLASS.METHOD(PARAMS)`). Above
        // Unsafe_Park, the outermost of these before the caller says what
        // the park was for.
        (
            Match::Contains("$ConditionObject.await"),
            Role::Event(Kind::Condvar),
        ),
        (
            Match::Prefix("java.util.concurrent.locks.ReentrantReadWriteLock"),
            Role::Parked(Kind::Rwlock, "ReentrantReadWriteLock"),
        ),
        (
            Match::Prefix("java.util.concurrent.locks.ReentrantLock"),
            Role::Parked(Kind::Mutex, "ReentrantLock"),
        ),
        (
            Match::Prefix("java.util.concurrent.locks.StampedLock"),
            Role::Parked(Kind::Rwlock, "StampedLock"),
        ),
        (
            Match::Prefix("java.util.concurrent.Semaphore"),
            Role::Parked(Kind::SemaphoreLock, "Semaphore"),
        ),
        (
            Match::Prefix("java.util.concurrent.locks.AbstractQueuedSynchronizer.acquire("),
            Role::Parked(Kind::Mutex, "j.u.c. lock"),
        ),
        (
            Match::Prefix("java.util.concurrent.locks.AbstractQueuedSynchronizer.acquireShared"),
            Role::Parked(Kind::Rwlock, "j.u.c. shared lock"),
        ),
        (
            Match::Prefix("java.util.concurrent.CountDownLatch"),
            Role::Event(Kind::Wait),
        ),
        (
            Match::Prefix("java.util.concurrent.CyclicBarrier"),
            Role::Event(Kind::Wait),
        ),
        (
            Match::Prefix("java.util.concurrent.Phaser"),
            Role::Event(Kind::Wait),
        ),
        (
            Match::Prefix("java.util.concurrent.FutureTask"),
            Role::Event(Kind::Wait),
        ),
        (
            Match::Prefix("java.util.concurrent.CompletableFuture"),
            Role::Event(Kind::Wait),
        ),
        (
            Match::Prefix("java.util.concurrent.SynchronousQueue"),
            Role::Event(Kind::Wait),
        ),
        (
            Match::Prefix("java.util.concurrent.Exchanger"),
            Role::Event(Kind::Wait),
        ),
        (Match::Prefix("java.util.concurrent.locks."), Role::Internal),
        (
            Match::Prefix("jdk.internal.misc.Unsafe.park"),
            Role::Internal,
        ),
        (Match::Prefix("sun.misc.Unsafe.park"), Role::Internal),
        (
            Match::Prefix("java.lang.Object.wait"),
            Role::Event(Kind::Wait),
        ),
    ],
};

/// A frame named by a JIT's perf map (`/tmp/perf-PID.map`).
pub fn is_java(f: &crate::report::model::Frame) -> bool {
    f.module
        .as_deref()
        .is_some_and(|m| m.starts_with("/tmp/perf-") && m.ends_with(".map"))
}

/// A perf-map frame of the VM's own generated code (a stub, an adapter;
/// not a Java method, whose names have parameters, nor the interpreter).
pub fn is_vm_blob(f: &crate::report::model::Frame) -> bool {
    is_java(f)
        && f.symbol
            .as_deref()
            .is_some_and(|s| !s.contains('(') && s != "Interpreter")
}

/// The interpreter: a Java method it runs has no name in the perf map.
pub fn is_interpreter(f: &crate::report::model::Frame) -> bool {
    is_java(f) && f.symbol.as_deref() == Some("Interpreter")
}

/// A j.u.c. park that waited with a timeout (parkNanos / parkUntil) is a
/// timed wait — a pool's idle worker, a timed condition — not a lock.
pub fn timed_park(frames: &[crate::report::model::Frame]) -> bool {
    let park = frames.iter().position(|f| {
        f.symbol
            .as_deref()
            .is_some_and(|s| s.starts_with("Parker::park"))
    });
    park.is_some_and(|p| {
        frames[..p].iter().any(|f| {
            f.symbol
                .as_deref()
                .is_some_and(|s| s.contains("pthread_cond_timedwait"))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::super::{Decided, tests::verdict};

    #[test]
    fn hotspot_waits() {
        let monitor = verdict(&[
            "__futex_abstimed_wait_common@libc",
            "___pthread_cond_wait@libc",
            "os::PlatformEvent::park()",
            "ObjectMonitor::EnterI(JavaThread*)",
            "ObjectMonitor::enter(JavaThread*)",
            "ObjectSynchronizer::enter(Handle, BasicLock*, JavaThread*)",
            "SharedRuntime::complete_monitor_locking_C(oopDesc*, BasicLock*, JavaThread*)",
            "0x7f6f70a38528",
        ]);
        assert_eq!(
            (monitor.0, monitor.1),
            (Decided::Parked("Java monitor"), "monitor")
        );
        let juc = verdict(&[
            "__futex_abstimed_wait_common@libc",
            "___pthread_cond_wait@libc",
            "Parker::park(bool, long)",
            "Unsafe_Park",
            "0x7f6f70ed9755",
        ]);
        assert_eq!(
            (juc.0, juc.1),
            (Decided::Parked("j.u.c. lock or condition"), "juc-park")
        );
        let wait = verdict(&[
            "__futex_abstimed_wait_common@libc",
            "___pthread_cond_timedwait64@libc",
            "os::PlatformMonitor::wait(long)",
            "Monitor::wait(long)",
            "VMThread::loop()",
        ]);
        assert_eq!((wait.0, wait.1), (Decided::Event, "wait"));
        let timed = super::super::tests::stack(&[
            "__futex_abstimed_wait_common@libc",
            "___pthread_cond_timedwait64@libc",
            "Parker::park(bool, long)",
            "Unsafe_Park",
        ]);
        assert!(super::timed_park(&timed));
    }

    /// Native frames, then Java frames as a perf map names them.
    fn java_stack(native: &[&str], java: &[&str]) -> Vec<crate::report::model::Frame> {
        let mut v = super::super::tests::stack(native);
        v.extend(java.iter().map(|n| crate::report::model::Frame {
            addr: "0x7f00".into(),
            symbol: Some(n.to_string()),
            module: Some("/tmp/perf-42.map".into()),
            ..Default::default()
        }));
        v
    }

    const PARK: &[&str] = &[
        "__futex_abstimed_wait_common@libc",
        "___pthread_cond_wait@libc",
        "Parker::park(bool, long)",
        "Unsafe_Park",
    ];

    #[test]
    fn java_frames_name_the_lock_and_its_caller() {
        use super::super::{Kind, classify};
        let lock = java_stack(
            PARK,
            &[
                "jdk.internal.misc.Unsafe.park(boolean, long)",
                "java.util.concurrent.locks.LockSupport.park(java.lang.Object)",
                "java.util.concurrent.locks.AbstractQueuedSynchronizer.acquire(java.util.concurrent.locks.AbstractQueuedSynchronizer$Node, int, boolean, boolean, boolean, long)",
                "java.util.concurrent.locks.ReentrantLock$Sync.lock()",
                "java.util.concurrent.locks.ReentrantLock.lock()",
                "LockHot.cachePut()",
                "Interpreter",
            ],
        );
        let c = classify(&lock);
        assert_eq!(c.role, Decided::Parked("ReentrantLock"));
        assert_eq!(c.kind, Kind::Mutex);
        assert_eq!(
            c.caller.and_then(|i| lock[i].symbol.clone()).as_deref(),
            Some("LockHot.cachePut()")
        );
        // With ReentrantLock.lock inlined into the caller: the AQS acquire.
        let inlined = java_stack(
            PARK,
            &[
                "java.util.concurrent.locks.AbstractQueuedSynchronizer.acquire(int)",
                "LockHot.cachePut()",
            ],
        );
        assert_eq!(classify(&inlined).role, Decided::Parked("j.u.c. lock"));
        // A condition wait, and a queue's take through one, are no lock.
        let cond = java_stack(
            PARK,
            &[
                "java.util.concurrent.locks.LockSupport.park(java.lang.Object)",
                "java.util.concurrent.locks.AbstractQueuedSynchronizer$ConditionObject.await()",
                "java.util.concurrent.LinkedBlockingQueue.take()",
            ],
        );
        let c = classify(&cond);
        assert_eq!((c.role, c.kind), (Decided::Event, Kind::Condvar));
        // A timed tryLock is a lock wait, not a timed park.
        let try_lock = java_stack(
            &[
                "__futex_abstimed_wait_common@libc",
                "___pthread_cond_timedwait64@libc",
                "Parker::park(bool, long)",
                "Unsafe_Park",
            ],
            &[
                "java.util.concurrent.locks.ReentrantLock.tryLock(long, java.util.concurrent.TimeUnit)",
                "Orders.post()",
            ],
        );
        assert_eq!(classify(&try_lock).role, Decided::Parked("ReentrantLock"));
        // A monitor entered from compiled code through the VM's stub.
        let monitor = java_stack(
            &[
                "__futex_abstimed_wait_common@libc",
                "___pthread_cond_wait@libc",
                "os::PlatformEvent::park()",
                "ObjectMonitor::EnterI(JavaThread*)",
                "ObjectMonitor::enter(JavaThread*)",
                "ObjectSynchronizer::enter(Handle, BasicLock*, JavaThread*)",
                "SharedRuntime::complete_monitor_locking_C(oopDesc*, BasicLock*, JavaThread*)",
            ],
            &["_complete_monitor_locking_Java", "LockHot.ledgerPost()"],
        );
        let c = classify(&monitor);
        assert_eq!(c.role, Decided::Parked("Java monitor"));
        assert_eq!(
            c.caller.and_then(|i| monitor[i].symbol.clone()).as_deref(),
            Some("LockHot.ledgerPost()")
        );
    }
}
