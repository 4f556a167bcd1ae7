//! Seed 001's server/client demo, unmodified, on ustack through libsockshim.so: both programs
//! on the stack over its loopback (127.0.0.1), and the server on the stack with the kernel's
//! client connecting over the TAP (10.77.0.2).

use std::io::Write;
use std::time::Duration;

use ustack_tests::{
    binary, build_test_programs, text, wait_for, workspace_root, Daemon, Netns, Process, STACK_IP,
};

const PORT: &str = "7777";

/// `ustack stats` says a program on the stack is listening.
fn ready_command(daemon: &Daemon) -> String {
    format!(
        "{} --socket {} stats | grep -Eq '^app_listeners +[1-9]'",
        binary("ustack").display(),
        daemon.socket.display()
    )
}

#[test]
fn seed_demo_server_and_client_on_stack_loopback() {
    let netns = Netns::new("seed");
    let daemon = Daemon::start(&netns, &[]);
    let bin = build_test_programs(&netns.dir);
    let wrap = daemon.shim_env().join(" ");
    let out = std::process::Command::new(workspace_root().join("tests/programs/run_seed_demo.sh"))
        .arg(&netns.name)
        .arg(&bin)
        .env("SERVER_WRAP", &wrap)
        .env("CLIENT_WRAP", &wrap)
        .env("SERVER_READY_CMD", ready_command(&daemon))
        .output()
        .expect("running run_seed_demo.sh");
    let log = text(&out);
    assert!(out.status.success(), "seed demo failed:\n{log}");
    assert!(log.contains("run_seed_demo: PASS"), "{log}");
    // The conversation went through the stack, not the kernel: the daemon saw the sockets.
    assert!(
        daemon.counter("tcp_active_opens") >= 3,
        "{:?}",
        daemon.stats()
    );
}

#[test]
fn seed_server_on_stack_kernel_client_over_tap() {
    let netns = Netns::new("seedk");
    let daemon = Daemon::start(&netns, &[]);
    let bin = build_test_programs(&netns.dir);
    let server = bin.join("seed_server");
    // `ustack run` puts the server on the stack (and keeps stdbuf's own preload working).
    let mut cmd = netns.command(&binary("ustack").to_string_lossy());
    cmd.args(["--socket", &daemon.socket.to_string_lossy(), "run", "--"])
        .args(["stdbuf", "-o0", &server.to_string_lossy(), STACK_IP, PORT]);
    let (mut process, mut stdin) = Process::spawn_with_stdin(cmd, "seed_server");
    assert!(
        daemon.wait_counter("app_listeners", 1, Duration::from_secs(10)),
        "seed_server did not start listening on the stack"
    );
    stdin
        .write_all(b"hi, i got you\nbyebye\n")
        .expect("writing the server's replies");
    stdin.flush().expect("flushing the server's stdin");

    let client = bin.join("seed_client");
    let script = format!(
        "printf 'hi\\nbye\\nq\\n' | timeout 20 {} {STACK_IP} {PORT}",
        client.display()
    );
    let out = netns.run("sh", &["-c", &script]);
    assert!(out.status.success(), "kernel client failed: {}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "you say: {STACK_IP} say: hi, i got you\nyou say: {STACK_IP} say: byebye\nyou say: "
        )
    );
    // The "q" round connects and closes without writing: the server prints a third prompt.
    let passive = || daemon.counter("tcp_passive_opens");
    assert!(wait_for(Duration::from_secs(5), || passive() >= 3));
    std::thread::sleep(Duration::from_millis(300));
    assert!(process.is_running(), "seed_server exited early");
    let server_out = process.stop();
    assert_eq!(
        String::from_utf8_lossy(&server_out.stdout),
        "10.77.0.1 say: hi\nyou say: 10.77.0.1 say: bye\nyou say: 10.77.0.1 say: \nyou say: ",
        "server stderr: {}",
        String::from_utf8_lossy(&server_out.stderr)
    );
}
