//! Helpers shared by the end-to-end tests: a private network namespace with a TAP, a
//! `ustackd` running in it, and commands run as kernel peers inside the namespace.
//!
//! Every test makes its own uniquely named namespace and tears it down in `Drop` — also when
//! the test panics — after stopping every process it started (by PID). Tests need root; they
//! fail with a clear message otherwise rather than pass without testing anything.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The kernel side of the TAP and the stack's address, as in the interface contract.
pub const KERNEL_IP: &str = "10.77.0.1";
pub const STACK_IP: &str = "10.77.0.2";
pub const SUBNET: &str = "10.77.0";
pub const TAP: &str = "tap0";

/// The workspace root (this crate lives in `tests/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// A built binary of the workspace: `$USTACK_BIN_DIR/NAME`, else the target dir of the
/// profile these tests were built with (`cargo nextest run --release` → target/release).
pub fn binary(name: &str) -> PathBuf {
    let dir = std::env::var_os("USTACK_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let profile = if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            };
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| workspace_root().join("target"));
            target.join(profile)
        });
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not found: build the workspace first (cargo build --release --workspace) or set USTACK_BIN_DIR",
        path.display()
    );
    path
}

pub fn require_root() {
    assert!(
        nix_is_root(),
        "end-to-end tests create network namespaces and TAP devices: run them as root"
    );
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A private network namespace holding a persistent TAP (via `scripts/netns.sh`).
pub struct Netns {
    pub name: String,
    /// Directory for this test's files (control socket, captures); removed on drop.
    pub dir: PathBuf,
}

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

impl Netns {
    /// Creates `ustk-<tag>-<pid>-<n>` with `tap0` at 10.77.0.1/24.
    pub fn new(tag: &str) -> Netns {
        require_root();
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let name = format!("ustk-{tag}-{}-{id}", std::process::id());
        let dir = std::env::temp_dir().join(&name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating the test directory");
        let netns = Netns { name, dir };
        let out = Command::new(workspace_root().join("scripts/netns.sh"))
            .args(["up", &netns.name, TAP, SUBNET])
            .output()
            .expect("running scripts/netns.sh");
        assert!(
            out.status.success(),
            "scripts/netns.sh up failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        netns
    }

    /// A command that runs inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    /// Runs `program args` in the namespace and returns its output (never panics on failure).
    pub fn run(&self, program: &str, args: &[&str]) -> Output {
        self.command(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running {program} in {}: {e}", self.name))
    }

    /// Starts a background process in the namespace, in a process group of its own; the group
    /// (the process and whatever it started) is stopped when the guard drops.
    pub fn spawn(&self, program: &str, args: &[&str]) -> Process {
        use std::os::unix::process::CommandExt;
        let child = self
            .command(program)
            .args(args)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {program} in {}: {e}", self.name));
        Process {
            child: Some(child),
            name: program.to_string(),
        }
    }

    /// Starts `tcpdump -i tap0 -w FILE [FILTER]` and returns once it is capturing (it says
    /// "listening on" after the capture is attached; the file exists earlier than that).
    pub fn tcpdump(&self, file: &Path, filter: &[&str]) -> Process {
        let log = file.with_extension("log");
        let script = format!(
            "exec tcpdump -i {TAP} -n -U --immediate-mode -s 0 -w '{}' \"$@\" 2>'{}'",
            file.display(),
            log.display()
        );
        let mut args = vec!["-c", script.as_str(), "tcpdump"];
        args.extend_from_slice(filter);
        let mut process = self.spawn("sh", &args);
        let listening = wait_for(Duration::from_secs(10), || {
            std::fs::read_to_string(&log).is_ok_and(|t| t.contains("listening on"))
        });
        if !listening {
            let out = process.stop();
            panic!(
                "tcpdump did not start: {} {}",
                text(&out),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        process
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new(workspace_root().join("scripts/netns.sh"))
            .args(["down", &self.name])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A process we started; on drop it gets SIGTERM, then SIGKILL if it lingers.
pub struct Process {
    child: Option<Child>,
    name: String,
}

impl Process {
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(-1)
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Sends `signal`, waits up to `timeout` for exit, then SIGKILLs. Returns the output.
    pub fn stop_with(&mut self, signal: i32, timeout: Duration) -> Output {
        let Some(mut child) = self.child.take() else {
            panic!("{} already stopped", self.name);
        };
        let pid = child.id() as i32;
        // SAFETY: kill on the process group we created (spawn put the child at its head);
        // the child is not reaped yet, so the group id cannot have been reused.
        unsafe { libc::kill(-pid, signal) };
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Ok(None) = child.try_wait() {
            // SAFETY: as above.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
        child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("waiting for {}: {e}", self.name))
    }

    pub fn stop(&mut self) -> Output {
        self.stop_with(libc::SIGTERM, Duration::from_secs(5))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.stop_with(libc::SIGTERM, Duration::from_secs(3));
        }
    }
}

/// `ustackd` running inside a namespace, with its own control socket.
pub struct Daemon {
    pub process: Process,
    pub socket: PathBuf,
}

impl Daemon {
    /// Starts `ustackd --tap tap0 --addr 10.77.0.2/24 --gateway 10.77.0.1 EXTRA...` in `netns`
    /// and waits until its control socket answers.
    pub fn start(netns: &Netns, extra: &[&str]) -> Daemon {
        let socket = netns.path("ustackd.sock");
        let daemon = binary("ustackd");
        let addr = format!("{STACK_IP}/24");
        let socket_arg = socket.to_string_lossy().into_owned();
        let mut args = vec![
            "--tap",
            TAP,
            "--addr",
            &addr,
            "--gateway",
            KERNEL_IP,
            "--socket",
            &socket_arg,
        ];
        args.extend_from_slice(extra);
        let mut process = netns.spawn(&daemon.to_string_lossy(), &args);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if try_stats(&socket).is_some() {
                break;
            }
            if !process.is_running() {
                let out = process.stop();
                panic!(
                    "ustackd exited at start: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            assert!(
                Instant::now() < deadline,
                "ustackd did not answer within 10 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Daemon { process, socket }
    }

    /// All counters, from `ustack stats`.
    pub fn stats(&self) -> HashMap<String, u64> {
        try_stats(&self.socket).expect("ustack stats failed")
    }

    pub fn counter(&self, name: &str) -> u64 {
        let stats = self.stats();
        *stats
            .get(name)
            .unwrap_or_else(|| panic!("no counter named {name} in ustack stats"))
    }
}

fn try_stats(socket: &Path) -> Option<HashMap<String, u64>> {
    let out = Command::new(binary("ustack"))
        .arg("--socket")
        .arg(socket)
        .arg("stats")
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Some(
        text.lines()
            .filter_map(|line| {
                let mut parts = line.split_whitespace();
                let name = parts.next()?;
                let value = parts.next()?.parse().ok()?;
                Some((name.to_string(), value))
            })
            .collect(),
    )
}

/// Output as text, stdout then stderr.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Waits until `condition` holds, polling every 20 ms, up to `timeout`.
pub fn wait_for(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    condition()
}

// ----- programs under the shim (libsockshim.so) -----

/// The preload library, built with the workspace.
pub fn shim_library() -> PathBuf {
    binary("libsockshim.so")
}

/// Builds `tests/programs` (the seed demo, fork server, echo client and the conformance suite)
/// into `dir/bin` with make, and returns that directory.
pub fn build_test_programs(dir: &Path) -> PathBuf {
    let out_dir = dir.join("bin");
    let out = Command::new("make")
        .arg("-s")
        .arg("-C")
        .arg(workspace_root().join("tests/programs"))
        .arg(format!("OUT={}", out_dir.display()))
        .output()
        .expect("running make for tests/programs");
    assert!(
        out.status.success(),
        "building tests/programs failed: {}",
        text(&out)
    );
    out_dir
}

impl Daemon {
    /// `env LD_PRELOAD=<shim> USTACK_SOCKET=<socket>`: the words that put a command on this
    /// daemon's stack.
    pub fn shim_env(&self) -> Vec<String> {
        vec![
            "env".to_string(),
            format!("LD_PRELOAD={}", shim_library().display()),
            format!("USTACK_SOCKET={}", self.socket.display()),
        ]
    }

    /// Waits until `counter` (from `ustack stats`) reaches `at_least`.
    pub fn wait_counter(&self, counter: &str, at_least: u64, timeout: Duration) -> bool {
        wait_for(timeout, || {
            try_stats(&self.socket)
                .and_then(|s| s.get(counter).copied())
                .is_some_and(|v| v >= at_least)
        })
    }
}

impl Process {
    /// Starts `cmd` in a process group of its own with stdin piped (returned) and output
    /// captured; the group is stopped when the guard drops.
    pub fn spawn_with_stdin(mut cmd: Command, name: &str) -> (Process, std::process::ChildStdin) {
        use std::os::unix::process::CommandExt;
        let mut child = cmd
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        let stdin = child.stdin.take().expect("piped stdin");
        (
            Process {
                child: Some(child),
                name: name.to_string(),
            },
            stdin,
        )
    }
}
