//! Stats answers: Docker's stats JSON of a container (one sample), and in v4
//! `network_rate_stats` as the ECS agent computes it: bytes received and sent (summed over
//! the container's interfaces) since the previous sample of the same container, per
//! second between the two samples' `read` times. The first sample of a container has no
//! previous one, so it has no rates (ECS leaves the key out then too), nor does one
//! without network counters (host mode, no network).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// The most containers whose last sample is kept; beyond it the oldest samples go.
const MAX_KEPT: usize = 10_000;

/// A container's network counters at one sample.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Counters {
    read: DateTime<Utc>,
    rx: u64,
    tx: u64,
}

/// The last sample of each container asked for, by Docker id: what the next sample's
/// rates are computed against.
#[derive(Debug, Default)]
pub struct NetworkRates {
    last: Mutex<HashMap<String, Counters>>,
}

impl NetworkRates {
    /// Add `network_rate_stats` to `sample` of container `docker_id` when an earlier sample
    /// of it allows, and keep this one for the next.
    pub fn add_rates(&self, docker_id: &str, sample: &mut Value) {
        let Some(now) = counters(sample) else { return };
        let previous = {
            let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
            if last.len() >= MAX_KEPT && !last.contains_key(docker_id) {
                let oldest = last.iter().min_by_key(|(_, c)| c.read).map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    last.remove(&oldest);
                }
            }
            last.insert(docker_id.to_string(), now)
        };
        let Some(previous) = previous else { return };
        let nanos = (now.read - previous.read).num_nanoseconds().unwrap_or(0);
        if nanos <= 0 {
            return;
        }
        let per_sec = |now: u64, before: u64| now.saturating_sub(before) as f64 * 1e9 / nanos as f64;
        if let Value::Object(map) = sample {
            map.insert(
                "network_rate_stats".into(),
                json!({"rx_bytes_per_sec": per_sec(now.rx, previous.rx), "tx_bytes_per_sec": per_sec(now.tx, previous.tx)}),
            );
        }
    }
}

/// The sample's read time and its network counters summed over interfaces; `None` when it
/// has no networks or no readable time.
fn counters(sample: &Value) -> Option<Counters> {
    let read = sample.get("read")?.as_str()?;
    let read = DateTime::parse_from_rfc3339(read).ok()?.with_timezone(&Utc);
    let networks: &Map<String, Value> = sample.get("networks")?.as_object()?;
    if networks.is_empty() {
        return None;
    }
    let sum = |key: &str| networks.values().filter_map(|n| n.get(key)?.as_u64()).fold(0u64, u64::saturating_add);
    Some(Counters { read, rx: sum("rx_bytes"), tx: sum("tx_bytes") })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(read: &str, rx: u64, tx: u64) -> Value {
        json!({"read": read, "networks": {"eth0": {"rx_bytes": rx / 2, "tx_bytes": tx}, "eth1": {"rx_bytes": rx - rx / 2, "tx_bytes": 0}}})
    }

    #[test]
    fn rates_are_bytes_since_the_previous_sample_per_second_of_read_time() {
        let rates = NetworkRates::default();
        let mut first = sample("2026-01-01T00:00:00Z", 1000, 400);
        rates.add_rates("a", &mut first);
        assert!(first.get("network_rate_stats").is_none(), "no previous sample");
        let mut second = sample("2026-01-01T00:00:02.000000000Z", 5000, 1400);
        rates.add_rates("a", &mut second);
        assert_eq!(second["network_rate_stats"], json!({"rx_bytes_per_sec": 2000.0, "tx_bytes_per_sec": 500.0}));
        let mut other = sample("2026-01-01T00:00:03Z", 10, 10);
        rates.add_rates("b", &mut other);
        assert!(other.get("network_rate_stats").is_none(), "samples are per container");
    }

    #[test]
    fn no_rates_without_networks_or_for_a_sample_not_later() {
        let rates = NetworkRates::default();
        let mut host = json!({"read": "2026-01-01T00:00:00Z"});
        rates.add_rates("h", &mut host);
        rates.add_rates("h", &mut host);
        assert!(host.get("network_rate_stats").is_none());
        let mut a = sample("2026-01-01T00:00:05Z", 10, 10);
        rates.add_rates("a", &mut a);
        let mut same = sample("2026-01-01T00:00:05Z", 20, 20);
        rates.add_rates("a", &mut same);
        assert!(same.get("network_rate_stats").is_none());
    }
}
