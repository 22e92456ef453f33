//! What the benchmark reads from Redis `INFO`: command counts and memory.

use std::collections::HashMap;

/// Calls of one command and the microseconds Redis spent in them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommandStat {
    pub calls: u64,
    pub usec: u64,
}

/// `INFO commandstats` → command name → calls and time.
pub fn parse_commandstats(info: &str) -> HashMap<String, CommandStat> {
    info.lines()
        .filter_map(|line| {
            let (name, fields) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let field = |key: &str| -> Option<u64> {
                fields
                    .split(',')
                    .find_map(|f| f.strip_prefix(key))?
                    .parse()
                    .ok()
            };
            let stat = CommandStat {
                calls: field("calls=")?,
                usec: field("usec=")?,
            };
            Some((name.trim().to_owned(), stat))
        })
        .collect()
}

/// A `field:value` line of `INFO` as a number.
pub fn info_field(info: &str, field: &str) -> Option<u64> {
    info.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
}

/// `used_cpu_user` + `used_cpu_sys` of `INFO cpu`: the seconds of CPU the server used.
pub fn cpu_seconds(info: &str) -> Option<f64> {
    let field = |name: &str| -> Option<f64> {
        info.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse().ok())
    };
    Some(field("used_cpu_user")? + field("used_cpu_sys")?)
}

/// Calls made between two `INFO commandstats` snapshots.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommandDelta {
    /// Every command, those run inside scripts included.
    pub total: u64,
    /// `EVALSHA` and `EVAL` calls: script invocations.
    pub scripts: u64,
    /// Microseconds Redis spent running scripts (the commands inside included).
    pub script_usec: u64,
}

pub fn command_delta(
    before: &HashMap<String, CommandStat>,
    after: &HashMap<String, CommandStat>,
) -> CommandDelta {
    let mut delta = CommandDelta::default();
    for (name, stat) in after {
        // The INFO calls of the benchmark itself are not the workload's.
        if name == "info" {
            continue;
        }
        let old = before.get(name).copied().unwrap_or_default();
        let calls = stat.calls.saturating_sub(old.calls);
        delta.total += calls;
        if name == "evalsha" || name == "eval" {
            delta.scripts += calls;
            delta.script_usec += stat.usec.saturating_sub(old.usec);
        }
    }
    delta
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "# Commandstats\r\ncmdstat_evalsha:calls=10,usec=5,usec_per_call=0.5,rejected_calls=0,failed_calls=0\r\ncmdstat_hset:calls=30,usec=9\r\ncmdstat_info:calls=2,usec=1\r\n";

    #[test]
    fn commandstats_are_parsed_and_differenced() {
        let after = parse_commandstats(SAMPLE);
        assert_eq!(
            after.get("evalsha"),
            Some(&CommandStat { calls: 10, usec: 5 })
        );
        assert_eq!(after.get("hset").map(|s| s.calls), Some(30));
        let before: HashMap<String, CommandStat> = [
            ("evalsha".to_owned(), CommandStat { calls: 4, usec: 2 }),
            ("hset".to_owned(), CommandStat { calls: 10, usec: 1 }),
        ]
        .into();
        assert_eq!(
            command_delta(&before, &after),
            CommandDelta {
                total: 26,
                scripts: 6,
                script_usec: 3
            }
        );
    }

    #[test]
    fn info_fields_are_read_as_numbers() {
        let info = "# Memory\r\nused_memory:1024\r\nused_memory_human:1K\r\n";
        assert_eq!(info_field(info, "used_memory"), Some(1024));
        assert_eq!(info_field(info, "missing"), None);
    }
}
