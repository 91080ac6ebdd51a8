//! OpenJDK HotSpot (17): a thread waiting for a `synchronized` monitor
//! parks on its own ParkEvent (ObjectMonitor::EnterI), and one waiting in
//! java.util.concurrent parks on its own Parker (Unsafe_Park): both are
//! parked locks, named by their call site — the JIT-compiled frame that
//! entered the monitor or called park (Java names come with a perf map).
//! A j.u.c. park is a ReentrantLock acquire, or a Condition or queue wait:
//! native frames cannot tell them apart, so its kind says so (`juc-park`);
//! a timed park (parkNanos: pools, timed waits) is an event.
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
    ],
};

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
}
