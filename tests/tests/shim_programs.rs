//! Real programs, unmodified, on ustack through libsockshim.so, each against a kernel peer
//! over the TAP and, where it makes sense, against another program on the stack over its
//! loopback: nc, socat, curl + python3 -m http.server (50 MB, sha256 checked), iperf3 (both
//! directions), socat and Python over UDP (datagrams up to 65507 bytes, fragmented), a
//! fork-per-connection server, an asyncio (epoll) server with 200 clients, a
//! server that execs a handler per connection, and the failure modes (no daemon, daemon killed
//! mid-connection).

use std::time::Duration;

use sha2::{Digest, Sha256};
use ustack_tests::{
    build_test_programs, shim_library, text, wait_for, workspace_root, Daemon, Netns, Process,
    KERNEL_IP, STACK_IP,
};

const PYTHON: &str = "/usr/bin/python3";
const MB: usize = 1 << 20;

fn random_file(netns: &Netns, name: &str, len: usize) -> String {
    use rand::RngCore;
    let mut data = vec![0u8; len];
    rand::thread_rng().fill_bytes(&mut data);
    let path = netns.path(name);
    std::fs::write(&path, &data).expect("writing test data");
    path.to_string_lossy().into_owned()
}

fn sha256_file(path: &str) -> String {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    format!("{:x}", Sha256::digest(&data))
}

/// `env LD_PRELOAD=... USTACK_SOCKET=... PROGRAM ARGS...` as one shell word list.
fn on_stack(daemon: &Daemon, command: &str) -> String {
    format!("{} {command}", daemon.shim_env().join(" "))
}

/// Runs a shell command line in the namespace (never panics).
fn sh(netns: &Netns, script: &str) -> std::process::Output {
    netns.run("sh", &["-c", script])
}

/// A background shell command line in the namespace.
fn sh_spawn(netns: &Netns, script: &str) -> Process {
    netns.spawn("sh", &["-c", &format!("exec {script}")])
}

fn wait_stack_listener(daemon: &Daemon, count: u64) {
    assert!(
        daemon.wait_counter("app_listeners", count, Duration::from_secs(10)),
        "no program started listening on the stack: {:?}",
        daemon.stats()
    );
}

fn wait_kernel_listener(netns: &Netns, port: u16) {
    let listening = wait_for(Duration::from_secs(10), || {
        let out = netns.run("ss", &["-Hltn", &format!("sport = :{port}")]);
        !String::from_utf8_lossy(&out.stdout).trim().is_empty()
    });
    assert!(listening, "the kernel-side server did not listen on {port}");
}

#[test]
fn nc_on_stack_in_both_roles_against_kernel_nc() {
    let netns = Netns::new("nc");
    let daemon = Daemon::start(&netns, &[]);
    let input = random_file(&netns, "data", 3 * MB);

    // Server on the stack, kernel client.
    let got = netns.path("got1").to_string_lossy().into_owned();
    let mut server = sh_spawn(
        &netns,
        &format!("{} > {got}", on_stack(&daemon, "nc -l 5000")),
    );
    wait_stack_listener(&daemon, 1);
    let out = sh(
        &netns,
        &format!("timeout 30 nc -N {STACK_IP} 5000 < {input}"),
    );
    assert!(out.status.success(), "kernel nc client: {}", text(&out));
    assert!(wait_for(Duration::from_secs(10), || !server.is_running()));
    assert_eq!(
        sha256_file(&input),
        sha256_file(&got),
        "nc server on the stack"
    );

    // Kernel server, client on the stack.
    let got = netns.path("got2").to_string_lossy().into_owned();
    let mut server = sh_spawn(&netns, &format!("nc -l {KERNEL_IP} 5001 > {got}"));
    wait_kernel_listener(&netns, 5001);
    let client = on_stack(&daemon, &format!("nc -N {KERNEL_IP} 5001"));
    let out = sh(&netns, &format!("timeout 30 {client} < {input}"));
    assert!(
        out.status.success(),
        "nc client on the stack: {}",
        text(&out)
    );
    assert!(wait_for(Duration::from_secs(10), || !server.is_running()));
    assert_eq!(
        sha256_file(&input),
        sha256_file(&got),
        "nc client on the stack"
    );
}

