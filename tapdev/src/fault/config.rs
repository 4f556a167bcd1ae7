//! Fault configuration: what each direction suffers, and the `key=value` syntax of the
//! command-line flag.

use std::str::FromStr;
use std::time::Duration;

/// The faults applied in one direction. The default is no fault at all.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Faults {
    /// Probability of dropping a frame, in `[0, 1]`.
    pub drop: f64,
    /// Probability of sending a frame twice.
    pub duplicate: f64,
    /// Probability of holding a frame back behind the next one.
    pub reorder: f64,
    /// How long a held-back frame waits for a successor before it is released anyway.
    pub reorder_hold: Duration,
    /// Probability of flipping one bit past the Ethernet header.
    pub corrupt: f64,
    /// Fixed one-way delay.
    pub delay: Duration,
    /// Upper bound of the uniform random delay added to `delay`.
    pub jitter: Duration,
    /// Bottleneck rate in bytes per second; `None` for no limit.
    pub rate: Option<u64>,
    /// Backlog the bottleneck holds before dropping, in bytes.
    pub queue_bytes: usize,
}

impl Faults {
    /// No faults: frames pass straight through.
    pub const NONE: Faults = Faults {
        drop: 0.0,
        duplicate: 0.0,
        reorder: 0.0,
        reorder_hold: Duration::from_millis(10),
        corrupt: 0.0,
        delay: Duration::ZERO,
        jitter: Duration::ZERO,
        rate: None,
        queue_bytes: 64 * 1024,
    };

    /// True if any fault can happen; an inactive direction is a pass-through.
    pub fn is_active(&self) -> bool {
        self.drop > 0.0
            || self.duplicate > 0.0
            || self.reorder > 0.0
            || self.corrupt > 0.0
            || !self.delay.is_zero()
            || !self.jitter.is_zero()
            || self.rate.is_some()
    }

    /// Checks every value is usable; the message names the offending field.
    pub fn validate(&self) -> Result<(), String> {
        for (name, p) in [
            ("drop", self.drop),
            ("duplicate", self.duplicate),
            ("reorder", self.reorder),
            ("corrupt", self.corrupt),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("{name}: {p} is not a probability between 0 and 1"));
            }
        }
        if self.rate == Some(0) {
            return Err("rate: must be above 0 (use None for no limit)".to_string());
        }
        if self.rate.is_some() && self.queue_bytes == 0 {
            return Err("queue: must be above 0 bytes".to_string());
        }
        Ok(())
    }
}

impl Default for Faults {
    fn default() -> Faults {
        Faults::NONE
    }
}

/// Faults for both directions and the seed of their random choices.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FaultConfig {
    pub seed: u64,
    /// Applied to frames the wrapped device is asked to send.
    pub tx: Faults,
    /// Applied to frames received from the wrapped device.
    pub rx: Faults,
}

impl FaultConfig {
    /// The same faults in both directions.
    pub fn both(seed: u64, faults: Faults) -> FaultConfig {
        FaultConfig {
            seed,
            tx: faults,
            rx: faults,
        }
    }

    /// Checks both directions; the message names the direction and field.
    pub fn validate(&self) -> Result<(), String> {
        self.tx.validate().map_err(|e| format!("tx.{e}"))?;
        self.rx.validate().map_err(|e| format!("rx.{e}"))
    }
}

/// Parses comma-separated `key=value` items, e.g.
/// `seed=1,drop=0.01,dup=0.001,reorder=0.01,corrupt=0.001,delay=5ms,jitter=1ms,rate=100mbit`.
///
/// Keys apply to both directions unless prefixed with `tx.` or `rx.` (`tx.drop=0.05`); later
/// items override earlier ones. Keys: `seed` (u64, both directions only), `drop`, `dup` (or
/// `duplicate`), `reorder`, `corrupt` (probabilities: `0.01` or `1%`), `reorder_hold`,
/// `delay`, `jitter` (durations with a unit: `ns`, `us`, `ms`, `s`; bare `0` allowed), `rate`
/// (`bit`, `kbit`, `mbit`, `gbit` per second, or `bps`, `kbps`, `mbps`, `gbps` for bytes per
/// second as `tc` spells them, SI multiples; `off` for none), `queue` (bytes, suffix `k` or
/// `m` for KiB/MiB).
impl FromStr for FaultConfig {
    type Err = String;

