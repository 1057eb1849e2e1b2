//! Receiving straight into the spool: for a receiver whose source forgets a
//! message as it hands it over (`msgrcv` dequeues before it copies), so
//! that no copy of the event lives only in the receiver's memory.
//!
//! [`Appender::reserve`] hands out a *frame*: the bytes after the published
//! data where the next record goes, `8 + max_len` long. `msgrcv` writes its
//! message type (a native `long`, 8 bytes) where the record header goes and
//! the envelope right after it, that is into the segment file's page cache.
//! [`Appender::commit`] checks the envelope (length field and CRC32C: a
//! reader stops at a bad record, so nothing else may be published), writes
//! the record header over the message type, zeroes the padding and
//! publishes the record, exactly as `append` would have.
//!
//! A receiver killed between the receive and the commit leaves, at its
//! segment's `published` offset, a message type (a positive `long`) or,
//! killed inside `commit`, a complete record header, followed by the
//! envelope: an event its source no longer has. [`commit_received`] finds
//! such a tail in the segments of a dead writer and commits it as the
//! writer would have. Run it only on a directory that receivers alone write
//! (the drain's own saved spool): an emitting process killed mid-`append`
//! leaves a tail its caller was never told was taken, which stays unread.

use std::fs::{self, File, OpenOptions};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::format::{
    check_seed, envelope_intact, offset_word, parse_name, record_span, record_word, word_offset,
    Header, Name, HEADER_SIZE, OFF_PUBLISHED, OFF_SEALED, RECORD_HEADER, SEALED,
};
use super::{lock, Appender, SpoolError};
use crate::envelope::envelope_len;
use crate::process;

impl Appender {
    /// A frame of `8 + max_len` bytes at the end of the published data (in
    /// a new segment if the current one lacks room), for a receiver to write
    /// one record into: the first 8 bytes take the message type `msgrcv`
    /// writes, the rest the envelope. Nothing is published until
    /// [`Appender::commit`]; another `reserve` or `append` abandons it.
    pub fn reserve(&mut self, max_len: usize) -> Result<&mut [u8], SpoolError> {
        self.reserved = None;
        if max_len > self.options.max_record {
            self.failed();
            return Err(SpoolError::RecordTooLarge {
                len: max_len,
                max_record: self.options.max_record,
            });
        }
        if self.generation != process::generation() {
            self.forked();
        }
        let span = record_span(max_len as u64);
        if !self.active.as_ref().is_some_and(|a| span <= a.room()) {
            if let Err(err) = self.rotate(span) {
                self.failed();
                return Err(err);
            }
        }
        let Some(active) = self.active.as_mut() else {
            return Err(SpoolError::NotReserved {
                len: max_len,
                reserved: None,
            });
        };
        self.reserved = Some(max_len);
        Ok(active.frame(max_len))
    }

    /// Publishes the envelope of `len` bytes a receiver wrote into the frame
    /// of the last [`Appender::reserve`] (after its first 8 bytes). Bytes
    /// that are not one intact envelope (length field, CRC32C) are refused
    /// with [`SpoolError::NotAnEnvelope`] and left unpublished: the caller
    /// still has them in its frame, to report or set aside.
    pub fn commit(&mut self, len: usize) -> Result<(), SpoolError> {
        let reserved = self.reserved.take();
        let in_frame = reserved.is_some_and(|max| len <= max);
        let Some(active) = self.active.as_mut().filter(|_| in_frame) else {
            self.failed();
            return Err(SpoolError::NotReserved { len, reserved });
        };
        let frame = active.frame(len);
        if let Err(reason) = envelope_intact(&frame[RECORD_HEADER as usize..]) {
            self.failed();
            return Err(SpoolError::NotAnEnvelope { len, reason });
        }
        active.publish_frame(len);
        self.published(len)
    }
}

/// A record [`commit_received`] committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The segment file.
    pub path: PathBuf,
    /// Data offset of the record.
    pub offset: u64,
    /// Length of its envelope.
    pub len: usize,
}

/// Commits, in every unsealed segment of `queue_key` in `dir` whose writer
/// is dead, the record a receiver wrote at `published` but did not publish
/// (see the spool's module docs, "Receivers"); returns what it committed.
/// Segments it cannot read are left to the reader, which reports them.
pub fn commit_received(dir: &Path, queue_key: libc::key_t) -> Result<Vec<Received>, SpoolError> {
    let entries = fs::read_dir(dir).map_err(|source| SpoolError::io(dir, dir, "scan", source))?;
    let mut committed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(Name::Segment(key, id)) = name.to_str().map(parse_name) else {
            continue;
        };
        if key != queue_key as u32 {
            continue;
        }
        let path = dir.join(&name);
        let Ok(file) = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
        else {
            continue;
        };
        // Holding the writer's lock ourselves: a live writer keeps it, and
        // nobody else repairs the file meanwhile.
        if lock::lock_exclusive(file.as_fd()).is_err() {
            continue;
        }
        let found =
            tail(&file, id).map_err(|source| SpoolError::io(dir, &path, "repair", source))?;
        if let Some((offset, len)) = found {
            committed.push(Received { path, offset, len });
        }
    }
    Ok(committed)
}

