//! The operator's tools against a running stack with known sockets: `ustack ss` (listeners,
//! connections with TCP internals, UDP sockets, owning processes, filters) and
//! `ustack stats --json`, and their one-line errors.

use std::collections::HashMap;
use std::time::Duration;

use ustack_tests::{binary, text, wait_for, Daemon, Netns, Process, KERNEL_IP, STACK_IP};

const PYTHON: &str = "/usr/bin/python3";

/// A Python program on the stack that listens on TCP 6400, binds UDP 127.0.0.1:6401, connects
/// to the kernel's TCP 6402 and sends 10 bytes, then sleeps.
const HOLDER: &str = r#"
import socket, sys, time
l = socket.socket(); l.bind(("0.0.0.0", 6400)); l.listen(7)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 6401))
c = socket.create_connection((sys.argv[1], 6402)); c.sendall(b"0123456789")
print("ready", flush=True)
time.sleep(30)
"#;

fn ustack(netns: &Netns, daemon: &Daemon, args: &[&str]) -> String {
    let socket = daemon.socket.to_string_lossy().into_owned();
    let mut all = vec!["--socket", &socket];
    all.extend_from_slice(args);
    let out = netns.run(&binary("ustack").to_string_lossy(), &all);
    assert!(out.status.success(), "ustack {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The data lines of `ustack ss` output, split into columns.
fn rows(output: &str) -> Vec<Vec<String>> {
    output
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with('\t'))
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

fn find<'a>(rows: &'a [Vec<String>], netid: &str, state: &str, local: &str) -> &'a Vec<String> {
    rows.iter()
        .find(|r| r[0] == netid && r[1] == state && r[4] == local)
        .unwrap_or_else(|| panic!("no {netid} {state} {local} in {rows:?}"))
}

struct Setup {
    netns: Netns,
    daemon: Daemon,
    holder: Process,
    _kernel_server: Process,
    _kernel_client: Process,
}

fn setup(tag: &str) -> Setup {
    let netns = Netns::new(tag);
    let daemon = Daemon::start(&netns, &["--services"]);
    // A kernel server for the program's connection, and a kernel client of the echo service.
    let kernel_server = netns.spawn(
        "sh",
        &["-c", &format!("exec nc -l {KERNEL_IP} 6402 > /dev/null")],
    );
    assert!(wait_for(Duration::from_secs(10), || {
        let out = netns.run("ss", &["-Hltn", "sport = :6402"]);
        !String::from_utf8_lossy(&out.stdout).trim().is_empty()
    }));
    let kernel_client = netns.spawn(
        "sh",
        &["-c", &format!("sleep 30 | nc {STACK_IP} 7 > /dev/null")],
    );
    let script = netns.path("holder.py");
    std::fs::write(&script, HOLDER).expect("writing the holder");
    let mut command = daemon.shim_env();
    command.extend([
        PYTHON.to_string(),
        script.to_string_lossy().into_owned(),
        KERNEL_IP.to_string(),
    ]);
    let words: Vec<&str> = command.iter().skip(1).map(String::as_str).collect();
    let holder = netns.spawn("env", &words);
    assert!(
        daemon.wait_counter("tcp_passive_opens", 1, Duration::from_secs(10))
            && daemon.wait_counter("app_connected", 1, Duration::from_secs(10))
            && daemon.wait_counter("udp_sockets", 1, Duration::from_secs(10)),
        "the sockets did not appear: {:?}",
        daemon.stats()
    );
    Setup {
        netns,
        daemon,
        holder,
        _kernel_server: kernel_server,
        _kernel_client: kernel_client,
    }
}