    fn from_str(text: &str) -> Result<FaultConfig, String> {
        let mut config = FaultConfig::default();
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let Some((key, value)) = item.split_once('=') else {
                return Err(format!("fault option `{item}`: expected key=value"));
            };
            let (key, value) = (key.trim(), value.trim());
            let (targets_tx, targets_rx, field) = if let Some(field) = key.strip_prefix("tx.") {
                (true, false, field)
            } else if let Some(field) = key.strip_prefix("rx.") {
                (false, true, field)
            } else {
                (true, true, key)
            };
            let fail = |why: String| format!("fault option `{key}`: {why}");
            if field == "seed" {
                if !(targets_tx && targets_rx) {
                    return Err(fail("the seed applies to both directions".to_string()));
                }
                config.seed = value
                    .parse()
                    .map_err(|_| fail(format!("`{value}` is not an unsigned integer")))?;
                continue;
            }
            let setting = Setting::parse(field, value).map_err(fail)?;
            if targets_tx {
                setting.apply(&mut config.tx);
            }
            if targets_rx {
                setting.apply(&mut config.rx);
            }
        }
        Ok(config)
    }
}

/// One parsed `key=value` for a direction.
enum Setting {
    Drop(f64),
    Duplicate(f64),
    Reorder(f64),
    ReorderHold(Duration),
    Corrupt(f64),
    Delay(Duration),
    Jitter(Duration),
    Rate(Option<u64>),
    Queue(usize),
}

impl Setting {
    fn parse(field: &str, value: &str) -> Result<Setting, String> {
        Ok(match field {
            "drop" => Setting::Drop(parse_probability(value)?),
            "dup" | "duplicate" => Setting::Duplicate(parse_probability(value)?),
            "reorder" => Setting::Reorder(parse_probability(value)?),
            "reorder_hold" => Setting::ReorderHold(parse_duration(value)?),
            "corrupt" => Setting::Corrupt(parse_probability(value)?),
            "delay" => Setting::Delay(parse_duration(value)?),
            "jitter" => Setting::Jitter(parse_duration(value)?),
            "rate" => Setting::Rate(parse_rate(value)?),
            "queue" => Setting::Queue(parse_bytes(value)?),
            _ => {
                return Err(
                    "unknown key (known: seed, drop, dup, reorder, reorder_hold, \
                            corrupt, delay, jitter, rate, queue; prefix tx. or rx. for one \
                            direction)"
                        .to_string(),
                )
            }
        })
    }

    fn apply(&self, faults: &mut Faults) {
        match *self {
            Setting::Drop(p) => faults.drop = p,
            Setting::Duplicate(p) => faults.duplicate = p,
            Setting::Reorder(p) => faults.reorder = p,
            Setting::ReorderHold(d) => faults.reorder_hold = d,
            Setting::Corrupt(p) => faults.corrupt = p,
            Setting::Delay(d) => faults.delay = d,
            Setting::Jitter(d) => faults.jitter = d,
            Setting::Rate(r) => faults.rate = r,
            Setting::Queue(q) => faults.queue_bytes = q,
        }
    }
}

/// `0.01` or `1%`, within `[0, 1]`.
fn parse_probability(value: &str) -> Result<f64, String> {
    let (number, scale) = match value.strip_suffix('%') {
        Some(number) => (number, 0.01),
        None => (value, 1.0),
    };
    let p = number
        .parse::<f64>()
        .ok()
        .map(|p| p * scale)
        .filter(|p| (0.0..=1.0).contains(p));
    p.ok_or_else(|| format!("`{value}` is not a probability between 0 and 1"))
}

/// Splits `"1.5ms"` into `1.5` and `"ms"`.
fn split_number(value: &str) -> Result<(f64, &str), String> {
    let end = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(end);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("`{value}` does not start with a number"))?;
    Ok((number, unit))
}

fn parse_duration(value: &str) -> Result<Duration, String> {
    let (number, unit) = split_number(value)?;
    let nanos_per_unit = match unit {
        "ns" => 1.0,
        "us" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "" if number == 0.0 => 0.0,
        "" => return Err(format!("`{value}` needs a unit (ns, us, ms, s)")),
        _ => return Err(format!("`{value}`: unknown unit `{unit}` (ns, us, ms, s)")),
    };
    let nanos = (number * nanos_per_unit).round();
    if !(0.0..=u64::MAX as f64).contains(&nanos) {
        return Err(format!("`{value}` is out of range"));
    }
    Ok(Duration::from_nanos(nanos as u64))
}

