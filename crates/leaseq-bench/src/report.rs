//! The benchmark's tables: plain text for the terminal, Markdown for docs/benchmarks.md.

use std::fmt::Write;

use crate::bench::{Results, SCRAPES, ThroughputResult};
use crate::workload::Latency;

/// The targets of the benchmark issue, checked against the results.
pub struct Check {
    pub what: String,
    pub target: String,
    pub measured: String,
    pub met: bool,
}

fn ratio(results: &Results, batch: usize) -> Option<(f64, &ThroughputResult, &ThroughputResult)> {
    let find = |name: &str| {
        results
            .throughput
            .iter()
            .find(|t| t.batch == batch && t.target == name)
    };
    let (raw, http) = (find("raw-redis")?, find("http")?);
    Some((
        http.median.msgs_per_sec / raw.median.msgs_per_sec,
        raw,
        http,
    ))
}

pub fn checks(results: &Results) -> Vec<Check> {
    let mut out = Vec::new();
    for (batch, floor) in [(100, 0.6), (1, 0.5)] {
        if let Some((r, raw, http)) = ratio(results, batch) {
            out.push(Check {
                what: format!("end-to-end throughput at B={batch}, HTTP / raw-redis"),
                target: format!(">= {floor}"),
                measured: format!(
                    "{r:.2} ({:.0} / {:.0} msg/s)",
                    http.median.msgs_per_sec, raw.median.msgs_per_sec
                ),
                met: r >= floor,
            });
        }
    }
    if let (Some(small), Some(large)) = (results.backlog.first(), results.backlog.last())
        && results.backlog.len() > 1
    {
        let r = large.pull.p99_us as f64 / small.pull.p99_us.max(1) as f64;
        out.push(Check {
            what: format!(
                "pull p99 at {} backlog / at {}",
                large.backlog, small.backlog
            ),
            target: "<= 1.3".into(),
            measured: format!(
                "{r:.2} ({} µs / {} µs)",
                large.pull.p99_us, small.pull.p99_us
            ),
            met: r <= 1.3,
        });
    }
    if let Some(m) = &results.memory {
        out.push(Check {
            what: format!(
                "Redis memory above the body, per queued {} B message",
                m.body_bytes
            ),
            target: "<= 300 B".into(),
            measured: format!("{:.0} B", m.overhead_per_message),
            met: m.overhead_per_message <= 300.0,
        });
    }
    if let Some(s) = &results.scrape {
        // 250 ms at 10 000 queues; past that, Prometheus's default 10 s scrape timeout.
        let limit_ms = if s.queues <= 10_000 { 250.0 } else { 10_000.0 };
        out.push(Check {
            what: format!(
                "GET /metrics with {} queues (median of {SCRAPES} scrapes; Redis reads alone {:.0} ms)",
                s.queues, s.read_median_ms
            ),
            target: format!("<= {limit_ms:.0} ms"),
            measured: format!("{:.0} ms ({} kB)", s.median_ms, s.bytes / 1024),
            met: s.median_ms <= limit_ms,
        });
        if s.rss_after_kb > 0 && s.queues <= 10_000 {
            out.push(Check {
                what: format!(
                    "RSS of the process holding the broker after {SCRAPES} scrapes of {} queues",
                    s.queues
                ),
                target: "<= 64 MB".into(),
                measured: format!(
                    "{:.0} MB (before the queues: {:.0} MB)",
                    s.rss_after_kb as f64 / 1024.0,
                    s.rss_before_kb as f64 / 1024.0
                ),
                met: s.rss_after_kb <= 64 * 1024,
            });
        }
    }
    for t in results.throughput.iter().filter(|t| t.target == "http") {
        out.push(Check {
            what: format!("Redis script calls per API request (B={})", t.batch),
            target: "<= 1".into(),
            measured: format!("{:.3}", t.median.script_calls_per_request),
            met: t.median.script_calls_per_request <= 1.0 + 1e-9,
        });
    }
    out
}

fn lat(l: &Latency) -> String {
    format!("{} / {} / {}", l.p50_us, l.p99_us, l.p999_us)
}

fn ms(l: &Latency) -> String {
    format!(
        "{:.1} / {:.1}",
        l.p50_us as f64 / 1000.0,
        l.p99_us as f64 / 1000.0
    )
}

/// One line per throughput result: cells joined by `sep`, between `open` and `close`.
fn throughput_rows(results: &Results, sep: &str, open: &str, close: &str) -> String {
    let mut out = String::new();
    for t in &results.throughput {
        let m = &t.median;
        let ratio = ratio(results, t.batch)
            .filter(|_| t.target == "http")
            .map_or("".into(), |(r, _, _)| format!("{r:.2}"));
        let runs: Vec<String> = t
            .runs_msgs_per_sec
            .iter()
            .map(|r| format!("{r:.0}"))
            .collect();
        let cells = [
            t.target.to_string(),
            t.batch.to_string(),
            t.messages.to_string(),
            format!("{:.0}", m.msgs_per_sec),
            ratio,
            runs.join(", "),
            lat(&m.push),
            lat(&m.pull),
            lat(&m.ack),
            ms(&m.push_to_ack),
            format!("{:.1}", m.redis_commands_per_message),
            format!("{:.3}", m.script_calls_per_request),
            format!("{:.1}", m.redis_script_usec_per_message),
        ];
        let _ = writeln!(out, "{open}{}{close}", cells.join(sep));
    }
    out
}

