//! What copying spooled events into the journal would cost: the drain
//! reads spool records in place and acknowledges them in their segment,
//! and this measures the alternative's extra work per event, in this
//! process: for each record a journal frame (`Journal::reserve`), a copy of
//! the envelope into it, a commit, and a checkpoint per 512 records, next
//! to only reading the same records (`SpoolReader::next_record` and the
//! body's first and last bytes, as the producer would touch them).

use std::hint::black_box;
use std::time::Instant;

use shopify_events_core::drain::journal::Journal;
use shopify_events_core::spool::{Appender, ReaderOptions, SpoolOptions, SpoolReader};
use testkit::events::event_frame;
use testkit::rng::XorShift;

/// ns per event: (reading in place, reading and copying into a journal).
pub fn measure(events: usize, payload: usize) -> (f64, f64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = 0x5e5e_c0de;
    let mut writer = Appender::new(SpoolOptions::new(dir.path(), key));
    let (mut frame, mut body) = (Vec::new(), vec![0u8; payload]);
    let mut rng = XorShift(7);
    for _ in 0..events {
        rng.fill_hex(&mut body);
        event_frame(&mut frame, "bench.copy", None, &body);
        writer.append(&frame[sysvmq::HEADER_LEN..]).expect("append");
    }
    writer.seal();
    let read = |copy: Option<&mut Journal>| {
        let mut reader =
            SpoolReader::open(dir.path(), key, ReaderOptions::default()).expect("reader");
        let mut journal = copy;
        let mut n = 0;
        let start = Instant::now();
        while n < events {
            reader.refresh().expect("refresh");
            while let Some(record) = reader.next_record() {
                let bytes = reader.body(&record);
                black_box((bytes[0], bytes[bytes.len() - 1]));
                if let Some(journal) = journal.as_deref_mut() {
                    let end = loop {
                        if let Some(frame) = journal.reserve() {
                            let at = sysvmq::HEADER_LEN;
                            frame[at..at + bytes.len()].copy_from_slice(bytes);
                            break journal.commit(bytes.len()).end;
                        }
                        journal.checkpoint(journal.write_offset());
                    };
                    if n % 512 == 511 {
                        journal.checkpoint(end);
                    }
                }
                n += 1;
            }
        }
        start.elapsed().as_nanos() as f64 / events as f64
    };
    let in_place = read(None);
    let journal_path = dir.path().join("journal.bin");
    let mut journal =
        Journal::open(&journal_path, 64 << 20, sysvmq::message_size_limit()).expect("journal");
    let copied = read(Some(&mut journal));
    (in_place, copied)
}
