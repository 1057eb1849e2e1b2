//! The state file's bytes: [`encode`] and [`decode`], the layout of the
//! [module docs](super) (pure: no file access here).

use std::collections::VecDeque;

use super::file::Damage;
use super::producer::{Counts, Mark, Producer, MAX_GAP_RANGES};
use super::totals::Totals;
use super::tracker::Tracker;
use super::window::SeenWindow;
use super::{Limits, TrackerConfig};

/// First bytes of a state file.
pub const MAGIC: [u8; 8] = *b"SEACCNT1";
/// The format version this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;
const HEADER_SIZE: usize = 128;
const HEADER_CRC_AT: usize = 124;
const RECORD_MAGIC: [u8; 4] = *b"SEPR";
/// Record bytes before the arrays.
const RECORD_FIXED: usize = 120;
const CRC_LEN: usize = 4;
const MAX_MARKS: usize = 128;
const FLAG_JOINED_LATE: u32 = 1;
const FLAG_RETIRED: u32 = 2;

/// Appends `tracker`'s state, saved at `now`, to `out`.
pub(super) fn encode(tracker: &Tracker, now: u64, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(HEADER_SIZE as u32).to_le_bytes());
    out.extend_from_slice(&now.to_le_bytes());
    out.extend_from_slice(&tracker.since.to_le_bytes());
    out.extend_from_slice(&(tracker.producers.len() as u64).to_le_bytes());
    let t = &tracker.totals;
    for v in [
        t.admitted,
        t.unaccounted,
        t.gaps,
        t.late,
        t.duplicates,
        t.unclassified,
        t.joined_late,
        t.forgotten,
        t.evicted,
        t.forced,
    ] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    let damaged = u32::try_from(t.state_damaged).unwrap_or(u32::MAX);
    out.extend_from_slice(&damaged.to_le_bytes());
    let crc = crc32c::crc32c(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
    for (&id, p) in &tracker.producers {
        encode_record(id, p, out);
    }
}

