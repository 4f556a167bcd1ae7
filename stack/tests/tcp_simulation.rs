//! Two TCP stacks over a seeded faulty link, in virtual time: every run transfers
//! `TRANSFER` bytes each way, checks every byte arrives once and in order, and that both sides
//! close cleanly (CLOSED, after TIME-WAIT) with no panic.
//!
//! The CI profile runs 200 seeds across the fault profiles; `USTACK_SIM_SEEDS=N` runs N seeds
//! instead (e.g. 5000 for a long run), `USTACK_SIM_SEED=S` only seed S (to replay a failure).

mod tcp_sim;

use std::time::Duration;

use tcp_sim::{LinkProfile, Sim};
use ustack::tcp::config::TcpConfig;
use ustack::tcp::congestion::CongestionAlgorithm;

const TRANSFER: u64 = 1 << 20;

fn config(seed: u64) -> TcpConfig {
    TcpConfig {
        time_wait: Duration::from_secs(1),
        // A 20%-loss link loses the handshake 7 times in a row often enough to matter over
        // hundreds of runs; the retry limits are not what is tested here.
        syn_retries: 30,
        synack_retries: 30,
        retries2: 30,
        congestion: if seed.is_multiple_of(2) {
            CongestionAlgorithm::Cubic
        } else {
            CongestionAlgorithm::Reno
        },
        ..TcpConfig::default()
    }
}

/// The fault profile of a seed: each seed picks one of these, then its own random stream.
fn profile(seed: u64) -> (&'static str, LinkProfile) {
    let base = LinkProfile::clean(5 + seed % 20);
    match seed % 10 {
        0 => ("clean", base),
        1 => ("loss 1%", LinkProfile { loss: 0.01, ..base }),
        2 => ("loss 5%", LinkProfile { loss: 0.05, ..base }),
        3 => ("loss 20%", LinkProfile { loss: 0.20, ..base }),
        4 => (
            "reorder",
            LinkProfile {
                reorder: 0.1,
                reorder_delay: Duration::from_millis(7),
                ..base
            },
        ),
        5 => (
            "duplicate",
            LinkProfile {
                duplicate: 0.1,
                ..base
            },
        ),
        6 => (
            "corrupt",
            LinkProfile {
                corrupt: 0.05,
                ..base
            },
        ),
        7 => (
            "delay + jitter",
            LinkProfile {
                delay: Duration::from_millis(80),
                jitter: Duration::from_millis(30),
                ..base
            },
        ),
        8 => (
            "bottleneck 10 MB/s",
            LinkProfile {
                rate: 10_000_000,
                max_queue: Duration::from_millis(20),
                ..base
            },
        ),
        _ => (
            "everything",
            LinkProfile {
                loss: 0.03,
                duplicate: 0.03,
                reorder: 0.05,
                reorder_delay: Duration::from_millis(4),
                corrupt: 0.02,
                jitter: Duration::from_millis(3),
                ..base
            },
        ),
    }
}

fn run_seed(seed: u64) -> Result<tcp_sim::Outcome, String> {
    let (name, link) = profile(seed);
    let mut sim = Sim::new(seed, config(seed), link, link, TRANSFER);
    sim.run(Duration::from_secs(3600))
        .map_err(|e| format!("seed {seed} ({name}): {e}"))
}

/// The seeds of one shard. The runs are split into `SHARDS` tests so the test harness runs
/// them in parallel.
fn seeds(shard: u64) -> Vec<u64> {
    if let Some(seed) = std::env::var("USTACK_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return if seed % SHARDS == shard {
            vec![seed]
        } else {
            Vec::new()
        };
    }
    let count: u64 = std::env::var("USTACK_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    (0..count).filter(|s| s % SHARDS == shard).collect()
}

const SHARDS: u64 = 4;

fn run_shard(shard: u64) {
    let seeds = seeds(shard);
    let failures: Vec<String> = seeds.iter().filter_map(|&s| run_seed(s).err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} runs failed:\n{}",
        failures.len(),
        seeds.len(),
        failures.join("\n")
    );
}

#[test]
fn bulk_transfer_both_ways_under_faults_shard_0() {
    run_shard(0);
}

#[test]
fn bulk_transfer_both_ways_under_faults_shard_1() {
    run_shard(1);
}

#[test]
fn bulk_transfer_both_ways_under_faults_shard_2() {
    run_shard(2);
}

#[test]
fn bulk_transfer_both_ways_under_faults_shard_3() {
    run_shard(3);
}

#[test]
fn clean_link_needs_no_retransmission() {
    for seed in [0, 10, 20] {
        let outcome = run_seed(seed).unwrap();
        assert_eq!(outcome.client_retransmits, 0, "seed {seed}: {outcome:?}");
        assert_eq!(outcome.server_retransmits, 0, "seed {seed}: {outcome:?}");
    }
}

/// Engine throughput in wall-clock time (no assertion on speed): 64 MiB each way over a clean,
/// zero-delay link. Run with `cargo test --release -p ustack --test tcp_simulation --
/// --ignored --nocapture`.
#[test]
#[ignore]
fn engine_throughput_clean_link() {
    let bytes = 64 << 20;
    let link = LinkProfile::clean(0);
    let mut sim = Sim::new(1, config(0), link, link, bytes);
    let start = std::time::Instant::now();
    let outcome = sim.run(Duration::from_secs(3600)).unwrap();
    let wall = start.elapsed();
    let gbits = (2 * bytes * 8) as f64 / wall.as_secs_f64() / 1e9;
    println!(
        "{} MiB each way in {wall:?} wall ({gbits:.2} Gbit/s total), {:?} virtual, {} packets",
        bytes >> 20,
        outcome.virtual_time,
        outcome.packets
    );
}