/// Bytes per second, `None` for `off`/`none`.
fn parse_rate(value: &str) -> Result<Option<u64>, String> {
    if value == "off" || value == "none" {
        return Ok(None);
    }
    let (number, unit) = split_number(value)?;
    let bytes_per_unit = match unit.to_ascii_lowercase().as_str() {
        "bit" => 1.0 / 8.0,
        "kbit" => 1e3 / 8.0,
        "mbit" => 1e6 / 8.0,
        "gbit" => 1e9 / 8.0,
        "bps" => 1.0,
        "kbps" => 1e3,
        "mbps" => 1e6,
        "gbps" => 1e9,
        _ => {
            return Err(format!(
                "`{value}` needs a unit (bit, kbit, mbit, gbit or bps, kbps, mbps, gbps)"
            ))
        }
    };
    let bytes = (number * bytes_per_unit).round();
    if !(1.0..=u64::MAX as f64).contains(&bytes) {
        return Err(format!("`{value}` must be at least 1 byte per second"));
    }
    Ok(Some(bytes as u64))
}

/// Bytes with an optional `k` (KiB) or `m` (MiB) suffix, above zero.
fn parse_bytes(value: &str) -> Result<usize, String> {
    let (number, multiplier) = match value.as_bytes().last() {
        Some(b'k' | b'K') => (&value[..value.len() - 1], 1024),
        Some(b'm' | b'M') => (&value[..value.len() - 1], 1024 * 1024),
        _ => (value, 1),
    };
    number
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("`{value}` is not a positive byte count (e.g. 65536, 64k, 1m)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example_for_both_directions() {
        let config: FaultConfig =
            "seed=1,drop=0.01,dup=0.001,reorder=0.01,corrupt=0.001,delay=5ms,jitter=1ms,rate=100mbit"
                .parse()
                .unwrap();
        let expected = Faults {
            drop: 0.01,
            duplicate: 0.001,
            reorder: 0.01,
            corrupt: 0.001,
            delay: Duration::from_millis(5),
            jitter: Duration::from_millis(1),
            rate: Some(12_500_000),
            ..Faults::NONE
        };
        assert_eq!(config, FaultConfig::both(1, expected));
        config.validate().unwrap();
    }

    #[test]
    fn prefixes_target_one_direction_and_later_items_win() {
        let config: FaultConfig = " drop=0.1 , tx.drop=5%, rx.delay=1.5ms, rx.queue=64k, \
                                   tx.rate=1000bps, rx.reorder_hold=250us, tx.rate=off"
            .parse()
            .unwrap();
        assert_eq!(config.tx.drop, 0.05);
        assert_eq!(config.rx.drop, 0.1);
        assert_eq!(config.rx.delay, Duration::from_micros(1500));
        assert_eq!(config.tx.delay, Duration::ZERO);
        assert_eq!(config.rx.queue_bytes, 65536);
        assert_eq!(config.tx.rate, None);
        assert_eq!(config.rx.reorder_hold, Duration::from_micros(250));
        assert_eq!(config.seed, 0);
        assert_eq!("".parse::<FaultConfig>().unwrap(), FaultConfig::default());
        assert!(!FaultConfig::default().tx.is_active());
    }

    #[test]
    fn rate_units_follow_tc() {
        let rate = |text: &str| parse_rate(text).unwrap();
        assert_eq!(rate("8bit"), Some(1));
        assert_eq!(rate("1gbit"), Some(125_000_000));
        assert_eq!(rate("500kbit"), Some(62_500));
        assert_eq!(rate("2mbps"), Some(2_000_000));
        assert_eq!(rate("1.5Mbit"), Some(187_500));
    }

    #[test]
    fn errors_name_the_key_on_one_line() {
        for (text, key) in [
            ("drop=1.5", "`drop`"),
            ("tx.dup=x", "`tx.dup`"),
            ("bogus=1", "`bogus`"),
            ("rx.seed=3", "`rx.seed`"),
            ("delay=5", "`delay`"),
            ("delay=5 parsecs", "`delay`"),
            ("rate=0bit", "`rate`"),
            ("rate=fast", "`rate`"),
            ("queue=0", "`queue`"),
            ("seed=-1", "`seed`"),
            ("rx.jitter=-1ms", "`rx.jitter`"),
        ] {
            let err = text.parse::<FaultConfig>().unwrap_err();
            assert!(err.contains(key), "{text}: {err}");
            assert!(!err.contains('\n'), "{text}: {err}");
        }
        let err = "drop".parse::<FaultConfig>().unwrap_err();
        assert!(err.contains("key=value"), "{err}");
    }

    #[test]
    fn validate_rejects_what_the_parser_would() {
        let mut config = FaultConfig::default();
        config.rx.corrupt = 2.0;
        assert!(config.validate().unwrap_err().starts_with("rx.corrupt"));
        config.rx.corrupt = 0.0;
        config.tx.rate = Some(0);
        assert!(config.validate().unwrap_err().starts_with("tx.rate"));
        config.tx.drop = f64::NAN;
        assert!(config.validate().is_err());
    }
}