#[test]
fn ss_lists_every_socket_with_owner_and_tcp_internals() {
    let s = setup("ss");
    let pid = s.holder.pid();
    let owner = format!("users:((\"python3\",pid={pid},");

    let all = ustack(&s.netns, &s.daemon, &["ss", "-a", "-p", "-i"]);
    let table = rows(&all);
    assert!(all.starts_with("Netid State"), "{all}");

    let listener = find(&table, "tcp", "LISTEN", "0.0.0.0:6400");
    assert_eq!(listener[5], "*:*");
    assert_eq!(
        listener[3], "7",
        "Send-Q of a listener is its backlog: {listener:?}"
    );
    assert!(listener[6].starts_with(&owner), "{listener:?}");
    find(&table, "tcp", "LISTEN", "0.0.0.0:7"); // the echo service, no process

    let udp = find(&table, "udp", "UNCONN", "127.0.0.1:6401");
    assert!(udp[6].starts_with(&owner), "{udp:?}");

    let client = table
        .iter()
        .find(|r| r[0] == "tcp" && r[1] == "ESTAB" && r[5] == format!("{KERNEL_IP}:6402"))
        .unwrap_or_else(|| panic!("no connection to the kernel's 6402: {all}"));
    assert!(client[4].starts_with(&format!("{STACK_IP}:")), "{client:?}");
    assert!(client[6].starts_with(&owner), "{client:?}");

    // The service connection from the kernel, with its TCP internals on the next line.
    let echo_line = all
        .lines()
        .position(|l| l.contains(&format!("{STACK_IP}:7 ")) && l.contains("ESTAB"))
        .unwrap_or_else(|| panic!("no echo connection: {all}"));
    let details = all.lines().nth(echo_line + 1).unwrap_or_default();
    for key in [
        "rtt:",
        "rto:",
        "mss:1448",
        "cwnd:",
        "bytes_acked:",
        "segs_in:",
    ] {
        assert!(details.contains(key), "no {key} in {details:?}");
    }

    // Filters.
    let listening = rows(&ustack(&s.netns, &s.daemon, &["ss", "-l"]));
    assert!(
        listening
            .iter()
            .all(|r| r[1] == "LISTEN" || r[1] == "UNCONN"),
        "{listening:?}"
    );
    assert!(listening.len() >= 5, "{listening:?}");
    let established = rows(&ustack(&s.netns, &s.daemon, &["ss"]));
    assert!(!established.is_empty());
    assert!(
        established.iter().all(|r| r[1] == "ESTAB"),
        "{established:?}"
    );
    let by_port = rows(&ustack(
        &s.netns,
        &s.daemon,
        &["ss", "-a", "--port", "6401"],
    ));
    assert_eq!(by_port.len(), 1, "{by_port:?}");
    assert_eq!(by_port[0][0], "udp");
    let tcp_listeners = rows(&ustack(&s.netns, &s.daemon, &["ss", "-lt"]));
    assert!(
        tcp_listeners.iter().all(|r| r[0] == "tcp"),
        "{tcp_listeners:?}"
    );
    let by_state = rows(&ustack(
        &s.netns,
        &s.daemon,
        &["ss", "--state", "listening"],
    ));
    assert_eq!(by_state.len(), listening.len() - 1, "{by_state:?}");
}

#[test]
fn stats_json_is_one_object_of_counters() {
    let s = setup("stats");
    let json = ustack(&s.netns, &s.daemon, &["stats", "--json"]);
    let body = json
        .trim()
        .strip_prefix('{')
        .and_then(|b| b.strip_suffix('}'))
        .unwrap_or_else(|| panic!("not one object: {json}"));
    let counters: HashMap<&str, u64> = body
        .split(',')
        .map(|field| {
            let (name, value) = field.split_once(':').expect("name:value");
            let name = name
                .strip_prefix('"')
                .and_then(|n| n.strip_suffix('"'))
                .expect("quoted");
            (name, value.parse().expect("a number"))
        })
        .collect();
    for (name, at_least) in [
        ("frames_in", 1),
        ("arp_requests_in", 0),
        ("tcp_passive_opens", 1),
        ("tcp_active_opens", 1),
        ("udp_sockets", 1),
        ("app_listeners", 1),
    ] {
        let value = counters.get(name).copied();
        assert!(
            value.is_some_and(|v| v >= at_least),
            "{name} = {value:?} in {json}"
        );
    }
    // The text form carries the same counters.
    let lines = ustack(&s.netns, &s.daemon, &["stats"]);
    assert_eq!(lines.lines().count(), counters.len());
}

#[test]
fn tools_without_a_daemon_say_what_to_run() {
    let netns = Netns::new("nod");
    let missing = netns.path("missing.sock").to_string_lossy().into_owned();
    for args in [vec!["stats"], vec!["ss", "-a"]] {
        let mut all = vec!["--socket", missing.as_str()];
        all.extend(args.iter().copied());
        let out = netns.run(&binary("ustack").to_string_lossy(), &all);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains("no ustackd is listening") && stderr.contains("USTACK_SOCKET"),
            "{stderr}"
        );
    }
}
