// An empty library target: `tracer` lists this crate as a build-dependency so
// cargo rebuilds the kernel programs when they change (see aya-build).
#![no_std]
