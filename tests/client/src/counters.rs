//! The Rust driver's per-device fault counters in debugfs
//! (`/sys/kernel/debug/vfio_pci_rs/<BDF>/faults`, lines `name N`). Upstream has
//! no such file, so counters are printed as diagnostics and checked only when
//! present, and never written to transcripts.

use std::collections::BTreeMap;

/// Path of the counters file for `bdf`.
pub fn path(bdf: &str) -> String {
    format!("/sys/kernel/debug/vfio_pci_rs/{bdf}/faults")
}

/// Parse `name N` lines; other lines are ignored.
pub fn parse(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let name = it.next()?;
            let n = it.next()?.parse().ok()?;
            if it.next().is_some() {
                return None;
            }
            Some((name.to_string(), n))
        })
        .collect()
}

/// Read and parse the counters for `bdf`, `None` if the file is absent.
pub fn read(bdf: &str) -> Option<BTreeMap<String, u64>> {
    std::fs::read_to_string(path(bdf)).ok().map(|t| parse(&t))
}

/// Counter `name`, 0 if missing.
pub fn get(c: &BTreeMap<String, u64>, name: &str) -> u64 {
    c.get(name).copied().unwrap_or(0)
}

/// One-line rendering for a `# ` diagnostic.
pub fn render(c: &BTreeMap<String, u64>) -> String {
    c.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_counter_lines() {
        let c = parse("pte 12\npmd 3\npud 1\nfallback 0\nzap 2\nsigbus 5\ngarbage\nx y\n");
        assert_eq!(get(&c, "pte"), 12);
        assert_eq!(get(&c, "pud"), 1);
        assert_eq!(get(&c, "sigbus"), 5);
        assert_eq!(get(&c, "missing"), 0);
        assert_eq!(c.len(), 6);
        assert_eq!(
            render(&c),
            "fallback 0, pmd 3, pte 12, pud 1, sigbus 5, zap 2"
        );
        assert_eq!(
            path("0000:00:04.0"),
            "/sys/kernel/debug/vfio_pci_rs/0000:00:04.0/faults"
        );
    }
}
