//! RocksDB: a writer waiting to join or lead a write group
//! (WriteThread::AwaitState) sleeps on its own condition variable, woken by
//! the group's leader — a queue that admits one writer group at a time, so
//! a parked lock named by its call site, not a condition wait. Its mutexes
//! (port::Mutex, InstrumentedMutex) are pthread mutexes: wrappers here, so
//! the call site is RocksDB's own caller. Read in facebook/rocksdb
//! `db/write_thread.cc`, `port/port_posix.cc`.

use super::{Impl, Kind, Match, Role};

pub const IMPL: Impl = Impl {
    name: "RocksDB",
    shared_memory: false,
    frames: &[
        (
            Match::Prefix("rocksdb::WriteThread::BlockingAwaitState"),
            Role::Parked(Kind::WriteQueue, "RocksDB write group"),
        ),
        // The rest of the write queue (joining, leading, handing over),
        // then the DB's write entry points: the write group's call site is
        // their caller.
        (Match::Prefix("rocksdb::WriteThread::"), Role::Internal),
        (Match::Prefix("rocksdb::DBImpl::Write"), Role::Api),
        (
            Match::Prefix("rocksdb::DBImpl::PipelinedWriteImpl"),
            Role::Api,
        ),
        (Match::Prefix("rocksdb::DBImpl::Put("), Role::Api),
        (Match::Prefix("rocksdb::DBImpl::Delete("), Role::Api),
        (Match::Prefix("rocksdb::DBImpl::Merge("), Role::Api),
        (Match::Prefix("rocksdb::DB::Put("), Role::Api),
        (Match::Prefix("rocksdb::DB::Delete("), Role::Api),
        (Match::Prefix("rocksdb::DB::Merge("), Role::Api),
        (Match::Prefix("rocksdb::port::Mutex::"), Role::Internal),
        (Match::Prefix("rocksdb::port::RWMutex::"), Role::Internal),
        (
            Match::Prefix("rocksdb::port::CondVar::"),
            Role::Event(Kind::Condvar),
        ),
        (
            Match::Prefix("rocksdb::InstrumentedMutex::"),
            Role::Internal,
        ),
        (
            Match::Prefix("rocksdb::InstrumentedMutexLock::"),
            Role::Internal,
        ),
        (
            Match::Prefix("rocksdb::InstrumentedCondVar::"),
            Role::Event(Kind::Condvar),
        ),
    ],
};

#[cfg(test)]
mod tests {
    use super::super::{Decided, tests::verdict};

    #[test]
    fn rocksdb_waits() {
        let w = verdict(&[
            "__futex_abstimed_wait_common@libc",
            "___pthread_cond_wait@libc",
            "rocksdb::WriteThread::BlockingAwaitState(rocksdb::WriteThread::Writer*, unsigned char)",
            "rocksdb::WriteThread::AwaitState(rocksdb::WriteThread::Writer*, unsigned char, rocksdb::WriteThread::AdaptationContext*)",
            "rocksdb::WriteThread::JoinBatchGroup(rocksdb::WriteThread::Writer*)",
            "rocksdb::DBImpl::WriteImpl(rocksdb::WriteOptions const&, rocksdb::WriteBatch*)",
            "rocksdb::DBImpl::Write(rocksdb::WriteOptions const&, rocksdb::WriteBatch*)",
            "rocksdb::Benchmark::DoWrite(rocksdb::ThreadState*, rocksdb::Benchmark::WriteMode)",
        ]);
        assert_eq!(
            (w.0, w.1, w.2),
            (
                Decided::Parked("RocksDB write group"),
                "write-queue",
                "RocksDB"
            )
        );
        assert!(w.3.is_some_and(|c| c.starts_with("rocksdb::Benchmark::DoWrite")));
        // The writer's state mutex, re-taken inside the condition wait, is
        // part of waiting for the write group.
        let relock = verdict(&[
            "__GI___lll_lock_wait@libc",
            "__pthread_mutex_cond_lock@libc",
            "___pthread_cond_wait@libc",
            "rocksdb::WriteThread::BlockingAwaitState(rocksdb::WriteThread::Writer*, unsigned char)",
            "rocksdb::WriteThread::AwaitState(rocksdb::WriteThread::Writer*, unsigned char, rocksdb::WriteThread::AdaptationContext*)",
            "rocksdb::WriteThread::ExitAsBatchGroupLeader(rocksdb::WriteThread::WriteGroup&, rocksdb::Status&)",
            "rocksdb::DBImpl::PipelinedWriteImpl(rocksdb::WriteOptions const&, rocksdb::WriteBatch*)",
            "rocksdb::Benchmark::DoWrite(rocksdb::ThreadState*, rocksdb::Benchmark::WriteMode)",
        ]);
        assert_eq!(
            (relock.0, relock.1),
            (Decided::Parked("RocksDB write group"), "write-queue")
        );
        let m = verdict(&[
            "__GI___lll_lock_wait@libc",
            "___pthread_mutex_lock@libc",
            "rocksdb::port::Mutex::Lock()",
            "rocksdb::InstrumentedMutex::LockInternal()",
            "rocksdb::InstrumentedMutex::Lock()",
            "rocksdb::DBImpl::WriteImpl(rocksdb::WriteOptions const&, rocksdb::WriteBatch*)",
            "rocksdb::DBImpl::Write(rocksdb::WriteOptions const&, rocksdb::WriteBatch*)",
            "rocksdb::Benchmark::DoWrite(rocksdb::ThreadState*, rocksdb::Benchmark::WriteMode)",
        ]);
        assert_eq!((m.0, m.1), (Decided::Word, "mutex"));
        assert!(m.3.is_some_and(|c| c.starts_with("rocksdb::DBImpl::WriteImpl")));
    }
}
