//! Permissions of the drain's state files and directory (issue 9, item 3):
//! whatever the umask, payloads on disk are no easier to read than in the
//! queue. This file is its own test binary because it sets the process's
//! umask to 0, the worst a unit file or a shell could hand the drain.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use shopify_events_core::drain::DeadLetters;
use shopify_events_core::state_dir::{create_file, Access, StateDir};

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

fn with_umask_zero<T>(f: impl FnOnce() -> T) -> T {
    // SAFETY: umask cannot fail. It is per process: the other test of this
    // binary creates nothing whose mode it checks.
    let old = unsafe { libc::umask(0) };
    let out = f();
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    out
}

#[test]
fn state_files_are_private_under_a_zero_umask_and_wider_ones_are_narrowed() {
    with_umask_zero(|| {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::new(tmp.path().join("a/state"), 0x1234);
        state.create().unwrap();
        assert_eq!(mode(state.root()), 0o750, "new state directory");
        assert_eq!(mode(&tmp.path().join("a")), 0o750, "new parent directory");

        create_file(&state.journal(), Access::ReadWrite).unwrap();
        create_file(&state.drain_lock(), Access::ReadWrite).unwrap();
        create_file(&state.dead_letters(), Access::Append).unwrap();
        create_file(&state.stats_snapshot_tmp(), Access::Replace).unwrap();
        assert_eq!(mode(&state.journal()), 0o600, "journal");
        assert_eq!(mode(&state.drain_lock()), 0o600, "lock");
        assert_eq!(mode(&state.dead_letters()), 0o600, "dead letters");
        assert_eq!(mode(&state.stats_snapshot_tmp()), 0o640, "stats snapshot");

        // Left by an older drain under the umask: narrowed, contents kept.
        fs::write(state.journal(), b"kept").unwrap();
        fs::set_permissions(state.journal(), fs::Permissions::from_mode(0o644)).unwrap();
        fs::set_permissions(
            state.stats_snapshot_tmp(),
            fs::Permissions::from_mode(0o666),
        )
        .unwrap();
        create_file(&state.journal(), Access::ReadWrite).unwrap();
        create_file(&state.stats_snapshot_tmp(), Access::Replace).unwrap();
        assert_eq!(mode(&state.journal()), 0o600);
        assert_eq!(fs::read(state.journal()).unwrap(), b"kept");
        assert_eq!(mode(&state.stats_snapshot_tmp()), 0o640);

        // An existing directory of ours, wider: narrowed, setgid kept.
        fs::set_permissions(state.root(), fs::Permissions::from_mode(0o2777)).unwrap();
        state.create().unwrap();
        assert_eq!(mode(state.root()), 0o2750);

        // A sticky shared directory (like /tmp) is not ours to change.
        let shared = tmp.path().join("shared");
        fs::create_dir(&shared).unwrap();
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
        StateDir::new(&shared, 1).create().unwrap();
        assert_eq!(mode(&shared), 0o1777);

        // Dead letters in a directory of their own, rotated: the directory
        // is created like the state's, and every rotated file stays private.
        let dead_dir = tmp.path().join("dead");
        let dead_state = state.clone().with_dead_letter_dir(&dead_dir);
        let (mut dead, error) = DeadLetters::open(&dead_state, 400, 3);
        assert!(error.is_none(), "{error:?}");
        for i in 0..12 {
            dead.write(&format!("reason {i}"), &[7; 100], None).unwrap();
        }
        assert_eq!(mode(&dead_dir), 0o750, "dead-letter directory");
        for path in [
            dead_state.dead_letters(),
            dead_state.dead_letters_rotated(1),
            dead_state.dead_letters_rotated(2),
        ] {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
    });
}

#[test]
fn a_symlink_planted_at_a_state_file_name_is_not_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let state = StateDir::new(tmp.path(), 0x1234);
    let target = tmp.path().join("elsewhere");
    fs::write(&target, b"not the drain's").unwrap();
    symlink(&target, state.dead_letters()).unwrap();
    let err = create_file(&state.dead_letters(), Access::Append).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ELOOP), "{err}");
    assert_eq!(fs::read(&target).unwrap(), b"not the drain's");
}
