//! The spool: per-process, memory-mapped, append-only event logs in a host
//! directory, one format for two uses. The SysV transport spools envelopes
//! the queue cannot take (queue full, larger than `kernel.msgmax`), and a
//! transport of its own appends every envelope here, with no system call in
//! the common case. The drain reads both with [`SpoolReader`].
//!
//! Every emitting process generation (see [`crate::process`]) writes its own
//! files, so each file has a single producer: [`SpoolWriter::append`]
//! reserves room in the writer's current *segment*, copies the envelope into
//! the shared mapping (that is, into the file's page cache, which outlives
//! the process) and publishes the record with one release store of the
//! segment's `published` word. The reader reads up to `published` and
//! nothing else, so a writer killed mid-copy leaves a tail nobody reads.
//! The drain acknowledges what Kafka took by moving the segment's `acked`
//! word, in the file itself, and deletes a segment once everything in it is
//! acknowledged and its writer has moved on (`sealed`) or died.
//!
//! # Directory and file names
//!
//! A spool directory holds the segments of many writers and many queues:
//!
//! ```text
//! <queue key: 8 hex>-<producer id: 16 hex>-<segment index: 10 digits>.seg
//! 0000beef-5f1c2a9e0b7d4c33-0000000000.seg
//! ```
//!
//! Lowercase hex; the queue key is the SysV key's 32 bits. Segment indices
//! count from 0 per producer, in the order the writer named them. A writer
//! builds a segment under the temporary name `.<name>.tmp` and renames it
//! into place once its header is complete, so a reader never sees a
//! half-initialised header. A segment built ahead of need
//! ([`SpoolOptions::prepare_ahead`]) carries a provisional index in its
//! temporary name (counting down from the largest) and gets its real one,
//! in its header and its name, when it is placed. A reader takes only
//! `.seg` files of its queue key and ignores everything else: other keys'
//! segments (left to their drain), files of other names or of another
//! format version (reported once each, never deleted; a name is remembered
//! while full scans find it, and at most 4096 of them: past that, one line
//! says how many more), temporary files (removed only once their writer is
//! dead and they are older than a minute: they never held a record),
//! `<name>.damaged` (a segment given up after damage, kept for the operator),
//! and `drain-<queue key: 8 hex>.lock`, the lock a drain holds while it
//! reads the queue's spool ([`ReaderLock`]: one reader per queue key and
//! directory, since two would both deliver every record).
//!
//! # Segment format, version 1 (little-endian)
//!
//! A 4096-byte header page, then `capacity` data bytes; the file is exactly
//! `4096 + capacity` bytes, allocated (`posix_fallocate`) when it is created.
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0 | 8 | magic `SESPOOL1` (the file family; the version tells the format) |
//! | 8 | 4 | format version, 1 |
//! | 12 | 4 | header size, 4096: the data area starts here |
//! | 16 | 8 | data capacity in bytes, a multiple of 4096, from 4096 to 2 GiB |
//! | 24 | 8 | producer id (non-zero), as in the name |
//! | 32 | 8 | segment index, as in the name (below 10¹⁰) |
//! | 40 | 4 | queue key, as in the name |
//! | 44 | 4 | flags, reserved: 0 |
//! | 48 | 8 | creation time, µs since the Unix epoch (i64) |
//! | 56 | 4 | pid of the writer: informational, never used for liveness |
//! | 60 | 4 | CRC32C of bytes 0..60 |
//! | 128 | 8 | `published`: offset word, data bytes of complete records |
//! | 192 | 8 | `sealed`: 0 while the writer may still append, `SESEALED` (ASCII) once it never will |
//! | 256 | 8 | `acked`: offset word, data bytes the reader is done with |
//!
//! Every other header byte is zero. Bytes 0..64 never change after the
//! rename. The three words live on 64-byte lines of their own, because
//! different processes write them: the writer `published` and `sealed`, the
//! reader `acked`. Each changes by single aligned 8-byte atomic stores, so a
//! crash leaves the old or the new value. An *offset word* holds a data
//! offset `o` (below 2³²) as `o | !o << 32`: the high half is the
//! complement of the low half, so a flipped bit or a page of zeros is seen
//! as damage instead of being read as another offset; likewise `sealed`
//! takes only 0 or `SESEALED`. Both offset words start as the offset word
//! of 0 (`0xFFFFFFFF_00000000`).
//!
//! ## Records
//!
//! Records start at 8-aligned data offsets, the first at 0:
//!
//! ```text
//! [u32 len][u32 check][envelope: len bytes][zero padding to 8]
//! ```
//!
//! `len` is the envelope's length (`total_len`, at least 44). `check` is the
//! CRC32C of the 28 bytes `producer id (u64) ‖ segment index (u64) ‖ data
//! offset of the record (u64) ‖ len (u32)`. It makes the length trustworthy
//! before anything is parsed: zeros (never written), a flipped bit, or a
//! record copied to another place or from another segment fail it. The
//! envelope carries its own CRC32C (`docs/PROTOCOL.md`), which covers the
//! body. The record ends at `offset + 8 + pad8(len)`: the next record's
//! offset.
//!
//! ## Invariants
//!
//! - Only the segment's writer writes its data and its `published` and
//!   `sealed` words; only the reader writes `acked`.
//! - `published` is a record boundary, only grows, and is stored (release)
//!   after the record's bytes: a reader that loads it (acquire) sees every
//!   record before it complete. Data past it is unspecified (a record being
//!   copied, or one a killed writer left torn) and never read.
//! - `sealed` is stored (release) after the last `published` store: a
//!   reader that sees it set and then loads `published` has the final value.
//! - `acked` is a record boundary at most `published` and only grows.
//! - Offsets fit 32 bits: capacity is at most 2 GiB, a record at most 1 GiB
//!   ([`MAX_RECORD_LIMIT`]).
//! - Data is never overwritten: a segment is written once, front to back,
//!   and deleted, never recycled. A future recycling writer would stamp new
//!   producer ids or indices, which the `check` word tells apart.
//!
//! # Writer
//!
//! One [`SpoolWriter`] per process per (directory, queue key), shared by
//! the process's threads through a `std::sync::Mutex` (why, and what it
//! costs, in `writer.rs`); a second writer on the same pair is a second
//! producer with files of its own. [`Appender`] is the same writer for one
//! thread, without the lock. A segment is created at its temporary name with
//! `O_EXCL`, locked (see [Liveness](#liveness)), `fchmod`ed to the
//! configured mode (default 0660, never wider than the queue's: see
//! [`segment_mode`]; the group is the directory's, as a setgid directory
//! gives it, and set by the writer where the directory lacks the bit),
//! allocated with `posix_fallocate` (so a full disk fails the creation, never
//! a later write with `SIGBUS`), mapped shared, every page write-faulted,
//! its header written, and renamed into place. The first segment of a
//! spooling episode is small ([`SpoolOptions::segment_min`], 64 KiB: an
//! overflow of a handful of events reserves little), each next one four
//! times larger up to [`SpoolOptions::segment_max`] (16 MiB); a record that
//! does not fit gets a segment sized to fit it. A record beyond
//! [`SpoolOptions::max_record`] (1 MiB, Kafka's default `message.max.bytes`)
//! is refused, and so are bytes that are not one envelope by its length
//! field: a reader stops at a bad record, so none may be written.
//!
//! Creating a segment costs what the kernel needs to hand out its pages
//! (allocation and zeroing, paid here instead of inside later appends): on
//! the append that needs it, which therefore takes milliseconds for a
//! 16 MiB segment (`examples/spool_bench` measures it). With
//! [`SpoolOptions::prepare_ahead`] a thread of the writer's own creates the
//! next segment under a temporary name while appends go on; the rotating
//! append then only stamps its header with the next index and renames it
//! into place (`prepare.rs`). The segment gets its index when it is placed,
//! so indices stay in the order segments were named whatever was created
//! inline meanwhile. Preparation moves the cost off the appending thread;
//! it does not lower it.
//!
//! Rotation seals the old segment after its last publish, closes it
//! (dropping its lock) and unmaps its data, then creates the next one (so a
//! failed creation leaves the full segment to the drain, which can delete
//! it and free the budget), but keeps the old one's header page mapped until the reader's `acked` reaches its
//! `published`: that is how [`SpoolWriter::drained`] answers "has the drain
//! acknowledged everything I ever spooled?" with memory loads only.
//! [`SpoolWriter::seal`] ends a spooling episode (the SysV transport goes
//! back to the queue); closing the writer seals too.
//!
//! A segment removed or replaced by hand under its writer (the writer
//! never reopens it by name, so it would go on appending to a file nobody
//! reads): an append checks, at most once every [`IN_PLACE_EVERY`] (a
//! coarse clock read per append, a `fstat` and a `stat` per check), that
//! its segment's link count is not 0 and that its name still refers to
//! it; if not, it seals it, leaves it (not waited for by `drained`: the
//! drain may never see it), counts it (`WriterStats::segments_orphaned`,
//! and a failure) and appends to a new segment. The bound: what was
//! appended to it between its removal and the first append a second or
//! more after the previous check is lost, unless the drain still has the
//! file mapped and reads it before it takes the writer for done; nothing
//! appended after that. A segment renamed to another name of the
//! directory is not noticed (that name is not read either).
//!
//! Fork: a forked child must never write into its parent's segment. All
//! writer state of one process generation sits behind one pointer; an
//! append in a child finds a generation that is not its own, leaves the
//! parent's state alone (leaked in the child: its lock may be held by a
//! parent thread that does not exist here) and starts its own, with the
//! child's producer id and files. A child's copy of the parent's lock
//! descriptor is closed by an `atfork` child handler (see Liveness).
//!
//! The bound: a segment is created only if the directory's spool files
//! (every writer's, every key's) plus the new one stay within
//! [`SpoolOptions::max_bytes`] and the filesystem keeps
//! [`SpoolOptions::min_free`] available. Defaults: a quarter of the
//! filesystem, at most 64 GiB; and 5% of it free, at most 1 GiB. The check
//! is not a reservation: writers creating segments at the same moment may
//! each pass it, overshooting by one segment each. A grown segment the
//! bound refuses is tried once more at `segment_min` (or the record's
//! size), so that a nearly full spool still takes small segments. After a failed creation
//! the writer does not try again for a second, and appends meanwhile fail
//! with the same error without a system call.
//!
//! ## Receivers
//!
//! A writer whose source forgets an event as it hands it over (the drain
//! saving the SysV queue at shutdown: `msgrcv` dequeues before it copies)
//! receives straight into the mapping: [`Appender::reserve`] hands out the
//! frame where the next record goes, the receiver writes the message type
//! where the record header goes and the envelope after it, and
//! [`Appender::commit`] checks the envelope (length field and CRC32C) and
//! publishes it as `append` would. A receiver killed in between leaves the
//! event past `published`; [`commit_received`] commits it once the writer is
//! dead, on directories only receivers write (see `receive.rs`).
//!
//! # Durability ([`SyncPolicy`])
//!
//! - `PageCache` (default): records are in the page cache once `append`
//!   returns. They survive any process crash, like the SysV queue, and a
//!   reboot once the kernel wrote them back (`vm.dirty_expire_centisecs`,
//!   30 s by default). A power loss or kernel crash loses what was not
//!   written back yet, possibly leaving a `published` word ahead of its
//!   data: the reader then meets zeros (or garbage) and reports damage.
//! - `Interval(d)`: the append that finds `d` passed since the last sync
//!   `msync`s the newly published data, then the header page (so
//!   `published` never reaches disk ahead of its records), inline. A power
//!   loss loses at most the records appended since the last sync: under a
//!   steady stream that is `d` worth; the tail of a burst stays unsynced
//!   until the next append, [`SpoolWriter::flush`], a rotation or the close.
//!   The clock is `CLOCK_MONOTONIC_COARSE` (a vDSO read, no syscall).
//! - `Always`: every append `msync`s its record and the header before it
//!   returns: nothing acknowledged to the caller is lost.
//!
//! Under `Interval` and `Always`, a new segment's header and its directory
//! entry are synced when it is created, so a synced record is never in a
//! file that vanished with the power.
//!
//! # Liveness
//!
//! A writer holds an exclusive open-file-description lock
//! (`fcntl(F_OFD_SETLK)`) on its active segment, taken at creation on the
//! temporary file, before it has its name, and released by the kernel when
//! the last reference to that open file description goes: at seal, or when
//! the process dies, even by `SIGKILL`. The reader tests it with
//! `F_OFD_GETLK`. A segment's lock is taken only once, so a free lock stays
//! free: "writer dead" is final.
//!
//! The lock is held through a descriptor used for nothing else: the
//! segment is sized and mapped through a second open of the file. A
//! mapping keeps its open file description (and so any OFD lock on it)
//! alive as long as the mapping exists, in forked children too, so a lock
//! on the mapped description would outlive the writer in every child that
//! inherited the mapping.
//!
//! Why not classic POSIX record locks (`F_SETLK`): they belong to the
//! process and vanish when it closes *any* descriptor of the file, so a
//! reader (the drain saving its own spool, or a test) in the writer's
//! process would drop the writer's lock by looking at the file, and
//! `F_GETLK` never reports the caller's own locks, so such a reader would
//! take a live writer for dead and delete its segment. OFD locks conflict
//! between descriptions, whoever owns them. Their catch is inheritance: a
//! forked child shares the description, so the lock would outlive the
//! writer while the child lives. So every lock descriptor is `O_CLOEXEC` (an
//! `exec` drops it) and registered in a fixed table that an `atfork` child
//! handler closes (async-signal-safe); a `prepare` handler waits for any
//! thread between `open` and registering its descriptor, so none escapes
//! into a child unregistered. (From the fork until the child's handler
//! has run, the child shares the lock: for that moment a dead writer looks
//! alive, which only delays a reclaim.) The table has 64 slots; a process
//! with more live writers lets its children hold the extra locks (a
//! segment then looks alive until that child exits: reclaim is delayed,
//! nothing lost).
//!
//! # Reader
//!
//! [`SpoolReader`] (the drain's) learns of segments of its queue key from
//! inotify (`IN_MOVED_TO` for renames into place; a full scan at start, on
//! queue overflow and every minute as a safety net) or, where inotify is
//! unavailable, from a directory scan every 250 ms. It maps each segment it
//! reads (header page read-write for `acked`, data read-only) and closes the
//! descriptor right away, so 100,000 segments cost no descriptors; it maps
//! at most [`ReaderOptions::max_open`] segments at once (4096, two mappings
//! each, within `vm.max_map_count`'s 65530), and admits the others as
//! earlier ones are reclaimed.
//!
//! Per producer, segments are read in index order: segment n+1 only after
//! segment n is finished (sealed, or its writer dead, and read to its
//! `published`). [`SpoolReader::next_record`] reads records in place, with loads
//! and CRCs and no system call: a [`RecordRef`] names the segment, offset
//! and end, and [`SpoolReader::body`] borrows the envelope from the mapping.
//! [`SpoolReader::ack`] moves the persisted `acked` forward to a record
//! boundary it has read. [`SpoolReader::refresh`] does everything that takes
//! a system call: discovery, mapping, liveness tests (each unsealed, fully
//! read segment at most once a second) and reclaim.
//!
//! Reclaim: a segment is unlinked once `acked == published` and it is
//! sealed or its writer is dead. An idle live writer's segment stays; a
//! writer that never exits still has its older segments reclaimed, since
//! rotation sealed them.
//!
//! The reader knows a segment by the file it mapped, `(device, inode)`,
//! not only by its name: a file put under the name by hand (removed and
//! created again, or renamed over) has a lock that says nothing of the
//! mapped file's writer, and was never read. So the liveness test takes a
//! name that refers to another file as the mapped file gone (its writer
//! done with it, as for a removed file), and reclaim leaves such a file in
//! place and reads it next as a segment of its own, from its `acked`
//! ([`SpoolEvent::Replaced`]; its records may be delivered again). Between
//! the reader's `stat` and its `unlink` a replacement is not seen: a
//! window of one system call.
//!
//! # Recovery
//!
//! A reader restarted after `kill -9` resumes every segment at its `acked`
//! (at-least-once: records acknowledged by Kafka but not yet checkpointed
//! are produced again, with the same event id).
//!
//! A header that fails its checks (magic, version, header size, capacity,
//! CRC, fields disagreeing with the name, a file shorter than its header
//! page) makes the segment unreadable: reported once
//! ([`SpoolEvent::Ignored`]), left in place, and the producer's next
//! segment is read. A segment the reader cannot open or map for want of
//! descriptors, mappings (`vm.max_map_count`) or access is no verdict on
//! it: reported once, tried again every second, and its producer's later
//! segments wait for it. Damaged header words are reported once each
//! ([`SpoolEvent::Damaged`] at offset 0) and worked around without losing
//! a record:
//!
//! - `published` failing its check: the reader waits while the writer
//!   lives (its next publish rewrites the word); once the writer is done
//!   (sealed or dead) it reads records up to the first that fails
//!   validation, which then ends the segment (the `check` word, salted with
//!   producer, index and offset, tells records from anything else).
//!   `published` beyond the file or not 8-aligned: cut to what the file
//!   holds.
//! - `sealed` neither 0 nor the seal: read as not sealed, so the writer's
//!   death ends the segment.
//! - `acked` failing its check or beyond `published`: read as 0; records
//!   may be delivered again (at-least-once), none is lost.
//!
//! Within the published range, the reader validates each record in this
//! order: the header fits before `published`; `check` matches; `len` is at
//! least 44 and the record ends at or before `published`; the envelope's
//! length field equals `len`; the envelope's CRC32C holds. A record that
//! fails is damage (power loss without sync, a disk error, a hostile
//! writer): the reader reports it ([`SpoolEvent::Damaged`]: file, offset,
//! reason), keeps every record before it, and does not guess past it. Once
//! the segment is sealed or its writer dead, its remainder is given up
//! ([`SpoolEvent::GivenUp`]); when the records before the damage are
//! acknowledged the reader sets `acked = published` (done with, not
//! delivered: the writer's `drained` must not wait forever), renames the
//! file to `<name>.damaged` for the operator, and reads the producer's next
//! segment. Field-level decoding is the consumer's: a record whose CRC holds
//! was written whole by its writer, and a malformed one goes where the
//! drain sends a malformed queue message.
//!
//! A segment truncated under a running reader (an operator's error) raises
//! `SIGBUS` in the reader, as any mapped file does; segments copied in from
//! elsewhere must be renamed into place complete, as the writer does.

mod appender;
mod budget;
mod error;
pub(crate) mod file;
mod fork;
mod format;
mod list;
mod lock;
mod options;
mod prepare;
mod reader;
mod reader_lock;
mod receive;
mod segment;
mod writer;

pub use appender::{Appender, IN_PLACE_EVERY};
pub use error::SpoolError;
pub use format::{segment_name, SegmentId, FORMAT_VERSION, HEADER_SIZE, MAGIC, MAX_RECORD_LIMIT};
pub use list::{list_segments, SegmentFile};
pub use options::{
    segment_mode, Discovery, ReaderOptions, SpoolOptions, SyncPolicy, DEFAULT_DIR,
    DEFAULT_MAX_OPEN, DEFAULT_MAX_RECORD, DEFAULT_MODE, DEFAULT_SEGMENT_MAX, DEFAULT_SEGMENT_MIN,
};
pub use reader::{
    Backlog, DamageKind, IgnoreReason, ReaderStats, RecordRef, SpoolEvent, SpoolReader,
};
pub use reader_lock::{reader_lock_name, ReaderLock};
pub use receive::{commit_received, Received};
pub use writer::{SpoolWriter, WriterStats};
