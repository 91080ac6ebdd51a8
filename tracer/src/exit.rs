//! Exit codes are part of the interface (docs/exit-codes.md): scripts and CI
//! branch on them, so each failure class has its own, and tests pin them.

use std::fmt;

/// Why the tracer stopped, as a process exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// The report was produced.
    Ok = 0,
    /// An unexpected internal error.
    Internal = 1,
    /// Bad command line (clap's own code).
    Usage = 2,
    /// Not root and without CAP_BPF + CAP_PERFMON.
    Permission = 3,
    /// The kernel or system lacks something the tracer needs (tracefs, BTF,
    /// a tracepoint, an expected tracepoint layout).
    Environment = 4,
    /// The target cannot be traced: no such pid, a kernel thread, exited
    /// before tracing began, or the command could not be started.
    Target = 5,
    /// The kernel refused to load or attach a program (verifier).
    Load = 6,
    /// The report could not be written (JSON file).
    Output = 7,
    /// `tracer compare` / `baseline`: an input report is unusable (missing,
    /// not JSON, truncated, another tool's, a newer schema, runs of
    /// different programs).
    Input = 8,
    /// `tracer compare`: a regression at or above `--fail-on`.
    Regression = 9,
    /// The run lost data that can hide a lock or change a decision (a full
    /// lock map, lost samples, processes not followed): the report was
    /// written and says INCOMPLETE. `tracer compare --ci` / `--fail-on`
    /// exits with it when an input run is incomplete.
    Incomplete = 10,
}

impl Code {
    #[cfg(test)]
    pub const ALL: [Code; 11] = [
        Code::Ok,
        Code::Internal,
        Code::Usage,
        Code::Permission,
        Code::Environment,
        Code::Target,
        Code::Load,
        Code::Output,
        Code::Input,
        Code::Regression,
        Code::Incomplete,
    ];
}

/// An error that carries its exit code and one sentence for the user.
#[derive(Debug)]
pub struct Failure {
    pub code: Code,
    pub message: String,
}

impl Failure {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// Shorthand: `return Err(fail(Code::Target, "…"))`.
pub fn fail(code: Code, message: impl Into<String>) -> anyhow::Error {
    Failure::new(code, message).into()
}

/// What to tell the user: a Failure's one sentence, else the context chain.
pub fn message(err: &anyhow::Error) -> String {
    match err.chain().find_map(|e| e.downcast_ref::<Failure>()) {
        Some(f) => f.to_string(),
        None => format!("{err:#}"),
    }
}

/// The exit code for an error chain: the first `Failure` in it, else Internal.
pub fn code_of(err: &anyhow::Error) -> Code {
    err.chain()
        .find_map(|e| e.downcast_ref::<Failure>())
        .map_or(Code::Internal, |f| f.code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context as _;

    #[test]
    fn codes_are_distinct_and_stable() {
        let values: Vec<i32> = Code::ALL.iter().map(|c| *c as i32).collect();
        assert_eq!(values, vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    }

    #[test]
    fn code_survives_context() {
        let err = Err::<(), _>(fail(Code::Target, "no process with pid 999999"))
            .context("preparing the target")
            .unwrap_err();
        assert_eq!(code_of(&err), Code::Target);
        assert_eq!(code_of(&anyhow::anyhow!("boom")), Code::Internal);
    }
}