#[test]
fn socat_fork_server_on_stack() {
    let netns = Netns::new("socat");
    let daemon = Daemon::start(&netns, &[]);
    let _server = sh_spawn(
        &netns,
        &on_stack(&daemon, "socat TCP-LISTEN:6100,reuseaddr,fork EXEC:cat"),
    );
    wait_stack_listener(&daemon, 1);
    for i in 0..3 {
        let out = sh(
            &netns,
            &format!("echo 'ping {i}' | timeout 10 socat - TCP:{STACK_IP}:6100"),
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("ping {i}\n"),
            "{}",
            text(&out)
        );
    }
    // A socat client on the stack too, over the stack's loopback, 1 MB through `cat`.
    let input = random_file(&netns, "data", MB);
    let back = netns.path("back").to_string_lossy().into_owned();
    let client = on_stack(&daemon, "socat - TCP:127.0.0.1:6100");
    let out = sh(&netns, &format!("timeout 30 {client} < {input} > {back}"));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(sha256_file(&input), sha256_file(&back));
}

fn wait_stack_udp_sockets(daemon: &Daemon, count: u64) {
    assert!(
        daemon.wait_counter("udp_sockets", count, Duration::from_secs(10)),
        "no UDP socket was bound on the stack: {:?}",
        daemon.stats()
    );
}

