//! Progress on stderr for long work: a bar (or a spinner when the amount of work is unknown)
//! on a terminal, and otherwise a plain line every few seconds, so that logs of batch jobs
//! show the work is alive. Nothing is printed for work that ends within the first interval.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Seconds between two plain progress lines.
const PLAIN_EVERY: Duration = Duration::from_secs(3);

struct Plain {
    label: String,
    started: Instant,
    last: Instant,
    message: String,
    pos: u64,
    len: Option<u64>,
}

impl Plain {
    fn line(&self) -> String {
        let t = self.started.elapsed().as_secs_f64();
        let count = match self.len {
            Some(len) => format!(" {}/{len}", self.pos),
            None => String::new(),
        };
        let msg = if self.message.is_empty() { String::new() } else { format!(" {}", self.message) };
        format!("{}:{count}{msg} ({t:.0} s)", self.label)
    }
}

enum Kind {
    Bar(ProgressBar),
    Plain(Mutex<Plain>),
}

/// A progress display; clone-free and shareable between threads.
pub struct Progress {
    kind: Kind,
}

impl Progress {
    /// `len`: the number of steps, or None for work of unknown size (a spinner).
    pub fn new(label: &str, len: Option<u64>) -> Self {
        let kind = if std::io::stderr().is_terminal() {
            let bar = match len {
                Some(n) => ProgressBar::new(n).with_style(
                    ProgressStyle::with_template("{prefix} {bar:40} {pos}/{len} {msg} {elapsed}")
                        .expect("valid template"),
                ),
                None => ProgressBar::new_spinner().with_style(
                    ProgressStyle::with_template("{prefix} {spinner} {msg} {elapsed}").expect("valid template"),
                ),
            };
            bar.set_prefix(label.to_string());
            bar.enable_steady_tick(Duration::from_millis(200));
            Kind::Bar(bar)
        } else {
            let now = Instant::now();
            Kind::Plain(Mutex::new(Plain {
                label: label.to_string(),
                started: now,
                last: now,
                message: String::new(),
                pos: 0,
                len,
            }))
        };
        Progress { kind }
    }

    fn update(&self, f: impl FnOnce(&mut Plain), bar: impl FnOnce(&ProgressBar)) {
        match &self.kind {
            Kind::Bar(b) => bar(b),
            Kind::Plain(p) => {
                let mut p = p.lock().unwrap_or_else(|e| e.into_inner());
                f(&mut p);
                if p.last.elapsed() >= PLAIN_EVERY {
                    p.last = Instant::now();
                    eprintln!("{}", p.line());
                }
            }
        }
    }

    pub fn set(&self, pos: u64, len: u64, message: &str) {
        self.update(
            |p| {
                p.pos = pos;
                p.len = Some(len);
                p.message = message.to_string();
            },
            |b| {
                b.set_length(len);
                b.set_position(pos);
                b.set_message(message.to_string());
            },
        );
    }

    pub fn inc(&self, n: u64) {
        self.update(|p| p.pos += n, |b| b.inc(n));
    }

    pub fn message(&self, message: &str) {
        self.update(|p| p.message = message.to_string(), |b| b.set_message(message.to_string()));
    }

    /// Re-checks the clock without new information (keeps plain lines coming).
    pub fn tick(&self) {
        self.update(|_| {}, |_| {});
    }

    /// Clears the bar; a plain display prints nothing more.
    pub fn finish(&self) {
        if let Kind::Bar(b) = &self.kind {
            b.finish_and_clear();
        }
    }

    /// Keeps the display alive from a background thread during one long library call that
    /// reports nothing itself; the thread stops when the returned guard is dropped.
    pub fn heartbeat(self: &Arc<Self>) -> Heartbeat {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let me = Arc::clone(self);
        // Waiting on the channel (not sleeping) lets the guard's drop end the thread at once:
        // a sleep here added up to 250 ms to every command (196 ms per ACAS Xu instance).
        let thread = std::thread::spawn(move || {
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(Duration::from_millis(250)) {
                me.tick();
            }
        });
        Heartbeat { stop: Some(stop), thread: Some(thread) }
    }
}

/// Stops a [`Progress::heartbeat`] thread when dropped.
pub struct Heartbeat {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        // Dropping the sender disconnects the channel, which wakes the thread.
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
