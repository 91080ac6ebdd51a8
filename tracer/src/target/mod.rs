//! The traced programs as the tracer sees them from outside: their
//! processes and /proc, the ELF files they map, and the names of kernel
//! symbols and syscalls.

pub mod elf;
pub mod kallsyms;
pub mod proc;
pub mod process;
pub mod resolve;
pub mod symbolize;
pub mod syscalls;
pub mod unwind;