/// Commits the received tail of one locked segment, if it has one.
fn tail(file: &File, id: super::SegmentId) -> std::io::Result<Option<(u64, usize)>> {
    let mut page = vec![0u8; HEADER_SIZE as usize];
    if file.read_exact_at(&mut page, 0).is_err() {
        return Ok(None);
    }
    let word = |off: usize| {
        let mut le = [0u8; 8];
        le.copy_from_slice(&page[off..off + 8]);
        u64::from_le_bytes(le)
    };
    let mut fields = [0u8; 64];
    fields.copy_from_slice(&page[..64]);
    let header = match Header::decode(&fields) {
        Ok(header) if header.id == id => header,
        _ => return Ok(None),
    };
    let Some(published) = word_offset(word(OFF_PUBLISHED)) else {
        return Ok(None);
    };
    if word(OFF_SEALED) == SEALED || published % 8 != 0 {
        return Ok(None);
    }
    let room = header.capacity.saturating_sub(published);
    if room < RECORD_HEADER {
        return Ok(None);
    }
    let at = HEADER_SIZE + published;
    let mut slot = [0u8; 8];
    file.read_exact_at(&mut slot, at)?;
    let slot = u64::from_le_bytes(slot);
    let seed = check_seed(id);
    let len = if slot != 0 && record_word(seed, published, slot as u32) == slot {
        // Killed inside commit: the header is written, `published` not yet.
        slot as u32 as u64
    } else if (slot as i64) > 0 {
        // Killed between the receive and the commit: a message type.
        let mut head = [0u8; 64];
        let n = head.len().min((room - RECORD_HEADER) as usize);
        file.read_exact_at(&mut head[..n], at + RECORD_HEADER)?;
        match envelope_len(&head[..n]) {
            Ok(Some(len)) => len as u64,
            _ => return Ok(None),
        }
    } else {
        return Ok(None);
    };
    let span = record_span(len);
    if span > room {
        return Ok(None);
    }
    let mut body = vec![0u8; (span - RECORD_HEADER) as usize];
    file.read_exact_at(&mut body, at + RECORD_HEADER)?;
    if envelope_intact(&body[..len as usize]).is_err() {
        return Ok(None);
    }
    // Padding zeroed, then the record header, then `published`: the order
    // `commit` stores them in.
    body[len as usize..].fill(0);
    file.write_all_at(&body[len as usize..], at + RECORD_HEADER + len)?;
    let record = record_word(seed, published, len as u32);
    file.write_all_at(&record.to_le_bytes(), at)?;
    file.sync_data()?;
    let end = offset_word(published + span);
    file.write_all_at(&end.to_le_bytes(), OFF_PUBLISHED as u64)?;
    file.sync_data()?;
    Ok(Some((published, len as usize)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event_id::EventId;
    use crate::spool::{SpoolOptions, SpoolReader};

    fn envelope(n: u8) -> Vec<u8> {
        let mut out = Vec::new();
        let time = 1_700_000_000_000_000;
        crate::envelope::encode(
            &mut out,
            EventId::generate(time),
            time,
            "t",
            None,
            &[],
            &[n; 40],
        )
        .unwrap();
        out
    }

    /// Killed inside `commit`, after the record header and before
    /// `published`: the record is whole and gets published.
    #[test]
    fn a_record_killed_inside_commit_is_published() {
        let dir = tempfile::tempdir().unwrap();
        let options = SpoolOptions {
            segment_min: 4096,
            ..SpoolOptions::new(dir.path(), 7)
        };
        let mut appender = Appender::new(options);
        let first = envelope(1);
        appender.append(&first).unwrap();
        let body = envelope(2);
        let published = appender.active.as_ref().unwrap().published;
        let frame = appender.reserve(body.len()).unwrap();
        frame[RECORD_HEADER as usize..].copy_from_slice(&body);
        let path = fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let Name::Segment(_, id) = parse_name(path.file_name().unwrap().to_str().unwrap()) else {
            panic!("not a segment: {path:?}");
        };
        let record = record_word(check_seed(id), published, body.len() as u32);
        frame[..8].copy_from_slice(&record.to_le_bytes());
        // Dies here: no seal, no publish (its lock stays with this process,
        // so `tail` is called directly, as `commit_received` would once the
        // writer is gone).
        std::mem::forget(appender);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        assert_eq!(tail(&file, id).unwrap(), Some((published, body.len())));
        assert_eq!(tail(&file, id).unwrap(), None, "committed once");
        let mut reader =
            SpoolReader::open(dir.path(), 7, crate::spool::ReaderOptions::default()).unwrap();
        let mut bodies = Vec::new();
        while let Some(record) = reader.next_record() {
            bodies.push(reader.body(&record).to_vec());
        }
        assert_eq!(bodies, vec![first, body]);
    }
}
