//! x86-64 syscall numbers → names, for the syscalls a thread commonly
//! sleeps in (arch/x86/entry/syscalls/syscall_64.tbl). Others are shown as
//! `syscall N`.

const NAMES: &[(u32, &str)] = &[
    (0, "read"),
    (1, "write"),
    (3, "close"),
    (7, "poll"),
    (9, "mmap"),
    (10, "mprotect"),
    (11, "munmap"),
    (12, "brk"),
    (17, "pread64"),
    (18, "pwrite64"),
    (19, "readv"),
    (20, "writev"),
    (23, "select"),
    (24, "sched_yield"),
    (28, "madvise"),
    (34, "pause"),
    (35, "nanosleep"),
    (42, "connect"),
    (43, "accept"),
    (44, "sendto"),
    (45, "recvfrom"),
    (46, "sendmsg"),
    (47, "recvmsg"),
    (56, "clone"),
    (57, "fork"),
    (59, "execve"),
    (60, "exit"),
    (61, "wait4"),
    (65, "semop"),
    (70, "msgrcv"),
    (73, "flock"),
    (74, "fsync"),
    (75, "fdatasync"),
    (128, "rt_sigtimedwait"),
    (130, "rt_sigsuspend"),
    (202, "futex"),
    (208, "io_getevents"),
    (220, "semtimedop"),
    (230, "clock_nanosleep"),
    (231, "exit_group"),
    (232, "epoll_wait"),
    (247, "waitid"),
    (257, "openat"),
    (270, "pselect6"),
    (271, "ppoll"),
    (281, "epoll_pwait"),
    (288, "accept4"),
    (299, "recvmmsg"),
    (426, "io_uring_enter"),
    (435, "clone3"),
    (441, "epoll_pwait2"),
    (449, "futex_waitv"),
    (455, "futex_wait"),
];

pub fn name(nr: u32) -> String {
    if nr == tracer_common::NO_SYSCALL {
        return "outside a syscall (page fault?)".to_string();
    }
    NAMES
        .binary_search_by_key(&nr, |&(n, _)| n)
        .map(|i| NAMES[i].1.to_string())
        .unwrap_or_else(|_| format!("syscall {nr}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn table_is_sorted_and_named() {
        assert!(
            super::NAMES.windows(2).all(|w| w[0].0 < w[1].0),
            "binary search needs order"
        );
        assert_eq!(super::name(35), "nanosleep");
        assert_eq!(super::name(230), "clock_nanosleep");
        assert_eq!(super::name(9999), "syscall 9999");
        assert!(super::name(u32::MAX).starts_with("outside a syscall"));
    }
}
