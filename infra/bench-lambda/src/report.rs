//! The one table the bench prints (markdown, so it pastes into docs/bench-lambda.md as is),
//! the machine it ran on, and the budget checks. A budget over is printed as `OVER`, it is a
//! measurement, not a failure; a row that failed is `FAILED` with its reason below.

use std::fmt::Write as _;
use std::time::Duration;

use crate::functions::Kind;
use crate::measure::{Backend, Measured, Row};

pub const INIT_BUDGET_MS: f64 = 10.0;
pub const RSS_BUDGET_MB: f64 = 16.0;
pub const WEBHOOK_STUB_P50_BUDGET_MS: f64 = 1.0;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// MiB, as Lambda's memory sizes are.
#[expect(clippy::cast_precision_loss, reason = "KiB of one process")]
fn mb(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Which budgets a row is over.
#[must_use]
pub fn over(row: &Row, measured: &Measured) -> Vec<String> {
    let mut over = Vec::new();
    let init = ms(measured.init);
    if init > INIT_BUDGET_MS {
        over.push(format!("init {init:.1} > {INIT_BUDGET_MS} ms"));
    }
    if let Some(rss) = measured.peak_rss_kib.map(mb)
        && rss > RSS_BUDGET_MB
    {
        over.push(format!("RSS {rss:.1} > {RSS_BUDGET_MB} MB"));
    }
    if row.function.kind == Kind::Webhook && row.backend == Backend::Stub {
        let p50 = ms(measured.warm_p50);
        if p50 > WEBHOOK_STUB_P50_BUDGET_MS {
            over.push(format!("p50 {p50:.2} > {WEBHOOK_STUB_P50_BUDGET_MS} ms"));
        }
    }
    over
}

/// `1234567` as `1,234,567`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The table, the budgets footer and the failures, as printed.
#[must_use]
pub fn render(rows: &[Row], header: &[String]) -> String {
    let mut out = String::new();
    for line in header {
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| function | backend | invocation | init ms | cold ms | warm p50 ms | warm p99 ms | peak RSS MB | binary bytes | budgets |"
    );
    let _ = writeln!(out, "|---|---|---|--:|--:|--:|--:|--:|--:|---|");
    let mut failures = Vec::new();
    let mut overs = Vec::new();
    for row in rows {
        let size = row.binary_bytes.map_or_else(|| "—".into(), grouped);
        let name = row.function.name;
        let backend = row.backend.name();
        let invocation = row.function.invocation;
        match &row.outcome {
            Ok(m) => {
                let over = over(row, m);
                let budgets = if over.is_empty() {
                    "ok".to_string()
                } else {
                    overs.push(format!("{name}/{backend}: {}", over.join(", ")));
                    format!("OVER: {}", over.join(", "))
                };
                let rss = m
                    .peak_rss_kib
                    .map_or_else(|| "—".into(), |k| format!("{:.1}", mb(k)));
                let _ = writeln!(
                    out,
                    "| {name} | {backend} | {invocation} | {:.2} | {:.2} | {:.3} | {:.3} | {rss} | {size} | {budgets} |",
                    ms(m.init),
                    ms(m.cold),
                    ms(m.warm_p50),
                    ms(m.warm_p99),
                );
            }
            Err(reason) => {
                failures.push(format!("{name}/{backend}: {reason}"));
                let _ = writeln!(
                    out,
                    "| {name} | {backend} | {invocation} | — | — | — | — | — | {size} | FAILED |"
                );
            }
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Budgets: init ≤ {INIT_BUDGET_MS} ms and peak RSS ≤ {RSS_BUDGET_MB} MB on every row; webhook warm p50 against the stub ≤ {WEBHOOK_STUB_P50_BUDGET_MS} ms."
    );
    if rows.iter().all(|r| r.outcome.is_err()) {
        let _ = writeln!(out, "No row was measured.");
    } else if overs.is_empty() {
        let _ = writeln!(out, "All measured rows are within budget.");
    } else {
        for line in &overs {
            let _ = writeln!(out, "OVER {line}");
        }
    }
    let measured: Vec<(&Row, &Measured)> = rows
        .iter()
        .filter_map(|r| r.outcome.as_ref().ok().map(|m| (r, m)))
        .collect();
    if !measured.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "Init of each fresh process (ms, sorted), and the share of the function's core other processes used during the warm invocations:"
        );
        for (row, m) in measured {
            let inits: Vec<String> = m.inits.iter().map(|d| format!("{:.2}", ms(*d))).collect();
            let others = m
                .others_on_core
                .map_or_else(|| "not measured".into(), |f| format!("{:.0}%", f * 100.0));
            let _ = writeln!(
                out,
                "- {}/{}: init {}; others on the core {others}",
                row.function.name,
                row.backend.name(),
                inits.join(" ")
            );
        }
    }
    let stub_rows: Vec<&Row> = rows.iter().filter(|r| r.stub_calls.is_some()).collect();
    if !stub_rows.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "Stub calls per row (every start's init and cold invocation, and the warm ones):"
        );
        for row in stub_rows {
            let calls = row.stub_calls.as_ref().map_or_else(String::new, |calls| {
                calls
                    .iter()
                    .map(|(op, n)| format!("{op} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            });
            let _ = writeln!(
                out,
                "- {}: {}",
                row.function.name,
                if calls.is_empty() { "none" } else { &calls }
            );
        }
    }
    if !failures.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "FAILED rows:");
        for failure in failures {
            let _ = writeln!(out, "- {failure}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_grouped_by_thousands() {
        assert_eq!(grouped(7), "7");
        assert_eq!(grouped(1_000), "1,000");
        assert_eq!(grouped(12_345_678), "12,345,678");
    }
}
