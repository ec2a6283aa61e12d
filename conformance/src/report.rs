//! Human, JSON and JUnit reports.

use std::fmt;
use std::fmt::Write as _;

use crate::runner::CaseResult;

/// Text shown verbatim inside a pretty_assertions comparison.
struct Text<'a>(&'a str);

impl fmt::Debug for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// The failure details of one case: each failed step with expected vs actual side by side.
pub fn render_failure(r: &CaseResult, show_output: bool) -> String {
    let mut out = String::new();
    for f in &r.failures {
        let _ = writeln!(out, "  step {} ({}):", f.step, f.label);
        for m in &f.mismatches {
            let _ = writeln!(out, "    {}:", m.field);
            if !m.expected.contains('\n') && !m.actual.contains('\n') && m.expected.len() + m.actual.len() < 100 {
                let _ = writeln!(out, "      expected: {}\n      actual:   {}", m.expected, m.actual);
            } else {
                let (left, right) = (Text(&m.expected), Text(&m.actual));
                let cmp = pretty_assertions::Comparison::new(&left, &right);
                for line in format!("{cmp}").lines() {
                    let _ = writeln!(out, "      {line}");
                }
            }
        }
        if !f.note.is_empty() {
            for line in f.note.lines() {
                let _ = writeln!(out, "    | {line}");
            }
        }
    }
    if show_output && !r.server_output.trim().is_empty() {
        let lines: Vec<&str> = r.server_output.lines().collect();
        let tail = &lines[lines.len().saturating_sub(30)..];
        let _ = writeln!(out, "  server output (last {} lines):", tail.len());
        for l in tail {
            let _ = writeln!(out, "    > {l}");
        }
    }
    out
}

/// The final summary line.
pub fn summary(results: &[CaseResult]) -> String {
    let passed = results.iter().filter(|r| r.passed).count();
    format!("{passed} passed, {} failed", results.len() - passed)
}

/// All results as JSON.
pub fn json(results: &[CaseResult]) -> String {
    serde_json::to_string_pretty(results).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

fn xml_escape(s: &str) -> String {
    s.chars().filter(|c| *c == '\n' || *c == '\t' || !c.is_control()).fold(String::new(), |mut o, c| {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            c => o.push(c),
        }
        o
    })
}

/// All results as a JUnit XML test suite.
pub fn junit(results: &[CaseResult]) -> String {
    let failed = results.iter().filter(|r| !r.passed).count();
    let total: u64 = results.iter().map(|r| r.duration_ms).sum();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuite name=\"conformance\" tests=\"{}\" failures=\"{failed}\" time=\"{:.3}\">",
        results.len(),
        total as f64 / 1000.0
    );
    for r in results {
        let (class, name) = r.name.split_once('/').unwrap_or(("conformance", &r.name));
        let _ = write!(
            out,
            "  <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
            xml_escape(class),
            xml_escape(name),
            r.duration_ms as f64 / 1000.0
        );
        if r.passed {
            out.push_str("/>\n");
        } else {
            let first = r.failures.first().map(|f| format!("step {} ({})", f.step, f.label)).unwrap_or_default();
            let _ = writeln!(
                out,
                ">\n    <failure message=\"{}\">{}</failure>\n  </testcase>",
                xml_escape(&first),
                xml_escape(&render_failure(r, true))
            );
        }
    }
    out.push_str("</testsuite>\n");
    out
}