/// socat's UDP server and client on the stack against kernel socat, datagrams from 1 byte to
/// 65507 (fragmented both ways over the 1500-byte TAP) echoed and checked, a program writing
/// malformed records into its UDP socket, and the capture of it all decoding cleanly.
#[test]
fn socat_and_python_udp_on_stack_against_kernel_peers() {
    let netns = Netns::new("udp");
    let pcap = netns.path("udp.pcap");
    let mut tcpdump = netns.tcpdump(&pcap, &["udp or icmp"]);
    let daemon = Daemon::start(&netns, &[]);
    let peers = workspace_root().join("tests/peers");
    let programs = workspace_root().join("tests/programs");

    // socat UDP server on the stack (a child per peer, each a connected socket sharing the
    // port with the next listening one), kernel clients.
    let _server = sh_spawn(
        &netns,
        &on_stack(&daemon, "socat UDP-LISTEN:6200,reuseaddr,fork EXEC:cat"),
    );
    wait_stack_udp_sockets(&daemon, 1);
    for i in 0..3 {
        let out = sh(
            &netns,
            &format!("echo 'ping {i}' | timeout 10 socat -t 0.5 - UDP:{STACK_IP}:6200"),
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("ping {i}\n"),
            "{}",
            text(&out)
        );
    }

    // socat client on the stack, kernel echo server.
    let _kernel_server = sh_spawn(
        &netns,
        &format!("socat UDP-LISTEN:6201,bind={KERNEL_IP},reuseaddr,fork EXEC:cat"),
    );
    let listening = wait_for(Duration::from_secs(10), || {
        let out = netns.run("ss", &["-Hlun", "sport = :6201"]);
        !String::from_utf8_lossy(&out.stdout).trim().is_empty()
    });
    assert!(listening, "kernel socat did not bind UDP 6201");
    let client = on_stack(&daemon, &format!("socat -t 0.5 - UDP:{KERNEL_IP}:6201"));
    let out = sh(
        &netns,
        &format!("echo 'from the stack' | timeout 10 {client}"),
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "from the stack\n",
        "{}",
        text(&out)
    );

    // Every size, both directions across the TAP: a kernel echo server and a client on the
    // stack, then the reverse.
    let sizes = ["1", "1472", "1473", "8000", "65507"];
    let echo = peers.join("udp_echo.py").to_string_lossy().into_owned();
    let client = peers.join("udp_client.py").to_string_lossy().into_owned();
    let mut kernel_echo = sh_spawn(
        &netns,
        &format!("{PYTHON} {echo} {KERNEL_IP} 6202 {}", sizes.len()),
    );
    let listening = wait_for(Duration::from_secs(10), || {
        let out = netns.run("ss", &["-Hlun", "sport = :6202"]);
        !String::from_utf8_lossy(&out.stdout).trim().is_empty()
    });
    assert!(listening, "kernel UDP echo did not bind");
    let out = sh(
        &netns,
        &on_stack(
            &daemon,
            &format!(
                "timeout 30 {PYTHON} {client} {KERNEL_IP} 6202 {}",
                sizes.join(" ")
            ),
        ),
    );
    assert!(out.status.success(), "client on the stack: {}", text(&out));
    assert!(wait_for(Duration::from_secs(10), || !kernel_echo.is_running()));

    let sockets_before = daemon.counter("udp_sockets");
    let _stack_echo = sh_spawn(
        &netns,
        &on_stack(
            &daemon,
            &format!("{PYTHON} {echo} 0.0.0.0 6203 {}", sizes.len() + 1),
        ),
    );
    wait_stack_udp_sockets(&daemon, sockets_before + 1);
    let out = sh(
        &netns,
        &format!(
            "timeout 30 {PYTHON} {client} {STACK_IP} 6203 {}",
            sizes.join(" ")
        ),
    );
    assert!(out.status.success(), "kernel client: {}", text(&out));

    // A program that writes malformed records into its socket loses only those records. The
    // daemon is stopped while they are written, so it finds them all queued at once.
    let raw = programs
        .join("udp_raw_records.py")
        .to_string_lossy()
        .into_owned();
    let go = netns.path("go").to_string_lossy().into_owned();
    let raw_out = netns.path("raw.out").to_string_lossy().into_owned();
    let mut raw_program = sh_spawn(
        &netns,
        &on_stack(
            &daemon,
            &format!("timeout 30 {PYTHON} {raw} 127.0.0.1 6203 {go} > {raw_out} 2>&1"),
        ),
    );
    let printed = |what: &str| {
        wait_for(Duration::from_secs(10), || {
            std::fs::read_to_string(&raw_out).is_ok_and(|s| s.contains(what))
        })
    };
    assert!(printed("ready"), "{:?}", std::fs::read_to_string(&raw_out));
    let daemon_pid = daemon.process.pid();
    // SAFETY: signalling the daemon this test started, by PID.
    assert_eq!(unsafe { libc::kill(daemon_pid, libc::SIGSTOP) }, 0);
    std::fs::write(&go, b"").expect("go file");
    let written = printed("written");
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(daemon_pid, libc::SIGCONT) }, 0);
    assert!(written, "{:?}", std::fs::read_to_string(&raw_out));
    assert!(wait_for(Duration::from_secs(20), || !raw_program.is_running()));
    let out = std::fs::read_to_string(&raw_out).unwrap_or_default();
    assert!(out.ends_with("still fine after the garbage\n"), "{out}");
    assert!(daemon.counter("udp_out_datagrams") >= 10);

    tcpdump.stop_with(libc::SIGINT, Duration::from_secs(5));
    let pcap_arg = pcap.to_string_lossy().into_owned();
    let out = netns.run("tcpdump", &["-vv", "-nn", "-r", &pcap_arg]);
    let decoded = text(&out);
    assert!(out.status.success(), "tcpdump -r: {decoded}");
    // The kernel leaves its own UDP checksums to the TAP's offload (tcpdump shows them as
    // bad on the kernel's side); every datagram the stack sent must carry a correct one.
    let mut verified = 0;
    for line in decoded.lines() {
        if line.trim_start().starts_with(&format!("{STACK_IP}.")) {
            assert!(!line.contains("bad udp cksum"), "{line}\n{decoded}");
            verified += usize::from(line.contains("[udp sum ok]"));
        }
    }
    assert!(
        verified > 0,
        "no datagram of the stack's was checked: {decoded}"
    );
    assert!(!decoded.contains("bad cksum"), "{decoded}");
    assert!(!decoded.contains("truncated"), "{decoded}");
    assert!(
        decoded.contains(&format!("{STACK_IP}.6200 > {KERNEL_IP}")),
        "no datagram from the stack's server in the capture: {decoded}"
    );
}

