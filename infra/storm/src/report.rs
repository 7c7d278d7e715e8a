//! The summary table `make storm` prints: what was sent, what was injected, how fast the
//! stack answered and fulfilled, and each invariant's verdict.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::checks::{Allowed, Check};

/// The `q` quantile (0..=1) of `samples`, nearest rank.
pub fn quantile(samples: &mut [Duration], q: f64) -> Option<Duration> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
    Some(samples[rank - 1])
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(
        || "-".into(),
        |d| format!("{:.1} ms", d.as_secs_f64() * 1000.0),
    )
}

/// The figures of one run.
pub struct Figures {
    pub seed: u64,
    pub carts: BTreeMap<&'static str, usize>,
    pub events: u64,
    pub copies: u64,
    pub refused: BTreeMap<u16, u64>,
    pub faults: BTreeMap<&'static str, u64>,
    pub webhook: Vec<Duration>,
    pub to_fulfilled: Vec<Duration>,
    pub orders: usize,
    pub fulfil_calls: usize,
    pub emails: BTreeMap<&'static str, usize>,
    pub redrives: u32,
    pub given_up_batches: usize,
    pub stack_starts: u32,
    pub kills: usize,
    pub elapsed: Duration,
    pub settle: Duration,
    /// moto's DynamoDB answer time, summed: it serves one request at a time.
    pub moto_busy: Duration,
}

pub fn render(f: &mut Figures, checks: &[Check], allowed: &Allowed) -> String {
    let mut out = String::new();
    let row = |out: &mut String, k: &str, v: String| {
        let _ = writeln!(out, "  {k:<44} {v}");
    };
    let _ = writeln!(
        out,
        "\nmake storm: seed {}, {:.0} s (settled in {:.0} s)",
        f.seed,
        f.elapsed.as_secs_f64(),
        f.settle.as_secs_f64()
    );
    let _ = writeln!(out, "\nworkload");
    for (kind, n) in &f.carts {
        row(&mut out, &format!("carts {kind}"), n.to_string());
    }
    row(&mut out, "events sent by Stripe", f.events.to_string());
    row(
        &mut out,
        "webhook copies delivered (duplicates)",
        format!("{} ({})", f.copies, f.copies.saturating_sub(f.events)),
    );
    let refused: Vec<String> = f
        .refused
        .iter()
        .map(|(s, n)| {
            if *s == 0 {
                format!("{n} unanswered")
            } else {
                format!("{n}×{s}")
            }
        })
        .collect();
    row(
        &mut out,
        "webhook answers retried",
        if refused.is_empty() {
            "0".into()
        } else {
            refused.join(", ")
        },
    );
    let _ = writeln!(
        out,
        "\ncalls through the fault proxies, and faults injected"
    );
    for (name, n) in &f.faults {
        row(&mut out, name, n.to_string());
    }
    row(
        &mut out,
        "kill -9 of the stack (starts)",
        format!("{} ({})", f.kills, f.stack_starts),
    );
    let _ = writeln!(out, "\nfigures");
    row(
        &mut out,
        "webhook answer p50 / p99",
        format!(
            "{} / {}",
            ms(quantile(&mut f.webhook, 0.5)),
            ms(quantile(&mut f.webhook, 0.99))
        ),
    );
    row(
        &mut out,
        "event to fulfilled p50 / p99",
        format!(
            "{} / {}",
            ms(quantile(&mut f.to_fulfilled, 0.5)),
            ms(quantile(&mut f.to_fulfilled, 0.99))
        ),
    );
    row(
        &mut out,
        "DynamoDB calls in flight, mean (moto: one at a time)",
        format!(
            "{:.1}",
            f.moto_busy.as_secs_f64() / f.elapsed.as_secs_f64().max(1.0)
        ),
    );
    row(
        &mut out,
        "orders / Fulfil calls",
        format!("{} / {}", f.orders, f.fulfil_calls),
    );
    row(
        &mut out,
        "  of which failed (retried) / interrupted by the kill",
        format!("{} / {}", allowed.failed_calls, allowed.interrupted_calls),
    );
    row(
        &mut out,
        "  re-run after the kill (at-least-once, allowed)",
        format!(
            "{} (confirmations: {})",
            allowed.refulfilled_after_crash, allowed.confirmations_after_crash
        ),
    );
    for (kind, n) in &f.emails {
        row(&mut out, &format!("emails: {kind}"), n.to_string());
    }
    row(
        &mut out,
        "re-drives needed (attempts by the reconciler)",
        f.redrives.to_string(),
    );
    row(
        &mut out,
        "stream batches given up (on-failure queue)",
        f.given_up_batches.to_string(),
    );
    let _ = writeln!(out, "\ninvariants");
    for check in checks {
        let verdict = if check.failures.is_empty() {
            "ok".to_string()
        } else {
            format!("FAILED ({})", check.failures.len())
        };
        row(&mut out, check.name, verdict);
    }
    for check in checks.iter().filter(|c| !c.failures.is_empty()) {
        let _ = writeln!(out, "\n{}:", check.name);
        for failure in check.failures.iter().take(20) {
            let _ = writeln!(out, "  - {failure}");
        }
        if check.failures.len() > 20 {
            let _ = writeln!(out, "  … and {} more", check.failures.len() - 20);
        }
    }
    out
}