const THROUGHPUT_HEADER: [&str; 13] = [
    "target",
    "B",
    "N",
    "msg/s (median)",
    "HTTP/raw",
    "runs (msg/s)",
    "push µs p50/p99/p999",
    "pull µs p50/p99/p999",
    "ack µs p50/p99/p999",
    "push→ack ms p50/p99",
    "Redis cmds/msg",
    "scripts/request",
    "Redis script µs/msg",
];

pub fn text(results: &Results) -> String {
    let mut out = String::new();
    if !results.throughput.is_empty() {
        let first = &results.throughput[0];
        let _ = writeln!(
            out,
            "\nThroughput (S={} B, P={}, C={})",
            first.size, first.producers, first.consumers
        );
        let _ = writeln!(out, "{}", THROUGHPUT_HEADER.join(" | "));
        out.push_str(&throughput_rows(results, " | ", "", ""));
    }
    if !results.backlog.is_empty() {
        let _ = writeln!(
            out,
            "\nPull latency under a backlog (µs, pull batch {})",
            results.backlog[0].pull_batch
        );
        for b in &results.backlog {
            let _ = writeln!(
                out,
                "  backlog {:>9}: p50 {} p99 {} p999 {} ({} pulls)",
                b.backlog, b.pull.p50_us, b.pull.p99_us, b.pull.p999_us, b.pull.count
            );
        }
    }
    if let Some(m) = &results.memory {
        let _ = writeln!(
            out,
            "\nRedis memory: {:.0} B per queued {} B message ({:.0} B overhead), {} messages",
            m.bytes_per_message, m.body_bytes, m.overhead_per_message, m.messages
        );
        for (key, bytes) in &m.by_key {
            let _ = writeln!(out, "  {key:<8} {bytes:>7.1} B/message");
        }
    }
    let checks = checks(results);
    if !checks.is_empty() {
        let _ = writeln!(out, "\nTargets");
        for c in checks {
            let _ = writeln!(
                out,
                "  [{}] {}: {} (target {})",
                if c.met { "met" } else { "MISSED" },
                c.what,
                c.measured,
                c.target
            );
        }
    }
    out
}

pub fn markdown(results: &Results) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Run of {}\n",
        humantime::format_rfc3339_seconds(std::time::SystemTime::now())
    );
    let _ = writeln!(out, "Command: `{}`\n", results.command);
    let checks = checks(results);
    if !checks.is_empty() {
        let _ = writeln!(
            out,
            "| target | wanted | measured | |\n| --- | --- | --- | --- |"
        );
        for c in checks {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                c.what,
                c.target,
                c.measured,
                if c.met { "met" } else { "**missed**" }
            );
        }
        out.push('\n');
    }
    if !results.throughput.is_empty() {
        let first = &results.throughput[0];
        let _ = writeln!(
            out,
            "### Throughput (S={} B, P={}, C={}; median of {} runs)\n",
            first.size,
            first.producers,
            first.consumers,
            first.runs_msgs_per_sec.len()
        );
        let _ = writeln!(out, "| {} |", THROUGHPUT_HEADER.join(" | "));
        let _ = writeln!(out, "|{}", " --- |".repeat(THROUGHPUT_HEADER.len()));
        out.push_str(&throughput_rows(results, " | ", "| ", " |"));
        out.push('\n');
    }
    if !results.backlog.is_empty() {
        let _ = writeln!(
            out,
            "### Pull latency under a backlog (HTTP, pull batch {})\n",
            results.backlog[0].pull_batch
        );
        let _ = writeln!(
            out,
            "| backlog | pulls | p50 µs | p99 µs | p999 µs |\n| --- | --- | --- | --- | --- |"
        );
        for b in &results.backlog {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                b.backlog, b.pull.count, b.pull.p50_us, b.pull.p99_us, b.pull.p999_us
            );
        }
        out.push('\n');
    }
    if let Some(m) = &results.memory {
        let _ = writeln!(
            out,
            "### Redis memory per queued message ({} messages of {} B)\n",
            m.messages, m.body_bytes
        );
        let _ = writeln!(
            out,
            "`used_memory` grew by {} B: {:.0} B per message, {:.0} B above the body.\n",
            m.used_memory_delta, m.bytes_per_message, m.overhead_per_message
        );
        let _ = writeln!(out, "| key | `MEMORY USAGE` per message |\n| --- | --- |");
        for (key, bytes) in &m.by_key {
            let _ = writeln!(out, "| `{key}` | {bytes:.1} B |");
        }
        out.push('\n');
    }
    out
}

pub const BEGIN: &str =
    "<!-- bench:begin (written by `make bench`; edit outside these markers) -->";
pub const END: &str = "<!-- bench:end -->";

/// `document` with the generated section between the markers replaced by `generated`
/// (appended, with markers, when the document has none).
pub fn replace_generated(document: &str, generated: &str) -> String {
    let section = format!("{BEGIN}\n{generated}{END}\n");
    match (document.find(BEGIN), document.find(END)) {
        (Some(start), Some(end)) if start < end => {
            format!(
                "{}{section}{}",
                &document[..start],
                document[end + END.len()..].trim_start_matches('\n')
            )
        }
        _ => format!(
            "{document}{}{section}",
            if document.is_empty() || document.ends_with('\n') {
                ""
            } else {
                "\n"
            }
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_section_is_replaced_and_the_rest_kept() {
        let first = replace_generated("# Title\nintro\n", "one\n");
        assert_eq!(first, format!("# Title\nintro\n{BEGIN}\none\n{END}\n"));
        let second = replace_generated(&format!("{first}outro\n"), "two\n");
        assert_eq!(
            second,
            format!("# Title\nintro\n{BEGIN}\ntwo\n{END}\noutro\n")
        );
    }
}
