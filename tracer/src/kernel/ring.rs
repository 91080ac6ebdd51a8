//! The event ring's own reader: a thread that sleeps in poll(2) on the
//! ring and drains it as records arrive, so nothing the main loop does
//! (detaching uprobes takes seconds, /proc is re-read, the progress line is
//! drawn) can make the ring overflow. Unwind samples are unwound here,
//! exited threads' entries are evicted here (`retire::Janitor`), and forks
//! and process exits go to the main loop over a channel.

use std::{
    os::fd::AsRawFd as _,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc,
    },
    thread::JoinHandle,
    time::Duration,
};
use tracer_common::names;

use anyhow::{Context as _, Result};
use aya::maps::{MapData, RingBuf};
use tracer_common::{ExecRecord, ForkRecord, ProcessGone, ThreadExit, record};

use crate::{
    kernel::attach::Probes,
    kernel::retire::{Janitor, Retired},
    target::unwind::Unwinding,
};

/// What the main loop hears from the kernel.
#[derive(Clone, Debug)]
pub enum Event {
    /// A followed process forked a child.
    Fork { parent: u32, child: u32 },
    /// A traced process is gone (every thread exited, and it was reaped).
    ProcessExit(u32),
    /// A process exec'd (any process: the exec hook is on only when asked).
    Exec {
        tgid: u32,
        /// Its cgroup v2 id.
        cgroup: u64,
        comm: String,
    },
}

/// What the main loop asks of the reader.
enum Control {
    /// Read this process's memory maps now (a launched command exec'd).
    Watch(u32),
    /// The probed functions' ids (their calls in flight are evicted too).
    FnIds(Vec<u32>),
    /// Sweep what is pending, then stop sweeping (a snapshot of the maps is
    /// about to be read); answered once that last sweep is over.
    Pause(mpsc::Sender<()>),
}

pub struct RingReader {
    handle: Option<JoinHandle<(Unwinding, Retired)>>,
    stop: Arc<AtomicBool>,
    pub events: mpsc::Receiver<Event>,
    control: mpsc::Sender<Control>,
    /// Waits in entries already moved out of the kernel maps.
    retired_waits: Arc<AtomicU64>,
}

/// How long one poll waits when nothing arrives (the stop flag and the
/// controls are checked in between).
const POLL: Duration = Duration::from_millis(50);

impl RingReader {
    /// Takes the ring from the loaded programs and starts reading it; the
    /// roots' memory maps are read first.
    /// `profile`: on-CPU samples will arrive (modules carry their code).
    pub fn start(probes: &mut Probes, roots: &[u32], profile: bool) -> Result<Self> {
        let retired_waits = Arc::new(AtomicU64::new(0));
        let janitor = Janitor::new(probes, Arc::clone(&retired_waits))?;
        let map = probes
            .bpf
            .take_map(names::EVENTS)
            .context("EVENTS map missing")?;
        let ring = RingBuf::try_from(map).context("EVENTS is not a ring buffer")?;
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, events) = mpsc::channel();
        let (control, controls) = mpsc::channel();
        for &pid in roots {
            let _ = control.send(Control::Watch(pid));
        }
        let flag = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("tracer-ring".into())
            .spawn(move || {
                Reader {
                    ring,
                    unwinding: Unwinding::new(profile),
                    janitor,
                    paused: false,
                    tx,
                }
                .run(&flag, &controls)
            })
            .context("starting the ring reader")?;
        Ok(Self {
            handle: Some(handle),
            stop,
            events,
            control,
            retired_waits,
        })
    }

    /// Has the reader read `pid`'s memory maps now.
    pub fn watch(&self, pid: u32) {
        let _ = self.control.send(Control::Watch(pid));
    }

    pub fn set_fn_ids(&self, ids: Vec<u32>) {
        let _ = self.control.send(Control::FnIds(ids));
    }

    pub fn retired_waits(&self) -> u64 {
        self.retired_waits.load(Ordering::Relaxed)
    }

    /// Stops evicting: from its return on, the maps hold every entry not
    /// yet moved out, so a snapshot of them plus `finish`'s `Retired`
    /// counts each entry once. False when the reader did not answer.
    pub fn pause(&self) -> bool {
        let (ack, done) = mpsc::channel();
        self.control.send(Control::Pause(ack)).is_ok()
            && done.recv_timeout(Duration::from_secs(30)).is_ok()
    }

    /// Drains what is left; returns the unwound samples, what was moved out
    /// of the maps, and the events not yet taken — None if the reader
    /// thread died (a bug: the run then says it is incomplete).
    pub fn finish(mut self) -> Option<(Unwinding, Retired, Vec<Event>)> {
        self.stop.store(true, Ordering::Relaxed);
        let (unwinding, retired) = self.handle.take()?.join().ok()?;
        Some((unwinding, retired, self.events.try_iter().collect()))
    }
}

