//! Differential transcripts.
//!
//! A transcript is a canonical text record of every answer the driver gave
//! during one subcommand: ioctl return values or errno names with the bytes
//! the driver returned, pread/pwrite return values with data where the data is
//! determined by the driver (or by patterns the test wrote first). The guest
//! runs the same subcommand against the Rust driver and against upstream
//! vfio-pci and diffs the two files, so a transcript must never contain
//! anything that differs between runs for reasons other than the driver: no
//! fd numbers, pointers, mmap addresses, timings or counters.

use crate::sys::{show, SysResult};
use std::fmt::Display;
use std::path::{Path, PathBuf};

/// Lowercase hex of `b`, a space between every 4 bytes for readability.
pub fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2 + b.len() / 4);
    for (i, x) in b.iter().enumerate() {
        if i > 0 && i % 4 == 0 {
            s.push(' ');
        }
        s.push_str(&format!("{x:02x}"));
    }
    if s.is_empty() {
        s.push('-');
    }
    s
}

/// FNV-1a 64-bit hash, used to record large buffers compactly. The data
/// hashed is always data the test wrote itself, so the hash is
/// deterministic.
pub fn fnv1a(b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &x in b {
        h ^= x as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A transcript being recorded.
#[derive(Debug, Default, Clone)]
pub struct Transcript {
    lines: Vec<String>,
}

impl Transcript {
    /// An empty transcript headed with the subcommand and device identity
    /// (both identical between the two runs being compared).
    pub fn new(subcommand: &str, mode: &str, bdf: &str) -> Self {
        let mut t = Transcript::default();
        t.line(format!(
            "# vfio-test transcript v1: {subcommand} mode={mode} device={bdf}"
        ));
        t
    }

    /// Append a free-form line (must be deterministic).
    pub fn line(&mut self, s: impl Into<String>) {
        let s: String = s.into();
        for l in s.lines() {
            self.lines.push(l.trim_end().to_string());
        }
    }

    /// Record an ioctl answer and the bytes the driver left in the buffer.
    pub fn ioctl(&mut self, what: impl Display, r: &SysResult<i32>, bytes: &[u8]) {
        self.line(format!("{what} -> {} [{}]", show(r), hex(bytes)));
    }

    /// Record an ioctl answer without data.
    pub fn ioctl_ret(&mut self, what: impl Display, r: &SysResult<i32>) {
        self.line(format!("{what} -> {}", show(r)));
    }

    /// Record a pread/pwrite answer; `data` is the data read or written,
    /// `None` when it is not stable between runs and must not be compared.
    pub fn rw(&mut self, what: impl Display, r: &SysResult<usize>, data: Option<&[u8]>) {
        match (r, data) {
            (Ok(n), Some(d)) => {
                let n = (*n).min(d.len());
                self.line(format!("{what} -> {} [{}]", show(r), hex(&d[..n])))
            }
            (Ok(_), None) => self.line(format!("{what} -> {} [unstable]", show(r))),
            (Err(_), _) => self.line(format!("{what} -> {}", show(r))),
        }
    }

    /// The canonical text.
    pub fn text(&self) -> String {
        let mut s = self.lines.join("\n");
        s.push('\n');
        s
    }

    /// File name for a transcript: `<subcommand>.<mode>.<BDF>.txt`.
    pub fn file_name(subcommand: &str, mode: &str, bdf: &str) -> String {
        format!("{subcommand}.{mode}.{bdf}.txt")
    }

    /// Write to `dir/<subcommand>.<mode>.<BDF>.txt`.
    pub fn write(
        &self,
        dir: &Path,
        subcommand: &str,
        mode: &str,
        bdf: &str,
    ) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let p = dir.join(Self::file_name(subcommand, mode, bdf));
        std::fs::write(&p, self.text())?;
        Ok(p)
    }
}

/// Compare two transcripts. Returns `None` when identical, else diagnostic
/// lines describing the first difference: the common prefix and suffix are
/// stripped and up to `max` lines of each side's differing middle are shown,
/// so a single inserted, removed or changed line is reported as exactly that
/// line.
pub fn diff(a: &str, b: &str, max: usize) -> Option<Vec<String>> {
    if a == b {
        return None;
    }
    let la: Vec<&str> = a.lines().collect();
    let lb: Vec<&str> = b.lines().collect();
    let prefix = la.iter().zip(&lb).take_while(|(x, y)| x == y).count();
    let rest_a = &la[prefix..];
    let rest_b = &lb[prefix..];
    let suffix = rest_a
        .iter()
        .rev()
        .zip(rest_b.iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let mid_a = &rest_a[..rest_a.len() - suffix];
    let mid_b = &rest_b[..rest_b.len() - suffix];
    let mut out = vec![format!(
        "first difference at line {}: {} line(s) in A vs {} line(s) in B differ",
        prefix + 1,
        mid_a.len(),
        mid_b.len()
    )];
    if mid_a.is_empty() && mid_b.is_empty() {
        // Same lines, different bytes (e.g. a missing final newline).
        out.push("texts differ only in line endings".into());
        return Some(out);
    }
    for (i, l) in mid_a.iter().take(max).enumerate() {
        out.push(format!("-A:{} {}", prefix + i + 1, l));
    }
    if mid_a.len() > max {
        out.push(format!("-A: ... {} more", mid_a.len() - max));
    }
    for (i, l) in mid_b.iter().take(max).enumerate() {
        out.push(format!("+B:{} {}", prefix + i + 1, l));
    }
    if mid_b.len() > max {
        out.push(format!("+B: ... {} more", mid_b.len() - max));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::Errno;

    #[test]
    fn hex_groups() {
        assert_eq!(hex(&[]), "-");
        assert_eq!(hex(&[0xed, 0, 0, 1, 0xff]), "ed000001 ff");
    }

    #[test]
    fn fnv_known_value() {
        // Reference value of FNV-1a 64 for "a".
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn records_are_canonical() {
        let mut t = Transcript::new("info", "group", "0000:00:03.0");
        t.ioctl("get_info argsz=8", &Err(Errno(libc::EINVAL)), &[1, 2]);
        t.ioctl("get_info argsz=24", &Ok(0), &[0x18, 0, 0, 0]);
        t.rw("pread bar0+0x0 len=4", &Ok(4), Some(&[0xed, 0, 0, 1]));
        t.rw(
            "pread bar0+0x0 len=8",
            &Ok(4),
            Some(&[1, 2, 3, 4, 5, 6, 7, 8]),
        );
        t.rw("pread bar2+0x0 len=4", &Ok(4), None);
        t.rw("pread bar9", &Err(Errno(libc::EINVAL)), None);
        let text = t.text();
        let expect = "# vfio-test transcript v1: info mode=group device=0000:00:03.0\n\
get_info argsz=8 -> EINVAL [0102]\n\
get_info argsz=24 -> 0 [18000000]\n\
pread bar0+0x0 len=4 -> 4 [ed000001]\n\
pread bar0+0x0 len=8 -> 4 [01020304]\n\
pread bar2+0x0 len=4 -> 4 [unstable]\n\
pread bar9 -> EINVAL\n";
        assert_eq!(text, expect);
        assert_eq!(
            Transcript::file_name("bar-rw", "cdev", "0000:00:03.0"),
            "bar-rw.cdev.0000:00:03.0.txt"
        );
    }

    #[test]
    fn diff_identical() {
        assert_eq!(diff("a\nb\n", "a\nb\n", 5), None);
    }

    #[test]
    fn diff_changed_line() {
        let d = diff("a\nb\nc\n", "a\nX\nc\n", 5).unwrap();
        assert_eq!(
            d[0],
            "first difference at line 2: 1 line(s) in A vs 1 line(s) in B differ"
        );
        assert_eq!(d[1], "-A:2 b");
        assert_eq!(d[2], "+B:2 X");
        assert_eq!(d.len(), 3);
    }

    #[test]
    fn diff_inserted_line() {
        let d = diff("a\nc\n", "a\nb\nc\n", 5).unwrap();
        assert_eq!(
            d[0],
            "first difference at line 2: 0 line(s) in A vs 1 line(s) in B differ"
        );
        assert_eq!(d[1], "+B:2 b");
        assert_eq!(d.len(), 2);
    }

    #[test]
    fn diff_truncates() {
        let a: String = (0..20).map(|i| format!("a{i}\n")).collect();
        let b: String = (0..20).map(|i| format!("b{i}\n")).collect();
        let d = diff(&a, &b, 3).unwrap();
        assert!(d.contains(&"-A: ... 17 more".to_string()));
        assert!(d.contains(&"+B: ... 17 more".to_string()));
        assert_eq!(d.len(), 1 + 4 + 4);
    }

    #[test]
    fn diff_line_endings_only() {
        let d = diff("a\nb", "a\nb\n", 3).unwrap();
        assert_eq!(d[1], "texts differ only in line endings");
    }

    #[test]
    fn write_file() {
        let dir = std::env::temp_dir().join(format!("vfio-test-tr-{}", std::process::id()));
        let mut t = Transcript::new("info", "group", "0000:00:03.0");
        t.line("x");
        let p = t.write(&dir, "info", "group", "0000:00:03.0").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), t.text());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
