//! Loss recovery over a fast, lossy path (what the TAP benchmark sees: about 100 µs RTT,
//! gigabits per second, random loss both ways): one-way bulk transfers over a seeded link in
//! virtual time, counting the sender's retransmission timeouts. Each RTO costs at least
//! 200 ms (thousands of RTTs here) and collapses cwnd to one segment, so the property checked
//! is that loss is repaired by fast recovery and loss probes, with RTOs rare.

mod tcp_sim;

use std::time::Duration;

use tcp_sim::{AckHold, LinkProfile, Outcome, Sim};
use ustack::tcp::config::TcpConfig;

/// A sub-millisecond path at about 2.4 Gbit/s with `loss` in each direction.
fn fast_lossy(loss: f64) -> LinkProfile {
    LinkProfile {
        loss,
        delay: Duration::from_micros(50),
        rate: 300_000_000,
        max_queue: Duration::from_millis(2),
        ..LinkProfile::clean(0)
    }
}

/// `bytes` from client to server (nothing back), data over `forward`, ACKs over `reverse`.
fn one_way(seed: u64, bytes: u64, forward: LinkProfile, reverse: LinkProfile) -> Outcome {
    one_way_with(seed, bytes, forward, reverse, None)
}

fn one_way_with(
    seed: u64,
    bytes: u64,
    forward: LinkProfile,
    reverse: LinkProfile,
    hold: Option<AckHold>,
) -> Outcome {
    let cfg = TcpConfig {
        time_wait: Duration::from_secs(1),
        ..TcpConfig::default()
    };
    let mut sim = Sim::new(seed, cfg, forward, reverse, bytes);
    sim.server_app.to_send = 0;
    sim.client_app.expected = 0;
    if let Some(hold) = hold {
        sim.hold_server_acks(hold, seed);
    }
    sim.run(Duration::from_secs(3600))
        .unwrap_or_else(|e| panic!("seed {seed}: {e}"))
}

fn report(name: &str, outcomes: &[Outcome], bytes: u64) {
    for (seed, o) in outcomes.iter().enumerate() {
        let secs = o
            .client_data_delivered
            .map_or(f64::NAN, |d| d.as_secs_f64());
        println!(
            "{name} seed {seed}: {:.3} s ({:.2} Gbit/s), timeouts {}, probes {}, recoveries {}, retransmits {}, ack holds {}",
            secs,
            bytes as f64 * 8.0 / secs / 1e9,
            o.client_counters.timeouts,
            o.client_counters.loss_probes,
            o.client_counters.fast_recoveries,
            o.client_counters.retransmits,
            o.ack_holds,
        );
    }
}

#[test]
fn one_percent_loss_both_ways_is_repaired_without_timeouts() {
    let bytes = 20 << 20;
    let outcomes: Vec<Outcome> = (0..4)
        .map(|seed| one_way(seed, bytes, fast_lossy(0.01), fast_lossy(0.01)))
        .collect();
    report("1%/1%", &outcomes, bytes);
    let timeouts: u64 = outcomes.iter().map(|o| o.client_counters.timeouts).sum();
    let recoveries: u64 = outcomes
        .iter()
        .map(|o| o.client_counters.fast_recoveries)
        .sum();
    // About 145 losses in 14,500 segments per run: all repaired by fast recovery.
    assert!(recoveries > 400, "{recoveries} fast recoveries");
    assert!(timeouts <= 2, "{timeouts} RTOs in 4 runs of 20 MB");
}

#[test]
fn receiver_holding_its_acks_costs_probes_not_timeouts() {
    // A Linux-like receiver (see `AckHold`) with 1% loss both ways: a hold of 40 ms would
    // stall a flight until the delayed ACK, or until the RTO when it falls in recovery. The
    // probes (a new-data probe, then the last segment again; in recovery the segment at
    // SND.UNA) draw the ACK with a duplicate within a few PTOs.
    let bytes = 20 << 20;
    let hold = AckHold {
        probability: 0.01,
        hold: Duration::from_millis(40),
    };
    let outcomes: Vec<Outcome> = (0..4)
        .map(|seed| one_way_with(seed, bytes, fast_lossy(0.01), fast_lossy(0.01), Some(hold)))
        .collect();
    report("1%/1% + holds", &outcomes, bytes);
    let holds: u64 = outcomes.iter().map(|o| o.ack_holds).sum();
    let timeouts: u64 = outcomes.iter().map(|o| o.client_counters.timeouts).sum();
    let probes: u64 = outcomes.iter().map(|o| o.client_counters.loss_probes).sum();
    let slowest = outcomes
        .iter()
        .filter_map(|o| o.client_data_delivered)
        .max()
        .unwrap_or(Duration::MAX);
    assert!(holds >= 40, "the receiver held its ACKs {holds} times");
    assert!(probes >= holds / 2, "{probes} probes for {holds} holds");
    assert!(timeouts <= 2, "{timeouts} RTOs in 4 runs of 20 MB");
    // Each hold costs a few ms (two PTOs of about 2*SRTT + 2 ms), or an RTO where the ACK
    // that a probe drew was lost too; a run takes 0.4-0.7 s. Without the probes each hold
    // costs its 40 ms: 1.9-2.1 s a run (0.1 s with no holds at all).
    assert!(slowest < Duration::from_secs(1), "slowest run {slowest:?}");
}
