//! [`TapClient`]: the client end of the tap protocol, for the CLI and tests.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::protocol::{Notice, Request, NOTICE_PREFIX, VERSION};
use super::{TapError, TopicFilter};

/// Time the drain has to answer the request.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// One line from the drain after the ready notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TapLine<'a> {
    /// An event, exactly as the drain wrote it (newline included).
    Event(&'a [u8]),
    /// Matching events dropped for this client just before the next line;
    /// the notice's own line (newline included), to show in band.
    Missed {
        /// How many.
        events: u64,
        /// `{"tap":"missed","events":N}` and a newline.
        line: &'a [u8],
    },
    /// The tap is over (the drain stopped); the connection is closed.
    End {
        /// Why.
        reason: String,
    },
}

/// A connection to a drain's tap.
#[derive(Debug)]
pub struct TapClient {
    reader: BufReader<UnixStream>,
    line: Vec<u8>,
    queue: String,
    pid: u32,
    topics: Vec<String>,
}

impl TapClient {
    /// Connects to the tap socket at `path`, asks for the topics `filter`
    /// passes, and waits for the drain's answer.
    pub fn connect(path: &Path, filter: &TopicFilter) -> Result<TapClient, TapError> {
        let stream = UnixStream::connect(path).map_err(|error| match error.kind() {
            io::ErrorKind::PermissionDenied => TapError::PermissionDenied {
                path: path.to_owned(),
            },
            _ => TapError::NotServing {
                path: path.to_owned(),
                error,
            },
        })?;
        let io = |what: &'static str| {
            move |error| TapError::Io {
                what: what.into(),
                error,
            }
        };
        let request = Request {
            tap: VERSION,
            topics: filter.globs(),
        };
        let mut line = serde_json::to_vec(&request).unwrap_or_default();
        line.push(b'\n');
        // A drain that refuses this client at once (its uid) answers and
        // closes before reading: the answer is still there to read.
        let sent = (&stream).write_all(&line);
        stream
            .set_read_timeout(Some(ANSWER_TIMEOUT))
            .map_err(io("setting a read timeout"))?;
        let mut client = TapClient {
            reader: BufReader::with_capacity(64 << 10, stream),
            line: Vec::new(),
            queue: String::new(),
            pid: 0,
            topics: Vec::new(),
        };
        let answered = client.read_line();
        if !matches!(answered, Ok(true)) {
            sent.map_err(io("sending the tap request"))?;
        }
        if !answered.map_err(io("waiting for the drain's answer"))? {
            return Err(TapError::Lost);
        }
        match serde_json::from_slice::<Notice>(&client.line) {
            Ok(Notice::Ready { queue, pid, topics }) => {
                client.queue = queue;
                client.pid = pid;
                client.topics = topics;
            }
            Ok(Notice::Refused { reason }) => return Err(TapError::Refused { reason }),
            _ => {
                return Err(TapError::Protocol {
                    what: format!(
                        "expected a ready notice, got {:?}",
                        String::from_utf8_lossy(&client.line)
                    ),
                })
            }
        }
        client.line.clear();
        client
            .reader
            .get_ref()
            .set_read_timeout(None)
            .map_err(io("clearing the read timeout"))?;
        Ok(client)
    }

    /// The queue the drain drains (`0x` and 8 hex digits).
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// The drain's pid.
    pub fn drain_pid(&self) -> u32 {
        self.pid
    }

    /// The globs the drain applies (empty: every topic).
    pub fn topics(&self) -> &[String] {
        &self.topics
    }

    /// Makes [`TapClient::next_line`] return `Ok(None)` after waiting `wait`
    /// for a line (so the caller can look at a Ctrl-C flag); `None` waits
    /// for ever.
    pub fn set_wait(&mut self, wait: Option<Duration>) -> Result<(), TapError> {
        self.reader
            .get_ref()
            .set_read_timeout(wait)
            .map_err(|error| TapError::Io {
                what: "setting a read timeout".into(),
                error,
            })
    }

    /// Whether a next line is already received (no need to flush output
    /// before asking for it).
    pub fn has_buffered(&self) -> bool {
        !self.reader.buffer().is_empty()
    }

    /// The next line; `Ok(None)` if none came within the wait
    /// ([`TapClient::set_wait`]). End of file without an end notice is
    /// [`TapError::Lost`].
    pub fn next_line(&mut self) -> Result<Option<TapLine<'_>>, TapError> {
        self.line.clear();
        loop {
            match self.read_line() {
                Ok(true) => break,
                Ok(false) => return Err(TapError::Lost),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    if self.line.is_empty() {
                        return Ok(None);
                    }
                    // Half a line came: the rest is on its way.
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    return Err(TapError::Io {
                        what: "reading from the drain".into(),
                        error,
                    })
                }
            }
        }
        if !self.line.starts_with(NOTICE_PREFIX) {
            return Ok(Some(TapLine::Event(&self.line)));
        }
        match serde_json::from_slice::<Notice>(&self.line) {
            Ok(Notice::Missed { events }) => Ok(Some(TapLine::Missed {
                events,
                line: &self.line,
            })),
            Ok(Notice::End { reason }) => Ok(Some(TapLine::End { reason })),
            _ => Err(TapError::Protocol {
                what: format!(
                    "unexpected notice {:?}",
                    String::from_utf8_lossy(&self.line)
                ),
            }),
        }
    }

    /// Appends to `line` up to and including the next newline; whether a
    /// whole line is there (false: end of file). Bytes read before an
    /// error stay in `line`, so a timed-out read resumes where it stopped.
    fn read_line(&mut self) -> io::Result<bool> {
        self.reader.read_until(b'\n', &mut self.line)?;
        Ok(self.line.last() == Some(&b'\n'))
    }
}