#[test]
fn curl_and_http_server_50mb_in_all_four_placements() {
    let netns = Netns::new("http");
    let daemon = Daemon::start(&netns, &[]);
    let www = netns.path("www");
    std::fs::create_dir_all(&www).expect("creating the web root");
    let file = random_file(&netns, "www/big.bin", 50 * MB);
    let expected = sha256_file(&file);
    let serve = |on_stack_server: bool, bind: &str, port: u16| {
        let command = format!(
            "{PYTHON} -m http.server --directory {} --bind {bind} {port}",
            www.display()
        );
        if on_stack_server {
            sh_spawn(&netns, &on_stack(&daemon, &command))
        } else {
            sh_spawn(&netns, &command)
        }
    };
    let placements = [
        (true, false, "0.0.0.0", STACK_IP, 8000),
        (false, true, KERNEL_IP, KERNEL_IP, 8001),
        (true, true, "127.0.0.1", "127.0.0.1", 8002),
        (false, false, KERNEL_IP, KERNEL_IP, 8003),
    ];
    let mut listeners = 0;
    for (server_on_stack, client_on_stack, bind, host, port) in placements {
        let _server = serve(server_on_stack, bind, port);
        if server_on_stack {
            listeners += 1;
            wait_stack_listener(&daemon, listeners);
        } else {
            wait_kernel_listener(&netns, port);
        }
        let got = netns
            .path(&format!("got{port}"))
            .to_string_lossy()
            .into_owned();
        let curl = format!("curl -sS -o {got} http://{host}:{port}/big.bin");
        let curl = if client_on_stack {
            on_stack(&daemon, &curl)
        } else {
            curl
        };
        let out = sh(&netns, &format!("timeout 120 {curl}"));
        assert!(
            out.status.success(),
            "curl (server on stack {server_on_stack}, client on stack {client_on_stack}): {}",
            text(&out)
        );
        assert_eq!(
            sha256_file(&got),
            expected,
            "server on stack {server_on_stack}, client on stack {client_on_stack}"
        );
        if server_on_stack {
            listeners -= 1;
        }
    }
}

/// The receiver's bitrate line of an iperf3 run, checked for success.
fn iperf_receiver_line(out: &std::process::Output) -> String {
    let log = text(out);
    assert!(out.status.success(), "iperf3 failed: {log}");
    log.lines()
        .find(|l| l.contains("receiver"))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no receiver line in: {log}"))
}

#[test]
fn iperf3_client_and_server_on_stack_both_directions() {
    let netns = Netns::new("iperf");
    let daemon = Daemon::start(&netns, &[]);
    for (reverse, port) in [(false, 5201u16), (true, 5202)] {
        let r = if reverse { " -R" } else { "" };
        // Server on the stack (listening on :: dual-stack, iperf3's default), kernel client.
        let _server = sh_spawn(
            &netns,
            &on_stack(&daemon, &format!("iperf3 -s -1 -p {port}")),
        );
        wait_stack_listener(&daemon, 1);
        let out = sh(
            &netns,
            &format!("timeout 60 iperf3 -c {STACK_IP} -t 2 -p {port}{r}"),
        );
        let line = iperf_receiver_line(&out);
        eprintln!("iperf3 server on stack{r}: {line}");
        let idle = wait_for(Duration::from_secs(10), || {
            daemon.counter("app_listeners") == 0
        });
        assert!(idle, "iperf3 -s -1 did not exit");

        // Kernel server, client on the stack.
        let kport = port + 10;
        let _server = sh_spawn(&netns, &format!("iperf3 -s -1 -B {KERNEL_IP} -p {kport}"));
        wait_kernel_listener(&netns, kport);
        let client = on_stack(
            &daemon,
            &format!("iperf3 -c {KERNEL_IP} -t 2 -p {kport}{r}"),
        );
        let out = sh(&netns, &format!("timeout 60 {client}"));
        let line = iperf_receiver_line(&out);
        eprintln!("iperf3 client on stack{r}: {line}");
    }
}

/// sendfile() into a socket on the stack (the kernel splices file pages into the socketpair
/// and appends to the last buffer the daemon has not consumed: regression for a stall).
#[test]
fn sendfile_into_a_socket_on_stack() {
    let netns = Netns::new("sendf");
    let daemon = Daemon::start(&netns, &[]);
    let input = random_file(&netns, "data", 20 * MB);
    let got = netns.path("got").to_string_lossy().into_owned();
    let mut server = sh_spawn(&netns, &format!("nc -l {KERNEL_IP} 6305 > {got}"));
    wait_kernel_listener(&netns, 6305);
    let script = format!(
        "import os, socket\ns = socket.create_connection(('{KERNEL_IP}', 6305))\nf = os.open('{input}', os.O_RDONLY)\noff = 0\nwhile off < {len}:\n    off += os.sendfile(s.fileno(), f, off, {len} - off)\ns.close()",
        len = 20 * MB
    );
    let out = sh(
        &netns,
        &format!("timeout 60 {} -c \"{script}\"", on_stack(&daemon, PYTHON)),
    );
    assert!(out.status.success(), "sendfile client: {}", text(&out));
    assert!(wait_for(Duration::from_secs(20), || !server.is_running()));
    assert_eq!(sha256_file(&input), sha256_file(&got));
    // iperf3 -Z sends with sendfile too.
    let _server = sh_spawn(&netns, &format!("iperf3 -s -1 -B {KERNEL_IP} -p 5311"));
    wait_kernel_listener(&netns, 5311);
    let client = on_stack(&daemon, &format!("iperf3 -Z -c {KERNEL_IP} -t 2 -p 5311"));
    let line = iperf_receiver_line(&sh(&netns, &format!("timeout 60 {client}")));
    eprintln!("iperf3 -Z client on stack: {line}");
}

