//! How each lock and wait implementation shows in a stack: one module per
//! library or runtime, each a small table of frame patterns with a test.
//! Adding an implementation is a new module and one line in `IMPLS`.
//!
//! A stack (innermost frame first) is classified by its innermost frame
//! that an implementation knows ([`classify`]):
//! - a **word** lock (glibc and musl mutexes, Rust std, InnoDB latches):
//!   the futex word waited on is the lock itself;
//! - a **parked** lock (parking_lot, Abseil, HotSpot monitors and j.u.c.
//!   parks, PostgreSQL LWLocks): each waiter sleeps on a word of its own,
//!   and the lock is named by the implementation and the frame that called
//!   its API;
//! - an **event** wait (condition variables, joins, once, barriers, a
//!   runtime's idle threads): threads waiting for something, not for a
//!   lock;
//! - a **park** primitive (a semaphore, a thread parker): a lock wait when
//!   a parked lock's slow path is above it, or when the function that
//!   called it is named like a lock function; an event otherwise.
//!
//! Precedence: the innermost word-lock frame wins (a condition variable
//! re-taking its mutex waits on the mutex); a parked lock's slow path above
//! a condvar or park frame makes the wait a lock wait, never "not a lock".

use serde::{Deserialize, Serialize};

use crate::report::model::Frame;

mod abseil;
mod glibc;
mod go;
mod hotspot;
pub use hotspot::{is_interpreter, is_java};
mod innodb;
mod musl;
mod parking_lot;
mod postgres;
mod rocksdb;
mod rust_std;

/// Every implementation known, most specific first (a frame is matched
/// against them in this order).
const IMPLS: &[&Impl] = &[
    &abseil::IMPL,
    &parking_lot::IMPL,
    &rust_std::IMPL,
    &hotspot::IMPL,
    &postgres::IMPL,
    &innodb::IMPL,
    &rocksdb::IMPL,
    &go::IMPL,
    &musl::IMPL,
    &glibc::IMPL,
];

/// What kind of lock or wait (JSON `kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Mutex,
    Rwlock,
    PiMutex,
    Spinlock,
    /// A Java `synchronized` monitor.
    Monitor,
    /// A java.util.concurrent park: a lock, or a condition/queue wait (not
    /// told apart without Java frames).
    JucPark,
    /// A PostgreSQL LWLock.
    Lwlock,
    /// An InnoDB latch (page, index, or other srw/ssux lock).
    Latch,
    /// A write queue that admits one leader at a time (RocksDB's write
    /// group).
    WriteQueue,
    /// A lock built on a semaphore or a thread parker by a function named
    /// like a lock function.
    SemaphoreLock,
    Condvar,
    /// A wait for an event: join, once, barrier, semaphore, thread park,
    /// a timed park.
    Wait,
    /// A Go runtime thread sleep (an idle M, the runtime's own locks).
    GoRuntime,
    /// A futex the frames do not explain.
    Other,
    /// No stack was unwound.
    Unknown,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Mutex => "mutex",
            Kind::Rwlock => "rwlock",
            Kind::PiMutex => "pi-mutex",
            Kind::Spinlock => "spinlock",
            Kind::Monitor => "monitor",
            Kind::JucPark => "juc-park",
            Kind::Lwlock => "lwlock",
            Kind::Latch => "latch",
            Kind::WriteQueue => "write-queue",
            Kind::SemaphoreLock => "semaphore-lock",
            Kind::Condvar => "condvar",
            Kind::Wait => "wait",
            Kind::GoRuntime => "go-runtime",
            Kind::Other => "other",
            Kind::Unknown => "unknown",
        }
    }

    /// Waits of these kinds are threads waiting for an event, not for a
    /// lock: never contention.
    pub fn is_lock(self) -> bool {
        !matches!(self, Kind::Condvar | Kind::Wait | Kind::GoRuntime)
    }

    pub fn from_name(s: &str) -> Option<Kind> {
        ALL_KINDS.iter().copied().find(|k| k.name() == s)
    }
}

const ALL_KINDS: [Kind; 15] = [
    Kind::Mutex,
    Kind::Rwlock,
    Kind::PiMutex,
    Kind::Spinlock,
    Kind::Monitor,
    Kind::JucPark,
    Kind::Lwlock,
    Kind::Latch,
    Kind::WriteQueue,
    Kind::SemaphoreLock,
    Kind::Condvar,
    Kind::Wait,
    Kind::GoRuntime,
    Kind::Other,
    Kind::Unknown,
];

