//! KTAP version 1 reporting.
//!
//! Results are buffered and printed at the end because the plan line
//! ("1..N") must come right after the version line and the number of tests
//! depends on what the device reports. So that a hang or crash in the guest
//! can still be located, every result is also echoed to stderr the moment it
//! is known, in a form no KTAP parser mistakes for a result ("N PASS name"),
//! unless stderr is the same file as stdout (the guest suite runs the client
//! with `2>&1`), where the echo would only duplicate the report.

use std::collections::HashSet;
use std::fmt::Display;

/// The outcome of one test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Passed.
    Pass,
    /// Failed, with a one-line reason.
    Fail(String),
    /// Skipped, with a reason.
    Skip(String),
}

#[derive(Debug, Clone)]
enum Line {
    Diag(String),
    Result { name: String, outcome: Outcome },
}

/// Collects test results and renders them as KTAP.
#[derive(Debug, Default)]
pub struct Ktap {
    lines: Vec<Line>,
    names: HashSet<String>,
    count: usize,
    failed: usize,
    echo: bool,
}

/// Make a test name safe for KTAP: no whitespace and no '#', which would
/// start a directive.
pub fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_whitespace() || c == '#' {
                '_'
            } else {
                c
            }
        })
        .collect()
}

impl Ktap {
    /// A reporter that also echoes progress to stderr as results happen,
    /// when stderr is not where stdout goes.
    pub fn new() -> Self {
        Ktap {
            echo: !crate::sys::same_file(1, 2),
            ..Default::default()
        }
    }

    /// A reporter that prints nothing until rendered (for unit tests).
    #[cfg(test)]
    pub fn quiet() -> Self {
        Ktap::default()
    }

    /// Number of results so far.
    #[cfg(test)]
    pub fn count(&self) -> usize {
        self.count
    }

    /// Number of failed results so far.
    pub fn failed(&self) -> usize {
        self.failed
    }

    /// Add a `# ` diagnostic line.
    pub fn diag(&mut self, text: impl Into<String>) {
        let text = text.into();
        for l in text.lines() {
            if self.echo {
                eprintln!("vfio-test: # {l}");
            }
            self.lines.push(Line::Diag(l.to_string()));
        }
    }

    /// Record a result. Names are made unique: a repeated name is a bug in
    /// the caller, and rather than emit an ambiguous KTAP stream the result
    /// is renamed and turned into a failure so the bug is seen.
    pub fn result(&mut self, name: &str, outcome: Outcome) {
        let mut name = sanitize(name);
        let mut outcome = outcome;
        if !self.names.insert(name.clone()) {
            let mut n = 2;
            while !self.names.insert(format!("{name}.dup{n}")) {
                n += 1;
            }
            let msg = format!("unique test name, got a repeat of {name} (client bug)");
            name = format!("{name}.dup{n}");
            if self.echo {
                eprintln!("vfio-test: # {name}: {msg}");
            }
            self.lines.push(Line::Diag(format!("{name}: {msg}")));
            outcome = Outcome::Fail("duplicate test name (client bug)".into());
        }
        self.count += 1;
        if let Outcome::Fail(_) = outcome {
            self.failed += 1;
        }
        if self.echo {
            let tag = match &outcome {
                Outcome::Pass => "PASS".to_string(),
                Outcome::Fail(r) => format!("FAIL ({})", one_line(r)),
                Outcome::Skip(r) => format!("SKIP ({})", one_line(r)),
            };
            eprintln!("vfio-test: {} {tag} {name}", self.count);
        }
        self.lines.push(Line::Result { name, outcome });
    }

    /// Record a pass.
    pub fn pass(&mut self, name: &str) {
        self.result(name, Outcome::Pass);
    }

    /// Record a skip.
    pub fn skip(&mut self, name: &str, reason: impl Into<String>) {
        self.result(name, Outcome::Skip(reason.into()));
    }

    /// Record a failure with a diagnostic line saying expected vs got.
    pub fn fail(&mut self, name: &str, expected: impl Display, got: impl Display) {
        self.diag(format!(
            "{}: expected {expected}, got {got}",
            sanitize(name)
        ));
        self.result(
            name,
            Outcome::Fail(format!("expected {expected}, got {got}")),
        );
    }