fn encode_record(id: u64, p: &Producer, out: &mut Vec<u8>) {
    let start = out.len();
    let (g, m, w) = (p.gaps.len(), p.marks.len(), p.seen.len_words());
    let len = RECORD_FIXED + 16 * (g + m) + 8 * w + CRC_LEN;
    out.extend_from_slice(&RECORD_MAGIC);
    out.extend_from_slice(&(len as u32).to_le_bytes());
    let c = &p.counts;
    for v in [
        id,
        p.start,
        p.next,
        p.end,
        p.gap_floor,
        p.last_seen,
        c.admitted,
        c.gaps,
        c.late,
        c.duplicates,
        c.unclassified,
        p.seen.base(),
    ] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&(g as u16).to_le_bytes());
    out.extend_from_slice(&(m as u16).to_le_bytes());
    out.extend_from_slice(&(w as u32).to_le_bytes());
    let flags = u32::from(p.joined_late) * FLAG_JOINED_LATE + u32::from(p.retired) * FLAG_RETIRED;
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    for &(from, to) in &p.gaps {
        out.extend_from_slice(&from.to_le_bytes());
        out.extend_from_slice(&to.to_le_bytes());
    }
    for mark in &p.marks {
        out.extend_from_slice(&mark.end.to_le_bytes());
        out.extend_from_slice(&mark.seen_by.to_le_bytes());
    }
    for word in p.seen.words() {
        out.extend_from_slice(&word.to_le_bytes());
    }
    let crc = crc32c::crc32c(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// What [`decode`] made of a file.
#[derive(Debug)]
pub(super) struct Decoded {
    pub(super) tracker: Tracker,
    /// Why the header was not used, if it was not (the counters restart).
    pub(super) header: Option<String>,
    /// Records the header announced.
    pub(super) expected: Option<u64>,
    pub(super) damage: Vec<Damage>,
}

/// Why a file is not read at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Unreadable(pub(super) String);

/// Reads a state file's bytes, keeping every record that is intact.
pub(super) fn decode(
    bytes: &[u8],
    config: &TrackerConfig,
    now: u64,
) -> Result<Decoded, Unreadable> {
    let limits = Limits::from(config);
    let header = parse_header(bytes)?;
    let (totals, since, expected, header_damage) = match header {
        Ok(h) => (h.totals, h.since, Some(h.records), None),
        Err(reason) => (Totals::default(), now, None, Some(reason)),
    };
    let mut tracker = Tracker::with_parts(limits, totals, since);
    let mut damage = Vec::new();
    let mut at = HEADER_SIZE.min(bytes.len());
    while at < bytes.len() {
        match parse_record(&bytes[at..]) {
            Ok((id, p, len)) if !tracker.producers.contains_key(&id) => {
                tracker.window_words += p.seen.len_words();
                tracker.producers.insert(id, p);
                at += len;
            }
            Ok((id, _, len)) => {
                damage.push(Damage {
                    offset: at as u64,
                    len: len as u64,
                    reason: format!("producer {id:016x} appears twice; the second is skipped"),
                });
                at += len;
            }
            Err(reason) => {
                let resume = resync(bytes, at + 1);
                damage.push(Damage {
                    offset: at as u64,
                    len: (resume - at) as u64,
                    reason,
                });
                at = resume;
            }
        }
    }
    Ok(Decoded {
        tracker,
        header: header_damage,
        expected,
        damage,
    })
}

struct Header {
    since: u64,
    records: u64,
    totals: Totals,
}

/// The header, `Ok(Err(reason))` if it is damaged (the records may still
/// be read), `Err` if the file is of another format or version.
fn parse_header(bytes: &[u8]) -> Result<Result<Header, String>, Unreadable> {
    let Some(head) = bytes.get(..HEADER_SIZE) else {
        return Ok(Err(format!(
            "the file is {} bytes, shorter than its {HEADER_SIZE}-byte header",
            bytes.len()
        )));
    };
    let u32_at =
        |at: usize| u32::from_le_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]);
    if head[..8] == MAGIC {
        let version = u32_at(8);
        if version != FORMAT_VERSION {
            return Err(Unreadable(format!(
                "format version {version}, this drain reads version {FORMAT_VERSION} (written by a newer drain?)"
            )));
        }
    } else {
        return Ok(Err(format!("bad magic {:02x?}", &head[..8])));
    }
    let crc = crc32c::crc32c(&head[..HEADER_CRC_AT]);
    if crc != u32_at(HEADER_CRC_AT) {
        return Ok(Err(format!(
            "header checksum mismatch: stored {:#010x}, computed {crc:#010x}",
            u32_at(HEADER_CRC_AT)
        )));
    }
    if u32_at(12) as usize != HEADER_SIZE {
        return Ok(Err(format!(
            "header size {} is not {HEADER_SIZE}",
            u32_at(12)
        )));
    }
    let u64s: Vec<u64> = head[16..120].chunks_exact(8).map(le_u64).collect();
    let totals = Totals {
        admitted: u64s[3],
        unaccounted: u64s[4],
        gaps: u64s[5],
        late: u64s[6],
        duplicates: u64s[7],
        unclassified: u64s[8],
        joined_late: u64s[9],
        forgotten: u64s[10],
        evicted: u64s[11],
        forced: u64s[12],
        state_damaged: u64::from(u32_at(120)),
    };
    Ok(Ok(Header {
        since: u64s[1],
        records: u64s[2],
        totals,
    }))
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    u64::from_le_bytes(a)
}

/// The first position from `from` where a valid record starts, or the end.
fn resync(bytes: &[u8], from: usize) -> usize {
    let mut at = from;
    while let Some(found) = bytes
        .get(at..)
        .and_then(|rest| rest.windows(4).position(|w| w == RECORD_MAGIC))
    {
        let candidate = at + found;
        if parse_record(&bytes[candidate..]).is_ok() {
            return candidate;
        }
        at = candidate + 1;
    }
    bytes.len()
}