/// What a matched frame means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A frame of the implementation (a wrapper, the wait path): never the
    /// caller, decides nothing.
    Internal,
    /// The slow path of a lock whose futex word is the lock.
    Word(Kind),
    /// The slow path of a lock whose waiters sleep on words of their own;
    /// the label names the lock type (`absl::Mutex`).
    Parked(Kind, &'static str),
    /// A wait for an event.
    Event(Kind),
    /// A primitive that parks the thread (lock or event, from above).
    Park,
    /// An entry point into a parked lock's implementation (RocksDB's
    /// `DBImpl::Write`): not a parked lock's call site (its caller is), but
    /// the call site of a word lock it takes itself. Decides nothing.
    Api,
}

/// How a frame's symbol is matched.
#[derive(Clone, Copy, Debug)]
pub enum Match {
    Exact(&'static str),
    Prefix(&'static str),
    Contains(&'static str),
}

impl Match {
    fn matches(self, sym: &str) -> bool {
        match self {
            Match::Exact(s) => sym == s,
            Match::Prefix(s) => sym.starts_with(s),
            Match::Contains(s) => sym.contains(s),
        }
    }
}

/// One implementation's knowledge.
pub struct Impl {
    /// As reports name it (`glibc`, `parking_lot`, `HotSpot`).
    pub name: &'static str,
    /// Whether its locks live in memory its processes share (PostgreSQL's
    /// LWLocks): a parked lock's call site is then one lock in every
    /// process of the program, not one per process.
    pub shared_memory: bool,
    /// Matched in order; the first match of a frame decides its role.
    pub frames: &'static [(Match, Role)],
}

/// Whether the implementation so named keeps its locks in shared memory.
pub fn shared_memory(implementation: &str) -> bool {
    IMPLS
        .iter()
        .any(|i| i.name == implementation && i.shared_memory)
}

impl Impl {
    fn role_of(&self, sym: &str) -> Option<Role> {
        self.frames
            .iter()
            .find(|(m, _)| m.matches(sym))
            .map(|(_, r)| *r)
    }
}

/// Whether a module is part of the C library or the dynamic loader: its
/// frames are implementation frames whatever their names.
fn libc_module(f: &Frame) -> bool {
    let module = f
        .module
        .as_deref()
        .and_then(|m| m.rsplit('/').next())
        .unwrap_or("");
    ["libc.so", "libpthread", "ld-linux", "libc-", "ld-"]
        .iter()
        .any(|p| module.starts_with(p))
}

/// The implementation and role of one frame, if any knows it.
fn frame_role(f: &Frame) -> Option<(&'static Impl, Role)> {
    let sym = f.symbol.as_deref()?;
    IMPLS
        .iter()
        .find_map(|imp| imp.role_of(sym).map(|r| (*imp, r)))
}

/// Frames that belong to a lock or wait implementation rather than to its
/// caller.
pub fn is_impl_frame(f: &Frame) -> bool {
    libc_module(f) || hotspot::is_vm_blob(f) || frame_role(f).is_some_and(|(_, r)| r != Role::Api)
}

/// A frame in no file: code generated at run time (a JIT's output, the
/// JVM's interpreter). As a call site it has no stable name.
pub fn is_generated(f: &Frame) -> bool {
    f.symbol.is_none() && f.module.is_none()
}

/// What a generated call site is called: `[Java code]` in a JVM (its
/// interpreter and JIT output), `[JIT code]` elsewhere.
pub fn generated_label(frames: &[Frame]) -> &'static str {
    if frames.iter().any(hotspot::is_java) {
        // Named by a perf map, but this code was not in it (compiled after
        // it was written, or freed).
        return "[Java code not in the perf map]";
    }
    let jvm = frames.iter().any(|f| {
        f.module
            .as_deref()
            .is_some_and(|m| m.ends_with("/libjvm.so"))
    });
    if jvm { "[Java code]" } else { "[JIT code]" }
}

/// The first frame outside the lock implementation: the call site.
pub fn caller(frames: &[Frame]) -> Option<usize> {
    frames.iter().position(|f| !is_impl_frame(f))
}

/// What a stack says about its wait.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Classification {
    pub role: Decided,
    pub kind: Kind,
    /// The implementation that decided (`glibc`, `parking_lot`), or
    /// `generic`.
    pub implementation: &'static str,
    /// The frame that decided, e.g. `absl::Mutex::LockSlow()`.
    pub frame: Option<String>,
    /// Index of the first frame outside the implementation: the call site.
    pub caller: Option<usize>,
}

/// The three things a wait can be.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Decided {
    /// The futex word is the lock.
    Word,
    /// A parked lock, named by this type label and its call site.
    Parked(&'static str),
    /// Not a lock.
    Event,
}

/// Names of lock functions, for a park primitive an implementation does
/// not explain (PostgreSQL-style locks built on semaphores).
fn lock_like(sym: &str) -> bool {
    let base = sym.split('(').next().unwrap_or(sym);
    let base = base.rsplit("::").next().unwrap_or(base).to_lowercase();
    (base.contains("lock")
        || base.contains("acquire")
        || base.contains("mutex")
        || base.contains("latch"))
        && !base.contains("unlock")
        && !base.contains("block")
        && !base.contains("clock")
}

/// Classifies one stack, innermost frame first.
pub fn classify(frames: &[Frame]) -> Classification {
    let mut c = classify_frames(frames);
    // A timed j.u.c. park (parkNanos: a pool's idle worker, a timed
    // condition) is a timed wait, not a lock acquire.
    if c.kind == Kind::JucPark && hotspot::timed_park(frames) {
        c.role = Decided::Event;
        c.kind = Kind::Wait;
    }
    c
}

fn classify_frames(frames: &[Frame]) -> Classification {
    let s = Stack {
        frames,
        roles: frames.iter().map(frame_role).collect(),
    };
    let deciding = s
        .roles
        .iter()
        .position(|r| matches!(r, Some((_, role)) if !matches!(role, Role::Internal | Role::Api)));
    let Some(d) = deciding else {
        return Classification {
            role: Decided::Word,
            kind: Kind::Other,
            implementation: "generic",
            frame: None,
            caller: s.caller_after(0),
        };
    };
    let (imp, role) = s.roles[d].expect("a deciding frame has a role");
    match role {
        // A word lock under a parked lock's slow path (a condition
        // variable re-taking its mutex inside the wait, the parker's own
        // mutex, a bucket lock) is part of waiting for the parked lock.
        Role::Word(kind) => match s.parked_above(d) {
            Some((i, imp, kind, label)) => s.parked(i, imp, kind, label),
            None => Classification {
                role: Decided::Word,
                kind,
                implementation: imp.name,
                frame: s.name(d),
                caller: s.caller_after(d + 1),
            },
        },
        Role::Parked(kind, label) => s.parked(d, imp, kind, label),
        Role::Event(kind) => match s.parked_above(d) {
            Some((i, imp, kind, label)) => s.parked(i, imp, kind, label),
            None => s.event(d, Some((imp, kind))).expect("a fallback is given"),
        },
        Role::Park => s.park(d, imp),
        Role::Internal | Role::Api => unreachable!("internal and API frames never decide"),
    }
}

/// A stack being classified: its frames, innermost first, and the role
/// each frame plays in a known implementation.
struct Stack<'a> {
    frames: &'a [Frame],
    roles: Vec<Option<(&'static Impl, Role)>>,
}

impl Stack<'_> {
    /// The first frame from `from` on that is the program's, not an
    /// implementation's.
    fn caller_after(&self, from: usize) -> Option<usize> {
        (from..self.frames.len()).find(|&i| !is_impl_frame(&self.frames[i]))
    }

