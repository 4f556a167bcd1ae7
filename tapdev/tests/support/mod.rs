//! What tapdev's root tests share: the root check and a uniquely named network namespace that
//! is deleted, with the TAPs made in it, when dropped (even when a test fails).
#![allow(dead_code)]

use std::io;
use std::process::Command;

pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?;
            // Real, effective, saved, filesystem: the effective one decides.
            line.split_whitespace().nth(2).map(|euid| euid == "0")
        })
        .unwrap_or(false)
}

pub struct Netns {
    pub name: String,
    taps: Vec<String>,
}

impl Netns {
    /// `ip netns add NAME`; the error says why (the caller skips the test).
    pub fn create(name: String) -> io::Result<Netns> {
        let out = Command::new("ip").args(["netns", "add", &name]).output()?;
        if !out.status.success() {
            return Err(io::Error::other(
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ));
        }
        Ok(Netns {
            name,
            taps: Vec::new(),
        })
    }

    /// `ip -n NAME ARGS...`, which must succeed.
    pub fn ip(&self, args: &[&str]) {
        let out = Command::new("ip")
            .arg("-n")
            .arg(&self.name)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs `test_name` of this test binary inside the namespace, with `child_env` set so it
    /// does the checks; it must succeed and print `done_marker` (a child that ran no test
    /// cannot pass).
    pub fn run_test_inside(&self, test_name: &str, child_env: &str, done_marker: &str) {
        let exe = std::env::current_exe().unwrap();
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .arg(&exe)
            .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
            .env(child_env, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        print!("{stdout}");
        assert!(
            out.status.success() && stdout.contains(done_marker),
            "child in namespace failed:\n{stdout}\n{stderr}"
        );
    }

    /// A persistent TAP in the namespace, removed on drop.
    pub fn add_tap(&mut self, tap: &str) {
        self.ip(&["tuntap", "add", "dev", tap, "mode", "tap"]);
        self.taps.push(tap.to_string());
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for tap in &self.taps {
            let _ = Command::new("ip")
                .args(["-n", &self.name, "link", "del", tap])
                .output();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}