/// One record at the start of `bytes`: its producer id, state and length.
fn parse_record(bytes: &[u8]) -> Result<(u64, Producer, usize), String> {
    if bytes.len() < RECORD_FIXED + CRC_LEN {
        return Err(format!("{} bytes left, too few for a record", bytes.len()));
    }
    if bytes[..4] != RECORD_MAGIC {
        return Err(format!("no record magic: {:02x?}", &bytes[..4]));
    }
    let len = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
    if len < RECORD_FIXED + CRC_LEN || len > bytes.len() {
        return Err(format!(
            "record length {len} outside {}..={}",
            RECORD_FIXED + CRC_LEN,
            bytes.len()
        ));
    }
    let record = &bytes[..len];
    let stored = u32::from_le_bytes([
        record[len - 4],
        record[len - 3],
        record[len - 2],
        record[len - 1],
    ]);
    let computed = crc32c::crc32c(&record[..len - CRC_LEN]);
    if stored != computed {
        return Err(format!(
            "record checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
        ));
    }
    let f: Vec<u64> = record[8..104].chunks_exact(8).map(le_u64).collect();
    let g = usize::from(u16::from_le_bytes([record[104], record[105]]));
    let m = usize::from(u16::from_le_bytes([record[106], record[107]]));
    let w = u32::from_le_bytes([record[108], record[109], record[110], record[111]]) as usize;
    let flags = u32::from_le_bytes([record[112], record[113], record[114], record[115]]);
    if RECORD_FIXED + 16 * (g + m) + 8 * w + CRC_LEN != len {
        return Err(format!(
            "record length {len} does not fit {g} gap ranges, {m} marks and {w} words"
        ));
    }
    let mut words = record[RECORD_FIXED..len - CRC_LEN]
        .chunks_exact(8)
        .map(le_u64);
    let mut pairs = Vec::with_capacity(g + m);
    for _ in 0..g + m {
        let a = words.next().unwrap_or_default();
        let b = words.next().unwrap_or_default();
        pairs.push((a, b));
    }
    let bitmap: Vec<u64> = words.collect();
    let (id, start, next, end, gap_floor, last_seen) = (f[0], f[1], f[2], f[3], f[4], f[5]);
    let counts = Counts {
        admitted: f[6],
        gaps: f[7],
        late: f[8],
        duplicates: f[9],
        unclassified: f[10],
    };
    let base = f[11];
    let gaps = pairs[..g].to_vec();
    let marks: VecDeque<Mark> = pairs[g..]
        .iter()
        .map(|&(end, seen_by)| Mark { end, seen_by })
        .collect();
    let p = Producer {
        start,
        next,
        end,
        seen: SeenWindow::from_parts(base, bitmap),
        marks,
        gaps,
        gap_floor,
        last_seen,
        counts,
        joined_late: flags & FLAG_JOINED_LATE != 0,
        retired: flags & FLAG_RETIRED != 0,
    };
    check(id, &p, flags, &record[116..120]).map(|()| (id, p, len))
}

/// The invariants of the [module docs](super) for a record whose CRC held.
fn check(id: u64, p: &Producer, flags: u32, reserved: &[u8]) -> Result<(), String> {
    let fail = |what: &str| Err(format!("producer {id:016x}: {what}"));
    if id == 0 {
        return fail("producer id 0");
    }
    if flags & !(FLAG_JOINED_LATE | FLAG_RETIRED) != 0 || reserved != [0; 4] {
        return fail("reserved bits set");
    }
    if p.next > p.end {
        return fail("watermark past the end");
    }
    let words = p.seen.len_words() as u64;
    if p.next == p.end {
        if words != 0 || !p.marks.is_empty() {
            return fail("a window or marks with nothing pending");
        }
    } else {
        let base = p.seen.base();
        let covers_end = (p.end - 1 - base.min(p.end - 1)) / 64 < words;
        if base % 64 != 0 || base > p.next || p.next - base >= 64 || words == 0 || !covers_end {
            return fail("the window does not start at the watermark");
        }
        if (p.end - base).div_ceil(64) != words || !p.seen.get(p.end - 1) {
            return fail("the window does not end at the last number seen");
        }
    }
    if p.retired && p.next != p.end {
        return fail("retired with numbers pending");
    }
    if p.gaps.len() > MAX_GAP_RANGES || p.marks.len() > MAX_MARKS {
        return fail("too many gap ranges or marks");
    }
    let mut floor = p.gap_floor.max(p.start);
    for &(from, to) in &p.gaps {
        if from < floor || from >= to || to > p.next {
            return fail("gap ranges out of order or past the watermark");
        }
        floor = to;
    }
    let mut seen_by = 0;
    for mark in &p.marks {
        if mark.seen_by < seen_by || mark.end > p.end {
            return fail("marks out of order or past the end");
        }
        seen_by = mark.seen_by;
    }
    Ok(())
}
