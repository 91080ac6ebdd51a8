//! What reaches the user's terminal: stdout and stderr writes that never
//! panic (std's print macros panic when the terminal is gone, e.g. after an
//! SSH disconnect), and escaping of the control characters a traced
//! program can put in its thread names, paths and symbols.

use std::{
    borrow::Cow,
    fmt,
    io::{self, Write},
    sync::atomic::{AtomicBool, Ordering},
};

use crate::exit::{Code, fail};

/// Writes to stdout. A reader that went away — a closed pipe (`tracer … |
/// head`) or a hung-up terminal (EIO) — ends the output quietly; any other
/// failure is exit 7.
pub fn stdout(write: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    match write(&mut out).and_then(|()| out.flush()) {
        Err(e) if reader_gone(&e) => Ok(()),
        r => r.map_err(|e| fail(Code::Output, format!("cannot write to stdout: {e}"))),
    }
}

/// `stdout` for text.
pub fn print(text: &str) -> anyhow::Result<()> {
    stdout(|out| out.write_all(text.as_bytes()))
}

fn reader_gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::BrokenPipe || e.raw_os_error() == Some(libc::EIO)
}

/// Whether a status line (the live progress line) is on the terminal now:
/// anything else written to stderr erases it first.
static DRAWN: AtomicBool = AtomicBool::new(false);

/// Draws `line` over the current status line (stderr, a terminal).
pub fn status_line(line: &str) {
    let mut err = io::stderr().lock();
    let _ = write!(err, "\r\x1b[K{line}");
    let _ = err.flush();
    DRAWN.store(true, Ordering::Relaxed);
}

/// Erases the status line if one is drawn.
pub fn clear_status_line() {
    if DRAWN.swap(false, Ordering::Relaxed) {
        let mut err = io::stderr().lock();
        let _ = write!(err, "\r\x1b[K");
        let _ = err.flush();
    }
}

/// Where log records go: stderr, erasing the status line first when it
/// is drawn (it comes back at its next refresh).
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut err = io::stderr().lock();
        if DRAWN.swap(false, Ordering::Relaxed) {
            err.write_all(b"\r\x1b[K")?;
        }
        err.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

/// One line on stderr, erasing the progress line first; a failed write is
/// ignored (stderr is where failures would be told).
pub fn say(args: fmt::Arguments<'_>) {
    let mut w = LogWriter;
    // Messages can quote a report's or a target's text: escaped.
    let _ = writeln!(w, "{}", esc_text(&args.to_string()));
}

/// `eprintln!` that never panics: `say!("tracer: …")`.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => { $crate::ui::say(format_args!($($arg)*)) };
}

/// `s` with every control character (C0, DEL, C1) written as an escape,
/// so text from the target (thread names, paths, symbols, arguments) can
/// neither move the cursor, clear the screen nor start a line of its own
/// in a report.
pub fn esc(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    let mut o = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => o.push_str("\\n"),
            '\t' => o.push_str("\\t"),
            '\r' => o.push_str("\\r"),
            c if c.is_control() => {
                let v = c as u32;
                if v <= 0xff {
                    o.push_str(&format!("\\x{v:02x}"));
                } else {
                    o.push_str(&format!("\\u{{{v:x}}}"));
                }
            }
            c => o.push(c),
        }
    }
    Cow::Owned(o)
}

/// A whole rendered text for a terminal: control characters other than
/// newlines escaped (a backstop behind the per-field `esc`).
pub fn esc_text(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c.is_control() && c != '\n') {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.split('\n')
            .map(|line| esc(line).into_owned())
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(esc("worker-1"), "worker-1");
        assert_eq!(esc("\x1b[2Jevil\n"), "\\x1b[2Jevil\\n");
        assert_eq!(esc("a\u{9b}b\x7f"), "a\\x9bb\\x7f");
        assert_eq!(esc_text("ok\n\x1b]0;t\x07\n"), "ok\n\\x1b]0;t\\x07\n");
        assert!(!esc_text("\x1b[H").contains('\x1b'));
    }
}
