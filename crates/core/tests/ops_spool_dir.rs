//! `shopify-events setup`'s spool directory and `--group`: the directory is
//! created 2770 (setgid: files take its group), an existing one is brought
//! to that mode and group, the queue is given to the group, and a group
//! name that does not exist is a typed error naming it.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use shopify_events_core::ops::{self, SetupError, SetupPlan};
use sysvmq::Queue;
use testkit::queue::KeyGuard;

fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn setup_creates_the_spool_directory_2770_with_the_group_and_gives_the_queue_to_it() {
    if !root() {
        eprintln!("skipped: changing a directory's group to another needs root");
        return;
    }
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("spool").join("shopify-events");
    let guard = KeyGuard::new();
    let gid = ops::resolve_group("daemon").expect("the daemon group");
    let limits = sysvmq::Limits::read().unwrap();
    let plan = SetupPlan {
        group: Some(gid),
        spool_dir: Some(dir.clone()),
        mode: 0o660,
        ..SetupPlan::new(guard.key(), limits.msgmax.min(limits.msgmnb))
    };
    let report = plan.run().expect("setup");
    assert!(report.is_ready(), "{report}");

    let meta = std::fs::metadata(&dir).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o2770);
    assert_eq!(meta.gid(), gid);
    let spool = report
        .spool
        .as_ref()
        .expect("the spool directory in the report");
    assert!(spool.created && spool.changed.is_empty(), "{spool:?}");
    assert_eq!((spool.mode.as_str(), spool.gid), ("2770", gid));
    assert_eq!(Queue::open(guard.key()).unwrap().stat().unwrap().gid, gid);
    let text = report.to_string();
    assert!(
        text.contains(&format!(
            "spool dir    {} (created; mode 2770",
            dir.display()
        )),
        "{text}"
    );
    assert!(text.contains("group daemon"), "{text}");

    // A file created in it takes its group (setgid).
    let file = dir.join("probe");
    std::fs::write(&file, b"x").unwrap();
    assert_eq!(std::fs::metadata(&file).unwrap().gid(), gid);
}

#[test]
fn setup_brings_an_existing_spool_directory_to_2770_and_the_group() {
    if !root() {
        eprintln!("skipped: changing a directory's group to another needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let gid = ops::resolve_group("1").unwrap();
    let state = ops::prepare_spool_dir(dir.path(), Some(gid)).expect("adjust");
    assert!(!state.created);
    assert_eq!(state.mode, "2770");
    assert_eq!(state.changed.len(), 2, "{:?}", state.changed);
    assert!(
        state.changed[1].contains("mode 0755 -> 2770"),
        "{:?}",
        state.changed
    );
    // Again: nothing to change.
    let again = ops::prepare_spool_dir(dir.path(), Some(gid)).unwrap();
    assert!(again.changed.is_empty(), "{:?}", again.changed);
}

#[test]
fn a_spool_directory_path_that_is_a_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"").unwrap();
    let err = ops::prepare_spool_dir(&file, None).unwrap_err();
    assert!(matches!(err, SetupError::SpoolDir { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&file.display().to_string()),
        "{err}"
    );
}

#[test]
fn an_unknown_group_is_an_error_naming_it() {
    let err = ops::resolve_group("no-such-group-shopify-events").unwrap_err();
    assert!(matches!(err, SetupError::UnknownGroup { .. }));
    assert!(
        err.to_string().contains("\"no-such-group-shopify-events\""),
        "{err}"
    );
    assert_eq!(ops::resolve_group("4242").unwrap(), 4242);
    assert_eq!(ops::group_name(4_000_000), "4000000");
}

#[test]
fn a_spool_directory_setup_cannot_create_is_advice_and_the_queue_still_decides() {
    let parent = tempfile::tempdir().unwrap();
    let file = parent.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    let dir = file.join("spool"); // under a file: cannot be created
    let guard = KeyGuard::new();
    let limits = sysvmq::Limits::read().unwrap();
    let plan = SetupPlan {
        spool_dir: Some(dir.clone()),
        ..SetupPlan::new(guard.key(), limits.msgmax.min(limits.msgmnb))
    };
    let report = plan.run().expect("setup");
    assert!(report.is_ready(), "the queue is ready: {report}");
    assert!(report.spool.is_none());
    let advice = report
        .spool_advice
        .as_ref()
        .expect("advice for the spool directory");
    assert!(
        advice.command.starts_with("install -d -m 2770"),
        "{advice:?}"
    );
    let text = report.to_string();
    assert!(
        text.contains(&format!("spool directory {}", dir.display())),
        "{text}"
    );
}
