//! The differential conformance suite (tests/conformance): the same binary on the kernel and
//! under libsockshim.so on ustack must print identical lines, case by case. Every TCP and UDP
//! case runs on the stack (checked through the daemon's counters).

use std::collections::BTreeMap;
use std::process::Output;

use ustack_tests::{build_test_programs, text, Daemon, Netns};

/// `case: result` lines by case name.
fn cases(out: &Output) -> BTreeMap<String, String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let (name, result) = line.split_once(": ")?;
            Some((name.to_string(), result.to_string()))
        })
        .collect()
}

fn differences(kernel: &BTreeMap<String, String>, shim: &BTreeMap<String, String>) -> Vec<String> {
    kernel
        .iter()
        .filter(|(name, result)| shim.get(*name) != Some(result))
        .map(|(name, result)| {
            format!(
                "{name}:\n  kernel: {result}\n  shim:   {}",
                shim.get(name).map_or("(missing)", String::as_str)
            )
        })
        .collect()
}

#[test]
fn conformance_suite_matches_the_kernel() {
    run_suite("conf", &[]);
}

/// The same with the TAP carrying plain frames only (the default is offloads).
#[test]
fn conformance_suite_matches_the_kernel_without_offloads() {
    run_suite("confplain", &["--no-offloads"]);
}

fn run_suite(tag: &str, daemon_flags: &[&str]) {
    let netns = Netns::new(tag);
    let daemon = Daemon::start(&netns, daemon_flags);
    let bin = build_test_programs(&netns.dir);
    let suite = bin.join("conformance").to_string_lossy().into_owned();

    let kernel_out = netns.run(&suite, &[]);
    let kernel = cases(&kernel_out);
    assert!(
        kernel.len() >= 150,
        "the kernel run printed only {} cases: {}",
        kernel.len(),
        text(&kernel_out)
    );

    let mut args: Vec<String> = daemon.shim_env();
    args.push(suite.clone());
    let words: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    let shim_out = netns.run("env", &words);
    let shim = cases(&shim_out);
    let diff = differences(&kernel, &shim);
    assert!(
        diff.is_empty(),
        "{} of {} cases differ under the shim:\n{}\n(shim stderr: {})",
        diff.len(),
        kernel.len(),
        diff.join("\n"),
        String::from_utf8_lossy(&shim_out.stderr)
    );

    // The shim's sockets really ran on the stack: TCP and UDP both (the cases exchange
    // datagrams over 127.0.0.1, and one is refused with ICMP port unreachable).
    for counter in [
        "tcp_passive_opens",
        "udp_out_datagrams",
        "udp_in_datagrams",
        "udp_icmp_errors",
    ] {
        assert!(
            daemon.counter(counter) > 0,
            "{counter} is 0: the suite did not run on the stack"
        );
    }

    // The same as an unprivileged user (the privileged-port cases depend on it).
    let mut unprivileged = vec!["--reuid", "65534", "--regid", "65534", "--clear-groups"];
    unprivileged.extend(args.iter().map(String::as_str));
    let out = netns.run("setpriv", &unprivileged);
    let diff = differences(&kernel, &cases(&out));
    assert!(
        diff.is_empty(),
        "unprivileged under the shim, {} cases differ:\n{}",
        diff.len(),
        diff.join("\n")
    );
}
