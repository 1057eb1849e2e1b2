//! The direct transport's log lines, on their way to the app's logger.
//!
//! librdkafka reports errors (brokers down, authentication failures) from
//! its own threads, where no Ruby code may run. They are kept here, bounded,
//! until the app's log thread takes them ([`LogBuffer::take`]) and writes
//! them to `Rails.logger` or whichever logger is configured.
//!
//! A broker that stays down makes librdkafka repeat the same error every few
//! seconds; a line equal to the previous one within [`REPEAT_WINDOW`] is
//! counted instead of kept, and the count is logged when something else is
//! said or the window ends. If the app does not read fast enough, the oldest
//! lines give way and their number is logged.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::kafka::{KafkaLog, LogLevel};

/// Lines kept for the app before the oldest give way.
pub const CAPACITY: usize = 256;
/// How long an identical line is counted rather than logged again.
pub const REPEAT_WINDOW: Duration = Duration::from_secs(60);

/// One line for the app's logger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Its severity.
    pub level: LogLevel,
    /// The text, without the component prefix.
    pub message: String,
}

#[derive(Debug, Default)]
struct Lines {
    queue: VecDeque<LogLine>,
    /// Lines that gave way to newer ones since the app last took.
    overflowed: u64,
    /// The last line kept, when, and how often it came again since.
    last: Option<(LogLine, Instant, u64)>,
}

impl Lines {
    fn push(&mut self, line: LogLine) {
        if self.queue.len() >= CAPACITY {
            self.queue.pop_front();
            self.overflowed += 1;
        }
        self.queue.push_back(line);
    }

    /// Logs how often the last line came again, if it did.
    fn close_repeats(&mut self) {
        if let Some((line, _, repeats)) = self.last.take() {
            if repeats > 0 {
                let message = format!("{} (repeated {repeats} more times)", line.message);
                self.push(LogLine {
                    level: line.level,
                    message,
                });
            }
        }
    }
}

/// Bounded lines between librdkafka's threads and the app's log thread.
#[derive(Debug, Default)]
pub struct LogBuffer {
    lines: Mutex<Lines>,
    arrived: Condvar,
}

impl LogBuffer {
    /// Waits until a line is there, `deadline` passes or `stop()` turns true
    /// (checked every 20 ms), then takes every line kept so far.
    pub fn take(&self, deadline: Instant, stop: impl Fn() -> bool) -> Vec<LogLine> {
        let Ok(mut lines) = self.lines.lock() else {
            return Vec::new();
        };
        loop {
            if lines
                .last
                .as_ref()
                .is_some_and(|(_, at, _)| at.elapsed() >= REPEAT_WINDOW)
            {
                lines.close_repeats();
            }
            let now = Instant::now();
            if !lines.queue.is_empty() || now >= deadline || stop() {
                break;
            }
            let slice = (deadline - now).min(Duration::from_millis(20));
            lines = match self.arrived.wait_timeout(lines, slice) {
                Ok((guard, _)) => guard,
                Err(_) => return Vec::new(),
            };
        }
        let mut taken: Vec<LogLine> = Vec::with_capacity(lines.queue.len() + 1);
        if lines.overflowed > 0 {
            taken.push(LogLine {
                level: LogLevel::Warn,
                message: format!(
                    "{} log lines were dropped: they came faster than the logger took them",
                    lines.overflowed
                ),
            });
            lines.overflowed = 0;
        }
        taken.extend(lines.queue.drain(..));
        taken
    }
}

impl KafkaLog for LogBuffer {
    fn log(&self, level: LogLevel, message: String) {
        let Ok(mut lines) = self.lines.lock() else {
            return;
        };
        let line = LogLine { level, message };
        if let Some((last, at, repeats)) = lines.last.as_mut() {
            if *last == line && at.elapsed() < REPEAT_WINDOW {
                *repeats += 1;
                return;
            }
        }
        lines.close_repeats();
        lines.push(line.clone());
        lines.last = Some((line, Instant::now(), 0));
        drop(lines);
        self.arrived.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(message: &str) -> LogLine {
        LogLine {
            level: LogLevel::Error,
            message: message.into(),
        }
    }

    fn take_now(buffer: &LogBuffer) -> Vec<LogLine> {
        buffer.take(Instant::now(), || false)
    }

    #[test]
    fn a_repeated_line_is_counted_and_the_count_logged_with_the_next_line() {
        let buffer = LogBuffer::default();
        for _ in 0..5 {
            buffer.log(LogLevel::Error, "brokers down".into());
        }
        assert_eq!(take_now(&buffer), vec![error("brokers down")]);
        buffer.log(LogLevel::Error, "connected".into());
        assert_eq!(
            take_now(&buffer),
            vec![
                error("brokers down (repeated 4 more times)"),
                error("connected")
            ]
        );
    }

    #[test]
    fn the_oldest_lines_give_way_and_their_number_is_logged() {
        let buffer = LogBuffer::default();
        for i in 0..CAPACITY + 10 {
            buffer.log(LogLevel::Error, format!("line {i}"));
        }
        let lines = take_now(&buffer);
        assert_eq!(lines.len(), CAPACITY + 1);
        assert_eq!(lines[0].level, LogLevel::Warn);
        assert!(lines[0].message.starts_with("10 log lines were dropped"));
        assert_eq!(lines[1], error("line 10"));
        assert!(take_now(&buffer).is_empty());
    }

    #[test]
    fn take_waits_for_a_line_from_another_thread() {
        let buffer = std::sync::Arc::new(LogBuffer::default());
        let writer = std::sync::Arc::clone(&buffer);
        let thread = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            writer.log(LogLevel::Error, "late".into());
        });
        let lines = buffer.take(Instant::now() + Duration::from_secs(10), || false);
        thread.join().unwrap();
        assert_eq!(lines, vec![error("late")]);
    }

    #[test]
    fn take_returns_empty_when_stopped() {
        let buffer = LogBuffer::default();
        let started = Instant::now();
        let lines = buffer.take(Instant::now() + Duration::from_secs(10), || true);
        assert!(lines.is_empty());
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