    /// [`Self::caller_after`], skipping the implementations' API frames
    /// too.
    fn api_caller_after(&self, from: usize) -> Option<usize> {
        (from..self.frames.len()).find(|&i| {
            !is_impl_frame(&self.frames[i]) && !matches!(self.roles[i], Some((_, Role::Api)))
        })
    }

    fn name(&self, i: usize) -> Option<String> {
        self.frames[i].symbol.clone()
    }

    /// A parked lock's slow path further out than frame `d`: it makes an
    /// inner event or park frame a lock wait.
    fn parked_above(&self, d: usize) -> Option<(usize, &'static Impl, Kind, &'static str)> {
        (d + 1..self.frames.len()).find_map(|i| match self.roles[i] {
            Some((imp, Role::Parked(kind, label))) => Some((i, imp, kind, label)),
            _ => None,
        })
    }

    /// A wait of the parked lock at frame `i`.
    fn parked(
        &self,
        i: usize,
        imp: &'static Impl,
        kind: Kind,
        label: &'static str,
    ) -> Classification {
        if kind == Kind::JucPark {
            // Java frames above the park (a perf map names them): the
            // outermost that knows, before the caller, says what it was.
            let end = self.caller_after(i + 1).unwrap_or(self.frames.len());
            let java = (i + 1..end).rev().find_map(|j| match self.roles[j] {
                Some((imp, r @ (Role::Parked(..) | Role::Event(_)))) => Some((j, imp, r)),
                _ => None,
            });
            match java {
                Some((j, imp, Role::Parked(kind, label))) => {
                    return Classification {
                        role: Decided::Parked(label),
                        kind,
                        implementation: imp.name,
                        frame: self.name(j),
                        caller: self.api_caller_after(j + 1),
                    };
                }
                Some((j, imp, Role::Event(kind))) => {
                    return Classification {
                        role: Decided::Event,
                        kind,
                        implementation: imp.name,
                        frame: self.name(j),
                        caller: self.caller_after(j + 1),
                    };
                }
                _ => {}
            }
        }
        Classification {
            role: Decided::Parked(label),
            kind,
            implementation: imp.name,
            frame: self.name(i),
            caller: self.api_caller_after(i + 1),
        }
    }

