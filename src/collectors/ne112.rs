//! Test support for the collectors checked against node_exporter 1.12's end-to-end fixtures
//! (`tests/fixtures/ne112/`, see its README for origin and license): the families as the
//! agent serves them, and 1.12's expected output for one family prefix.

use crate::exposition::MetricFamily;

/// The families as served (sorted by name, samples in client_golang's order), text format.
pub(crate) fn render(fams: &[MetricFamily]) -> String {
    crate::collectors::testutil::served(fams.to_vec())
}

/// The lines of 1.12's `e2e-output.txt` for the families whose names start with `prefix`.
pub(crate) fn expected(prefix: &str) -> String {
    let text = crate::collectors::testutil::fixture_text("ne112", "e2e-output-subset.txt");
    let mut out = String::new();
    for line in text.lines() {
        let name = line
            .strip_prefix("# HELP ")
            .or_else(|| line.strip_prefix("# TYPE "))
            .unwrap_or(line);
        if name.starts_with(prefix) {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(!out.is_empty(), "no expected lines for {prefix}");
    out
}
