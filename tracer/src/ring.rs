//! The event ring's own reader: a thread that sleeps in poll(2) on the
//! ring and drains it as records arrive, so nothing the main loop does
//! (detaching uprobes takes seconds, /proc is re-read, the progress line is
//! drawn) can make the ring overflow. Unwind samples are unwound here;
//! thread exits and forks go to the main loop over a channel.

use std::{
    os::fd::AsRawFd as _,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    thread::JoinHandle,
};

use anyhow::{Context as _, Result};
use aya::maps::{MapData, RingBuf};
use tracer_common::{ForkRecord, ThreadExit, record};

use crate::{attach::Probes, unwind::Unwinding};

/// What the main loop hears from the kernel.
#[derive(Clone, Copy, Debug)]
pub enum Event {
    /// A traced thread's last switch-out, with its final scheduler view.
    ThreadExit(ThreadExit),
    /// A followed process forked a child.
    Fork { parent: u32, child: u32 },
}

pub struct RingReader {
    handle: Option<JoinHandle<Unwinding>>,
    stop: Arc<AtomicBool>,
    pub events: mpsc::Receiver<Event>,
    /// Processes whose memory maps the reader should read now (a launched
    /// command after its exec).
    watch: mpsc::Sender<u32>,
}

/// How long one poll waits when nothing arrives (the stop flag is checked
/// in between).
const POLL_MS: i32 = 50;

impl RingReader {
    /// Takes the ring from the loaded programs and starts reading it; the
    /// roots' memory maps are read first.
    pub fn start(probes: &mut Probes, roots: &[u32]) -> Result<Self> {
        let map = probes
            .bpf
            .take_map("EVENTS")
            .context("EVENTS map missing")?;
        let ring = RingBuf::try_from(map).context("EVENTS is not a ring buffer")?;
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, events) = mpsc::channel();
        let (watch, watched) = mpsc::channel();
        for &pid in roots {
            let _ = watch.send(pid);
        }
        let flag = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("tracer-ring".into())
            .spawn(move || read(ring, &flag, &tx, &watched))
            .context("starting the ring reader")?;
        Ok(Self {
            handle: Some(handle),
            stop,
            events,
            watch,
        })
    }

    /// Has the reader read `pid`'s memory maps now.
    pub fn watch(&self, pid: u32) {
        let _ = self.watch.send(pid);
    }

    /// Drains what is left and returns the unwound samples.
    pub fn finish(mut self) -> Unwinding {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
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

fn read(
    mut ring: RingBuf<MapData>,
    stop: &AtomicBool,
    tx: &mpsc::Sender<Event>,
    watched: &mpsc::Receiver<u32>,
) -> Unwinding {
    let mut unwinding = Unwinding::default();
    let fd = ring.as_raw_fd();
    loop {
        for pid in watched.try_iter() {
            unwinding.watch(pid);
        }
        // Checked before the last drain, so records submitted before the
        // programs were detached are all read.
        let stopping = stop.load(Ordering::Relaxed);
        while let Some(item) = ring.next() {
            dispatch(&item, &mut unwinding, tx);
        }
        if stopping {
            return unwinding;
        }
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd; a timeout or EINTR just loops.
        unsafe { libc::poll(&mut pfd, 1, POLL_MS) };
    }
}

fn dispatch(item: &[u8], unwinding: &mut Unwinding, tx: &mpsc::Sender<Event>) {
    let Some(kind) = item
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_ne_bytes)
    else {
        return;
    };
    match kind {
        record::UNWIND => unwinding.sample(item),
        record::THREAD_EXIT => {
            if let Some(e) = read_record::<ThreadExit>(item) {
                if e.group_dead != 0 {
                    unwinding.forget(e.tgid);
                }
                let _ = tx.send(Event::ThreadExit(e));
            }
        }
        record::FORK => {
            if let Some(f) = read_record::<ForkRecord>(item) {
                unwinding.watch(f.child);
                let _ = tx.send(Event::Fork {
                    parent: f.parent,
                    child: f.child,
                });
            }
        }
        other => log::debug!("unknown event record {other}"),
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