    /// An event is named by its outermost event frame below the caller:
    /// the API the program called (`Monitor::wait` over the
    /// `pthread_cond_timedwait` it uses, `CondVar::Wait` over a park);
    /// else by `fallback`, at frame `d`.
    fn event(&self, d: usize, fallback: Option<(&'static Impl, Kind)>) -> Option<Classification> {
        let caller = self.caller_after(d + 1);
        let end = caller.unwrap_or(self.frames.len());
        let outer = (d..end).rev().find_map(|i| match self.roles[i] {
            Some((imp, Role::Event(kind))) => Some((i, imp, kind)),
            _ => None,
        });
        outer
            .map(|(i, imp, kind)| Classification {
                role: Decided::Event,
                kind,
                implementation: imp.name,
                frame: self.name(i),
                caller,
            })
            .or_else(|| {
                fallback.map(|(imp, kind)| Classification {
                    role: Decided::Event,
                    kind,
                    implementation: imp.name,
                    frame: self.name(d),
                    caller,
                })
            })
    }

    /// A bare park at frame `d` (a futex or semaphore sleep no frame
    /// explains): a parked lock's wait, an event, a lock-like caller's
    /// semaphore, else a wait.
    fn park(&self, d: usize, imp: &'static Impl) -> Classification {
        if let Some((i, imp, kind, label)) = self.parked_above(d) {
            return self.parked(i, imp, kind, label);
        }
        if let Some(c) = self.event(d, None) {
            return c;
        }
        let caller = self.caller_after(d + 1);
        match caller.and_then(|c| self.frames[c].symbol.as_deref()) {
            Some(sym) if lock_like(sym) => Classification {
                role: Decided::Parked("lock"),
                kind: Kind::SemaphoreLock,
                implementation: "generic",
                frame: self.name(d),
                caller,
            },
            _ => Classification {
                role: Decided::Event,
                kind: Kind::Wait,
                implementation: imp.name,
                frame: self.name(d),
                caller,
            },
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A stack from symbol names, innermost first (`@libc` marks a frame
    /// of libc.so.6).
    pub fn stack(names: &[&str]) -> Vec<Frame> {
        names
            .iter()
            .map(|n| {
                let (sym, module) = match n.strip_suffix("@libc") {
                    Some(s) => (s, "/usr/lib/x86_64-linux-gnu/libc.so.6"),
                    None => (*n, "/usr/bin/app"),
                };
                Frame {
                    addr: "0x1".into(),
                    symbol: (!sym.starts_with("0x")).then(|| sym.to_string()),
                    module: Some(module.into()),
                    ..Default::default()
                }
            })
            .collect()
    }

    /// (decided, kind, implementation, caller symbol) of a stack.
    pub fn verdict(names: &[&str]) -> (Decided, &'static str, &'static str, Option<String>) {
        let frames = stack(names);
        let c = classify(&frames);
        (
            c.role,
            c.kind.name(),
            c.implementation,
            c.caller.and_then(|i| frames[i].symbol.clone()),
        )
    }

    #[test]
    fn a_semaphore_under_a_lock_function_is_a_lock_and_elsewhere_an_event() {
        let lock = verdict(&[
            "__futex_abstimed_wait_common@libc",
            "__new_sem_wait_slow64@libc",
            "shared_lock_acquire",
            "main",
        ]);
        assert_eq!(lock.0, Decided::Parked("lock"));
        assert_eq!(lock.1, "semaphore-lock");
        assert_eq!(lock.3.as_deref(), Some("shared_lock_acquire"));
        let event = verdict(&[
            "__futex_abstimed_wait_common@libc",
            "__new_sem_wait_slow64@libc",
            "wait_for_job",
            "main",
        ]);
        assert_eq!((event.0, event.1), (Decided::Event, "wait"));
        assert!(!lock_like("unblock_signals") && !lock_like("clock_gettime"));
    }

    #[test]
    fn frames_no_implementation_knows_are_a_word_of_kind_other() {
        let c = verdict(&["syscall@libc", "my_futex_wait", "worker"]);
        assert_eq!((c.0, c.1, c.2), (Decided::Word, "other", "generic"));
        assert_eq!(c.3.as_deref(), Some("my_futex_wait"));
    }
}
