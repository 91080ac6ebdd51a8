//! MariaDB InnoDB (10.6+): srw_mutex and ssux_lock wait on their own word
//! with a raw futex syscall; one latch type guards every page (block_lock)
//! and index (index_lock), so many words share a wait site: a lock class.
//! Read in MariaDB/server `storage/innobase/sync/srw_lock.cc` and
//! `include/srw_lock.h`.

use super::{Impl, Kind, Match, Role};

pub const IMPL: Impl = Impl {
    name: "InnoDB",
    shared_memory: false,
    frames: &[
        (Match::Prefix("srw_mutex_impl<"), Role::Word(Kind::Mutex)),
        (Match::Prefix("ssux_lock_impl<"), Role::Word(Kind::Latch)),
        (Match::Prefix("srw_lock_impl<"), Role::Word(Kind::Latch)),
        (Match::Prefix("srw_lock_"), Role::Internal),
        (Match::Prefix("sux_lock<"), Role::Internal),
        (Match::Prefix("ssux_lock::"), Role::Internal),
        (Match::Prefix("srw_lock::"), Role::Internal),
    ],
};

#[cfg(test)]
mod tests {
    use super::super::{Decided, tests::verdict};

    #[test]
    fn innodb_waits() {
        let latch = verdict(&[
            "syscall@libc",
            "ssux_lock_impl<true>::wr_wait(unsigned int)",
            "sux_lock<ssux_lock_impl<true> >::x_lock(bool)",
            "buf_page_get_low(page_id_t, unsigned long, unsigned long, buf_block_t*, unsigned long, mtr_t*, dberr_t*, bool)",
        ]);
        assert_eq!(
            (latch.0, latch.1, latch.2),
            (Decided::Word, "latch", "InnoDB")
        );
        assert!(latch.3.is_some_and(|c| c.starts_with("buf_page_get_low")));
        let m = verdict(&[
            "syscall@libc",
            "srw_mutex_impl<true>::wait_and_lock()",
            "trx_sys_t::register_rw(trx_t*)",
        ]);
        assert_eq!((m.0, m.1), (Decided::Word, "mutex"));
    }
}
