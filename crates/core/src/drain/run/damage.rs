//! Opening the journal loudly: damage found at start is logged with the
//! file and its positions and counted (`journal_damaged`), and damage that
//! may hide pending records stops the start unless the operator allows it
//! (`discard_damaged_journal`).

use super::super::journal::{Journal, OnDamage};
use super::super::DrainError;
use crate::metrics::DrainMetrics;
use crate::state_dir::StateDir;

/// Opens the state's journal for bodies up to `max_record` bytes.
pub(super) fn open_journal(
    state: &StateDir,
    size: u64,
    max_record: u64,
    on_damage: OnDamage,
) -> Result<Journal, DrainError> {
    Ok(Journal::open_with(
        &state.journal(),
        size,
        max_record,
        on_damage,
    )?)
}

/// Logs and counts what recovery met.
pub(super) fn report(journal: &Journal, metrics: &DrainMetrics) {
    let report = journal.recovery_report();
    let path = journal.path().display();
    if report.recreated_damaged {
        metrics.journal_damaged.inc();
        eprintln!(
            "shopify-events drain: journal {path}: its header was damaged (zero magic over data); \
             started a fresh journal as discard_damaged_journal allows: the records it may have \
             held are given up"
        );
    }
    if let Some(at) = report.stopped_at_garbage {
        metrics.journal_damaged.inc();
        let after = &report.records_after_garbage;
        let given_up = match (after.first(), after.last()) {
            (Some(first), Some(last)) => format!(
                "; {} record headers past it, at positions {first} to {last}, are given up \
                 (discard_damaged_journal)",
                after.len()
            ),
            _ => "; no record follows it".to_owned(),
        };
        eprintln!(
            "shopify-events drain: journal {path}: recovery from the checkpoint (position {}) met \
             bytes that are no record at position {at} after {} records, which are re-sent{given_up}",
            journal.checkpoint_offset(),
            report.records,
        );
    }
}
