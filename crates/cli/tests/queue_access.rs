//! Who may read the queue (issue 9, item 6): the drain and the proxy check
//! its owner and mode when they start, and `setup --group` gives the apps'
//! group access. Needs root (tests set a queue's owner with IPC_SET).

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use sysvmq::Queue;
use testkit::drain::DrainSpec;
use testkit::queue::KeyGuard;
use testkit::wait::{serial, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_shopify-events");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run shopify-events")
}

fn proxy_with_timeout(key: &KeyGuard, dir: &std::path::Path) -> Output {
    let socket = format!("unix://{}", dir.join("p.sock").display());
    let mut child = Command::new(BIN)
        .args([
            "proxy",
            "--no-spool",
            "--listen",
            &socket,
            "--queue-key",
            &key.hex(),
            "--run-dir",
            &dir.display().to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let exited = wait_until(Duration::from_secs(10), || {
        child.try_wait().unwrap().is_some()
    });
    if !exited {
        let _ = child.kill();
    }
    child.wait_with_output().unwrap()
}

/// Sets the queue's owner uid (root only).
fn set_owner(queue: &Queue, uid: u32) {
    // SAFETY: msqid_ds is plain data; IPC_STAT fills it, IPC_SET reads it.
    unsafe {
        let mut ds: libc::msqid_ds = std::mem::zeroed();
        assert_eq!(libc::msgctl(queue.id(), libc::IPC_STAT, &mut ds), 0);
        ds.msg_perm.uid = uid;
        assert_eq!(libc::msgctl(queue.id(), libc::IPC_SET, &mut ds), 0);
    }
}

#[test]
fn a_queue_every_local_user_can_read_is_refused_by_the_drain_and_the_proxy() {
    let _serial = serial();
    let key = KeyGuard::new();
    let _queue = Queue::create(key.key(), 0o666).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spec = DrainSpec::new(BIN, key.key(), &dir.path().join("state"), dir.path())
        .args(["--sink", "stdout"]);
    let mut drain = spec.spawn(0);
    let status = drain
        .wait_timeout(Duration::from_secs(20))
        .expect("the drain must refuse, not run");
    assert!(!status.success());
    let log = drain.log_text();
    assert!(
        log.contains("mode 0666") && log.contains("setup --group"),
        "{log}"
    );

    let out = proxy_with_timeout(&key, dir.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("mode 0666") && err.contains("ipcrm -Q"),
        "{err}"
    );
}

#[test]
fn a_queue_owned_by_another_user_is_named_in_a_warning() {
    let _serial = serial();
    let key = KeyGuard::new();
    let queue = Queue::create(key.key(), 0o660).unwrap();
    set_owner(&queue, 54321);
    let dir = tempfile::tempdir().unwrap();
    let spec = DrainSpec::new(BIN, key.key(), &dir.path().join("state"), dir.path())
        .args(["--sink", "stdout"]);
    let mut drain = spec.spawn(0);
    assert!(
        wait_until(Duration::from_secs(20), || drain
            .log_text()
            .contains("belongs to uid 54321")),
        "{}",
        drain.log_text()
    );
    drain.assert_running();
}

#[test]
fn setup_group_gives_a_new_and_an_existing_queue_the_apps_group() {
    let _serial = serial();
    let key = KeyGuard::new();
    let out = run(&[
        "setup",
        "--no-spool-dir",
        "--queue-key",
        &key.hex(),
        "--capacity",
        "16KiB",
        "--group",
        "4242",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stat = Queue::open(key.key()).unwrap().stat().unwrap();
    assert_eq!((stat.gid, stat.mode), (4242, 0o660));
    assert!(String::from_utf8_lossy(&out.stdout).contains("(uid 0, group 4242)"));

    // An existing queue, made by an app with its own group: regrouped.
    let out = run(&[
        "setup",
        "--no-spool-dir",
        "--queue-key",
        &key.hex(),
        "--capacity",
        "16KiB",
        "--group",
        "root",
        "--mode",
        "640",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stat = Queue::open(key.key()).unwrap().stat().unwrap();
    assert_eq!((stat.gid, stat.mode), (0, 0o640));

    let out = run(&[
        "setup",
        "--no-spool-dir",
        "--queue-key",
        &key.hex(),
        "--capacity",
        "16KiB",
        "--group",
        "no-such-group-anywhere",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-group-anywhere"));
}
