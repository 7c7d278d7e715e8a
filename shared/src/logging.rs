//! Each function's log subscriber: what Lambda's own Rust runtime sets up
//! (`AWS_LAMBDA_LOG_FORMAT=JSON` for structured lines, the level from `AWS_LAMBDA_LOG_LEVEL`
//! or `RUST_LOG`, no timestamp since CloudWatch stamps each line), with a target filter in
//! place of `EnvFilter`. `EnvFilter` compiles its directives into regex DFAs, a regex engine
//! in every binary for what is, in a Lambda, a level and sometimes a module's own level;
//! `Targets` reads the same `info,checkout_core::webhook=debug` syntax without one (it drops
//! `EnvFilter`'s span and field filters).

use std::str::FromStr;

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the subscriber; call once, first thing in `main`.
pub fn init() {
    let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
    let filter = filter(
        var("AWS_LAMBDA_LOG_LEVEL")
            .or_else(|| var("RUST_LOG"))
            .as_deref(),
    );
    let json = var("AWS_LAMBDA_LOG_FORMAT").is_some_and(|f| f.eq_ignore_ascii_case("json"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_target(false)
        .without_time();
    let registry = tracing_subscriber::registry().with(filter);
    if json {
        registry.with(fmt.json()).init();
    } else {
        registry.with(fmt).init();
    }
}

/// `AWS_LAMBDA_LOG_LEVEL` holds a bare level (`DEBUG`, `INFO`, …); `RUST_LOG` may name
/// targets. What does not parse falls back to `info`, as Lambda's runtime does.
fn filter(directives: Option<&str>) -> Targets {
    let Some(directives) = directives else {
        return Targets::new().with_default(LevelFilter::INFO);
    };
    if let Ok(level) = LevelFilter::from_str(directives) {
        return Targets::new().with_default(level);
    }
    Targets::from_str(directives).unwrap_or_else(|_| Targets::new().with_default(LevelFilter::INFO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn levels_and_targets() {
        assert!(filter(None).would_enable("checkout_core", &Level::INFO));
        assert!(!filter(None).would_enable("checkout_core", &Level::DEBUG));
        assert!(filter(Some("DEBUG")).would_enable("any", &Level::DEBUG));
        assert!(!filter(Some("warn")).would_enable("any", &Level::INFO));
        let targets = filter(Some("info,checkout_core::webhook=debug"));
        assert!(targets.would_enable("checkout_core::webhook", &Level::DEBUG));
        assert!(!targets.would_enable("checkout_core::mail", &Level::DEBUG));
        assert!(filter(Some("not a filter ===")).would_enable("x", &Level::INFO));
    }
}