impl Drop for RingReader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

struct Reader {
    ring: RingBuf<MapData>,
    unwinding: Unwinding,
    janitor: Janitor,
    paused: bool,
    tx: mpsc::Sender<Event>,
}

impl Reader {
    fn run(
        mut self,
        stop: &AtomicBool,
        controls: &mpsc::Receiver<Control>,
    ) -> (Unwinding, Retired) {
        let fd = self.ring.as_raw_fd();
        loop {
            for c in controls.try_iter() {
                match c {
                    Control::Watch(pid) => self.unwinding.watch(pid),
                    Control::FnIds(ids) => self.janitor.fn_ids = ids,
                    Control::Pause(ack) => {
                        // A last sweep first: the report then reads only
                        // what lives (and what exited in the last moments).
                        self.drain();
                        if self.janitor.due_in().is_some() {
                            self.sweep();
                        }
                        self.paused = true;
                        let _ = ack.send(());
                    }
                }
            }
            // Checked before the last drain, so records submitted before
            // the programs were detached are all read.
            let stopping = stop.load(Ordering::Relaxed);
            self.drain();
            if stopping {
                return (self.unwinding, self.janitor.retired);
            }
            let mut wait = POLL;
            if !self.paused
                && let Some(due) = self.janitor.due_in()
            {
                if due.is_zero() {
                    self.sweep();
                    continue;
                }
                wait = wait.min(due);
            }
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd; a timeout or EINTR just loops.
            unsafe { libc::poll(&mut pfd, 1, wait.as_millis().max(1) as i32) };
        }
    }

    /// Reads every record waiting in the ring.
    fn drain(&mut self) {
        let mut exits = Vec::new();
        drain(&mut self.ring, &mut self.unwinding, &self.tx, &mut exits);
        for e in &exits {
            self.janitor.thread_exit(e);
        }
    }

    /// One sweep of exited threads' entries, draining the ring as it goes
    /// (exits read meanwhile are taken after it).
    fn sweep(&mut self) {
        let Self {
            ring,
            unwinding,
            janitor,
            tx,
            ..
        } = self;
        let mut exits = Vec::new();
        let mut breathe = || drain(ring, unwinding, tx, &mut exits);
        if let Err(e) = janitor.sweep(&mut breathe) {
            log::warn!("evicting exited threads: {e:#}");
        }
        for e in &exits {
            janitor.thread_exit(e);
        }
    }
}

/// Reads every record waiting in the ring: samples are unwound, forks and
/// process exits sent on, thread exits collected for the janitor.
fn drain(
    ring: &mut RingBuf<MapData>,
    unwinding: &mut Unwinding,
    tx: &mpsc::Sender<Event>,
    exits: &mut Vec<ThreadExit>,
) {
    while let Some(item) = ring.next() {
        let Some(kind) = item
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_ne_bytes)
        else {
            continue;
        };
        match kind {
            record::UNWIND => unwinding.sample(&item),
            record::CPU_SAMPLE => unwinding.cpu_sample(&item),
            record::THREAD_EXIT => exits.extend(read_record::<ThreadExit>(&item)),
            record::PROCESS_GONE => {
                if let Some(g) = read_record::<ProcessGone>(&item) {
                    unwinding.forget(g.tgid);
                    let _ = tx.send(Event::ProcessExit(g.tgid));
                }
            }
            record::FORK => {
                if let Some(f) = read_record::<ForkRecord>(&item) {
                    unwinding.watch(f.child);
                    let _ = tx.send(Event::Fork {
                        parent: f.parent,
                        child: f.child,
                    });
                }
            }
            record::EXEC => {
                if let Some(x) = read_record::<ExecRecord>(&item) {
                    let end = x.comm.iter().position(|&b| b == 0).unwrap_or(16);
                    let _ = tx.send(Event::Exec {
                        tgid: x.tgid,
                        cgroup: x.cgroup,
                        comm: String::from_utf8_lossy(&x.comm[..end]).into_owned(),
                    });
                }
            }
            other => log::debug!("unknown event record {other}"),
        }
    }
}

/// A fixed-size record from its bytes.
fn read_record<T: aya::Pod>(item: &[u8]) -> Option<T> {
    (item.len() >= size_of::<T>()).then(|| {
        // SAFETY: T is Pod (every bit pattern valid) and `item` holds at
        // least size_of::<T>() bytes; the read is unaligned-safe.
        unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<T>()) }
    })
}
