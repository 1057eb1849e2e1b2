//! A real terminal for tests of full-screen commands: a detached `tmux`
//! session on a server of its own (`tmux -S`, a socket in the temp
//! directory), read with `capture-pane` and typed into with `send-keys`.
//! The server is killed and its socket removed when the [`Tmux`] drops; it
//! never touches the user's tmux.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::wait::wait_until;

/// One tmux server with one session running one command.
#[derive(Debug)]
pub struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    /// Starts `command` (run by `sh -c`) in a `width`×`height` terminal
    /// with `TERM=xterm-256color`. Panics if tmux is missing (script/setup
    /// installs it).
    pub fn start(width: u16, height: u16, command: &str) -> Tmux {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmux = Tmux {
            socket: std::env::temp_dir().join(format!(
                "shopify-events-tmux-{}-{n}.sock",
                std::process::id()
            )),
        };
        tmux.run(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
            "-e",
            "TERM=xterm-256color",
            command,
        ]);
        tmux
    }

    /// The visible screen, one line per row, trailing blanks trimmed.
    pub fn screen(&self) -> String {
        let out = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(["capture-pane", "-p", "-t", "0"])
            .stderr(Stdio::null())
            .output()
            .expect("run tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits up to `timeout` for the screen to satisfy `done`; returns the
    /// last screen seen and whether it did.
    pub fn wait_for(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&str) -> bool,
    ) -> (String, bool) {
        let mut screen = String::new();
        let ok = wait_until(timeout, || {
            screen = self.screen();
            done(&screen)
        });
        (screen, ok)
    }

    /// Types `keys` (tmux key names: `q`, `Escape`, `C-c`).
    pub fn send_keys(&self, keys: &str) {
        self.run(&["send-keys", "-t", "0", keys]);
    }

    /// Whether the session still runs (its command has not exited).
    pub fn alive(&self) -> bool {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("has-session")
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn run(&self, args: &[&str]) {
        let status = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .status()
            .unwrap_or_else(|e| panic!("run tmux (apt-get install tmux): {e}"));
        assert!(status.success(), "tmux {args:?}: {status}");
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_file(&self.socket);
    }
}