fn run_echo_programs(netns: &Netns, daemon: &Daemon, addr: &str, server: bool, client: bool) {
    let bin = build_test_programs(&netns.dir);
    let wrap = daemon.shim_env().join(" ");
    let mut cmd =
        std::process::Command::new(workspace_root().join("tests/programs/run_echo_programs.sh"));
    cmd.arg(&netns.name).arg(&bin).env("ADDR", addr);
    if server {
        cmd.env("SERVER_WRAP", &wrap);
    }
    if client {
        cmd.env("CLIENT_WRAP", &wrap);
    }
    let out = cmd.output().expect("running run_echo_programs.sh");
    let log = text(&out);
    assert!(
        out.status.success() && log.contains("run_echo_programs: PASS"),
        "echo programs (server on stack {server}, client on stack {client}) failed:\n{log}"
    );
}

#[test]
fn fork_server_and_asyncio_200_clients_on_stack_loopback() {
    let netns = Netns::new("echol");
    let daemon = Daemon::start(&netns, &[]);
    run_echo_programs(&netns, &daemon, "127.0.0.1", true, true);
}

#[test]
fn fork_server_and_asyncio_server_on_stack_kernel_clients() {
    let netns = Netns::new("echos");
    let daemon = Daemon::start(&netns, &[]);
    run_echo_programs(&netns, &daemon, STACK_IP, true, false);
}

#[test]
fn echo_clients_on_stack_kernel_servers() {
    let netns = Netns::new("echoc");
    let daemon = Daemon::start(&netns, &[]);
    run_echo_programs(&netns, &daemon, KERNEL_IP, false, true);
}

/// A server that forks and execs a new program per connection, which finds its socket as
/// fd 3 and uses it (family detection via getsockopt, getpeername, setsockopt, data).
#[test]
fn exec_per_connection_keeps_the_socket_working() {
    let netns = Netns::new("exec");
    let daemon = Daemon::start(&netns, &[]);
    let script = netns.path("exec_server.py");
    std::fs::write(
        &script,
        r#"
import os, socket, sys
l = socket.socket()
l.bind((sys.argv[1], 6000))
l.listen()
for _ in range(2):
    c, peer = l.accept()
    if os.fork() == 0:
        os.dup2(c.fileno(), 3)
        os.execv(sys.executable, [sys.executable, "-c",
            "import socket; s = socket.socket(fileno=3); "
            "s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1); "
            "s.sendall(('%s %s %s %d\\n' % (s.family.name, s.getpeername()[0], "
            "s.getsockname()[0], s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))).encode()); "
            "s.sendall(s.recv(100).upper()); s.close()"])
    c.close()
    os.wait()
"#,
    )
    .expect("writing the exec server");
    let _server = sh_spawn(
        &netns,
        &on_stack(
            &daemon,
            &format!("{PYTHON} {} {STACK_IP}", script.display()),
        ),
    );
    wait_stack_listener(&daemon, 1);
    for _ in 0..2 {
        let out = sh(
            &netns,
            &format!("echo hello | timeout 10 nc -N {STACK_IP} 6000"),
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("AF_INET {KERNEL_IP} {STACK_IP} 1\nHELLO\n"),
            "{}",
            text(&out)
        );
    }
}

/// `ustackd --socket-group`: only that group (and root) may use the stack; anyone else gets
/// one clear line and an errno from socket(), as without a daemon.
#[test]
fn control_socket_restricted_to_a_group() {
    let netns = Netns::new("group");
    let daemon = Daemon::start(&netns, &["--socket-group", "4242"]);
    let socket = daemon.shim_env().join(" ");
    let probe =
        format!("{socket} {PYTHON} -c 'import socket; socket.socket(); print(\"created\")'");
    let as_user = |gid: &str| {
        sh(
            &netns,
            &format!("setpriv --reuid 65534 --regid {gid} --clear-groups {probe}"),
        )
    };
    let member = as_user("4242");
    assert_eq!(
        String::from_utf8_lossy(&member.stdout).trim(),
        "created",
        "{}",
        text(&member)
    );
    let stranger = as_user("65534");
    let stderr = String::from_utf8_lossy(&stranger.stderr);
    assert!(!stranger.status.success(), "{}", text(&stranger));
    assert!(
        stderr.contains("not allowed to use ustackd") && stderr.contains("--socket-group"),
        "{stderr}"
    );
    let root = sh(&netns, &probe);
    assert_eq!(
        String::from_utf8_lossy(&root.stdout).trim(),
        "created",
        "{}",
        text(&root)
    );
}

