//! A queue's segments in a spool directory, by name and size, for tools
//! (`shopify-events stats`): no file is opened.

use std::fs;
use std::io;
use std::path::Path;

use super::format::{parse_name, Name};
use super::SegmentId;

/// One segment file found in a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentFile {
    /// Its producer and index.
    pub id: SegmentId,
    /// Its size on disk, header page included.
    pub bytes: u64,
}

/// The segments of `queue_key` in `dir` (not the temporary or damaged
/// ones), sorted by producer and index.
pub fn list_segments(dir: &Path, queue_key: libc::key_t) -> io::Result<Vec<SegmentFile>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(Name::Segment(key, id)) = name.to_str().map(parse_name) else {
            continue;
        };
        if key != queue_key as u32 {
            continue;
        }
        match entry.metadata() {
            Ok(meta) => out.push(SegmentFile {
                id,
                bytes: meta.len(),
            }),
            // Deleted by the drain while we looked.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    out.sort_by_key(|s| s.id);
    Ok(out)
}
