//! The documentation and the code agree where a reader acts on it: every 4xx error code the
//! API tables document is one a test makes a handler answer, so a documented code cannot be
//! dead and a renamed one cannot stay documented.

use std::collections::BTreeSet;
use std::path::Path;

/// The markdown files that document the API: the README and `docs/`.
fn pages() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut pages = vec![root.join("README.md")];
    if let Ok(entries) = std::fs::read_dir(root.join("docs")) {
        pages.extend(
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "md")),
        );
    }
    pages
        .into_iter()
        .map(|p| {
            let text =
                std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p.display().to_string(), text)
        })
        .collect()
}

/// `(page, status, code)` of each table row `| 4xx | `code`, `code` | … |`.
fn documented_codes() -> Vec<(String, u16, String)> {
    let mut out = Vec::new();
    for (page, text) in pages() {
        for line in text.lines() {
            let cells: Vec<&str> = line
                .trim()
                .trim_matches('|')
                .split('|')
                .map(str::trim)
                .collect();
            let Some(status) = cells.first().and_then(|c| c.parse::<u16>().ok()) else {
                continue;
            };
            if !(400..500).contains(&status) || cells.len() < 2 {
                continue;
            }
            for code in cells[1].split('`').skip(1).step_by(2) {
                if code.chars().all(|c| c.is_ascii_lowercase() || c == '_') && !code.is_empty() {
                    out.push((page.clone(), status, code.to_string()));
                }
            }
        }
    }
    out
}

/// Every string literal in the integration tests and the crates' own tests.
fn tested_literals() -> BTreeSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    let mut stack = vec![root.join("tests/tests"), root.join("shared/src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "rs") {
                files.push(path);
            }
        }
    }
    let mut literals = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        // Only what a test asserts: the integration tests whole, the crates' `mod tests`.
        let tested = if file.starts_with(root.join("tests")) {
            text.as_str()
        } else {
            text.split_once("#[cfg(test)]")
                .map_or("", |(_, tests)| tests)
        };
        for literal in tested.split('"').skip(1).step_by(2) {
            literals.insert(literal.to_string());
        }
    }
    literals
}

#[test]
fn every_documented_4xx_code_is_produced_by_a_test() {
    let documented = documented_codes();
    assert!(
        documented.len() >= 15,
        "the API tables were read: {documented:?}"
    );
    let tested = tested_literals();
    let untested: Vec<String> = documented
        .iter()
        .filter(|(_, _, code)| !tested.contains(code))
        .map(|(page, status, code)| format!("{page}: {status} {code}"))
        .collect();
    assert!(
        untested.is_empty(),
        "documented but never asserted by a test: {untested:#?}"
    );
}