/// A connection on the stack whose peer goes silent fails after TCP_USER_TIMEOUT, and the
/// program's read says ETIMEDOUT, as on Linux (the pair underneath can only say ECONNRESET).
#[test]
fn timed_out_connection_reads_etimedout() {
    let netns = Netns::new("tmo");
    let daemon = Daemon::start(&netns, &[]);
    let _server = sh_spawn(&netns, &format!("nc -l {KERNEL_IP} 6300 > /dev/null"));
    wait_kernel_listener(&netns, 6300);
    let flag = netns.path("blackholed").to_string_lossy().into_owned();
    let script = workspace_root().join("tests/programs/tcp_timeout_client.py");
    let out_path = netns.path("client.out").to_string_lossy().into_owned();
    let mut client = sh_spawn(
        &netns,
        &on_stack(
            &daemon,
            &format!(
                "{PYTHON} {} {KERNEL_IP} 6300 {flag} > {out_path} 2>&1",
                script.display()
            ),
        ),
    );
    assert!(
        wait_for(Duration::from_secs(10), || std::fs::read_to_string(
            &out_path
        )
        .is_ok_and(|s| s.contains("connected"))),
        "the client did not connect"
    );
    // Everything the stack sends is dropped from now on.
    let nft = netns.run(
        "nft",
        &["add table inet blackhole { chain input { type filter hook input priority 0; iifname \"tap0\" drop; }; }"],
    );
    assert!(nft.status.success(), "nft: {}", text(&nft));
    std::fs::write(&flag, b"").expect("flag file");
    assert!(wait_for(Duration::from_secs(20), || !client.is_running()));
    let out = std::fs::read_to_string(&out_path).unwrap_or_default();
    assert!(out.contains("recv ETIMEDOUT"), "{out}");
}

#[test]
fn no_daemon_is_one_clear_line_and_an_errno() {
    let netns = Netns::new("nod");
    let missing = netns.path("missing.sock");
    let out = std::process::Command::new(PYTHON)
        .env("LD_PRELOAD", shim_library())
        .env("USTACK_SOCKET", &missing)
        .args([
            "-c",
            "import socket\ntry:\n    socket.socket()\nexcept OSError as e:\n    print(e.errno)",
        ])
        .output()
        .expect("running python");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        libc::EAFNOSUPPORT.to_string()
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains(&*missing.to_string_lossy()) && lines[0].contains("USTACK_SOCKET"),
        "{stderr}"
    );
}

#[test]
fn daemon_killed_mid_connection_fails_reads_and_writes() {
    let netns = Netns::new("kill");
    let mut daemon = Daemon::start(&netns, &[]);
    let _server = sh_spawn(&netns, &format!("nc -l {KERNEL_IP} 6201 > /dev/null"));
    wait_kernel_listener(&netns, 6201);
    let client = on_stack(
        &daemon,
        &format!(
            "{PYTHON} -c \"import socket\ns = socket.create_connection(('{KERNEL_IP}', 6201))\nprint('connected', flush=True)\ntry:\n    s.recv(10)\nexcept OSError as e:\n    print('recv', e.errno)\ntry:\n    s.sendall(b'x' * 100000)\nexcept OSError as e:\n    print('send', e.errno)\""
        ),
    );
    let mut process = sh_spawn(&netns, &format!("timeout 20 {client}"));
    assert!(daemon.wait_counter("app_connected", 1, Duration::from_secs(10)));
    let _ = daemon.process.stop();
    assert!(
        wait_for(Duration::from_secs(10), || !process.is_running()),
        "the program hung after the daemon died"
    );
    let out = process.stop();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "connected\nrecv {}\nsend {}\n",
            libc::ECONNRESET,
            libc::EPIPE
        ),
        "{}",
        text(&out)
    );
}