    /// Pass if `cond`, else fail with the expected/got description.
    pub fn check(
        &mut self,
        name: &str,
        cond: bool,
        expected: impl Display,
        got: impl Display,
    ) -> bool {
        if cond {
            self.pass(name);
        } else {
            self.fail(name, expected, got);
        }
        cond
    }

    /// Pass if `got == expected`.
    pub fn check_eq<T: PartialEq + std::fmt::Debug>(
        &mut self,
        name: &str,
        expected: T,
        got: T,
    ) -> bool {
        let ok = got == expected;
        self.check(name, ok, format!("{expected:?}"), format!("{got:?}"))
    }

    /// The complete KTAP document.
    pub fn render(&self) -> String {
        let mut out = String::from("KTAP version 1\n");
        out.push_str(&format!("1..{}\n", self.count));
        let mut n = 0;
        for l in &self.lines {
            match l {
                Line::Diag(d) => {
                    out.push_str("# ");
                    out.push_str(d);
                    out.push('\n');
                }
                Line::Result { name, outcome } => {
                    n += 1;
                    out.push_str(&render_result(n, name, outcome));
                    out.push('\n');
                }
            }
        }
        let passed = self
            .lines
            .iter()
            .filter(|l| {
                matches!(
                    l,
                    Line::Result {
                        outcome: Outcome::Pass,
                        ..
                    }
                )
            })
            .count();
        let skipped = self
            .lines
            .iter()
            .filter(|l| {
                matches!(
                    l,
                    Line::Result {
                        outcome: Outcome::Skip(_),
                        ..
                    }
                )
            })
            .count();
        out.push_str(&format!(
            "# totals: pass:{passed} fail:{} skip:{skipped}\n",
            self.failed
        ));
        out
    }
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

fn render_result(n: usize, name: &str, outcome: &Outcome) -> String {
    match outcome {
        Outcome::Pass => format!("ok {n} {name}"),
        Outcome::Fail(reason) => format!("not ok {n} {name} # {}", one_line(reason)),
        Outcome::Skip(reason) => format!("ok {n} {name} # SKIP {}", one_line(reason)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_plan_results_and_diagnostics() {
        let mut k = Ktap::quiet();
        k.pass("info.group.0000:01:00.0.flags");
        k.fail("info.group.0000:01:00.0.regions", ">= 9", 3);
        k.skip("mmap.group.0000:01:00.0.zap", "no mmap BAR");
        let out = k.render();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "KTAP version 1");
        assert_eq!(lines[1], "1..3");
        assert_eq!(lines[2], "ok 1 info.group.0000:01:00.0.flags");
        assert_eq!(
            lines[3],
            "# info.group.0000:01:00.0.regions: expected >= 9, got 3"
        );
        assert_eq!(
            lines[4],
            "not ok 2 info.group.0000:01:00.0.regions # expected >= 9, got 3"
        );
        assert_eq!(
            lines[5],
            "ok 3 mmap.group.0000:01:00.0.zap # SKIP no mmap BAR"
        );
        assert_eq!(lines[6], "# totals: pass:1 fail:1 skip:1");
        assert_eq!(k.failed(), 1);
        assert_eq!(k.count(), 3);
    }

    #[test]
    fn duplicate_names_fail() {
        let mut k = Ktap::quiet();
        k.pass("a");
        k.pass("a");
        let out = k.render();
        assert!(out.contains("ok 1 a\n"));
        assert!(out.contains("not ok 2 a.dup2 # duplicate test name"));
        assert_eq!(k.failed(), 1);
    }

    #[test]
    fn names_are_sanitized() {
        assert_eq!(sanitize("a b#c"), "a_b_c");
        let mut k = Ktap::quiet();
        k.skip("x y", "multi\nline");
        assert!(k.render().contains("ok 1 x_y # SKIP multi line\n"));
    }

    #[test]
    fn check_helpers() {
        let mut k = Ktap::quiet();
        assert!(k.check_eq("eq", 4, 4));
        assert!(!k.check_eq("ne", 4, 5));
        assert!(k.render().contains("# ne: expected 4, got 5\n"));
        assert_eq!(k.failed(), 1);
    }
}
