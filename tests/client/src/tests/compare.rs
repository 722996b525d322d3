//! `compare DIR_A DIR_B`: diff the transcripts of two runs (Rust driver vs
//! upstream), one KTAP result per transcript file.

use crate::ktap::{Ktap, Outcome};
use crate::transcript::diff;
use std::collections::BTreeSet;
use std::path::Path;

/// Maximum differing lines shown per side.
const MAX_DIFF_LINES: usize = 10;

/// Transcript files (`*.txt`) in `dir`, sorted.
pub fn transcripts(dir: &Path) -> std::io::Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".txt") && e.file_type()?.is_file() {
            out.insert(name);
        }
    }
    Ok(out)
}

/// Compare every transcript in `a` and `b`.
pub fn run(k: &mut Ktap, a: &Path, b: &Path) {
    let (fa, fb) = match (transcripts(a), transcripts(b)) {
        (Ok(x), Ok(y)) => (x, y),
        (ra, rb) => {
            let why = ra
                .err()
                .map(|e| format!("{}: {e}", a.display()))
                .or_else(|| rb.err().map(|e| format!("{}: {e}", b.display())))
                .unwrap_or_default();
            k.fail("diff.dirs", "two readable directories", why);
            return;
        }
    };
    if fa.is_empty() && fb.is_empty() {
        k.fail(
            "diff.files",
            "transcripts to compare",
            "no *.txt in either directory",
        );
        return;
    }
    for name in fa.union(&fb) {
        let test = format!("diff.{name}");
        match (fa.contains(name), fb.contains(name)) {
            (true, true) => {
                let ta = std::fs::read_to_string(a.join(name));
                let tb = std::fs::read_to_string(b.join(name));
                match (ta, tb) {
                    (Ok(ta), Ok(tb)) => match diff(&ta, &tb, MAX_DIFF_LINES) {
                        None => k.pass(&test),
                        Some(lines) => {
                            k.diag(format!(
                                "{test}: expected identical transcripts, got differences (A={}, B={})",
                                a.display(),
                                b.display()
                            ));
                            for l in &lines {
                                k.diag(l.clone());
                            }
                            k.result(&test, Outcome::Fail("transcripts differ".into()));
                        }
                    },
                    (ra, rb) => {
                        let e = ra
                            .err()
                            .or(rb.err())
                            .map(|e| e.to_string())
                            .unwrap_or_default();
                        k.fail(&test, "both files readable", e);
                    }
                }
            }
            (true, false) => k.fail(
                &test,
                "present in both directories",
                format!("only in {}", a.display()),
            ),
            _ => k.fail(
                &test,
                "present in both directories",
                format!("only in {}", b.display()),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("vfio-test-cmp-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn compares_dirs() {
        let a = dir("a");
        let b = dir("b");
        std::fs::write(a.join("info.group.0000:00:03.0.txt"), "x\ny\n").unwrap();
        std::fs::write(b.join("info.group.0000:00:03.0.txt"), "x\ny\n").unwrap();
        std::fs::write(a.join("bar-rw.group.0000:00:03.0.txt"), "x\ny\n").unwrap();
        std::fs::write(b.join("bar-rw.group.0000:00:03.0.txt"), "x\nz\n").unwrap();
        std::fs::write(a.join("mmap.group.0000:00:03.0.txt"), "x\n").unwrap();
        std::fs::write(b.join("notes.log"), "ignored").unwrap();
        let mut k = Ktap::quiet();
        run(&mut k, &a, &b);
        let out = k.render();
        assert!(out.contains("not ok 1 diff.bar-rw.group.0000:00:03.0.txt # transcripts differ"));
        assert!(out.contains("# -A:2 y\n# +B:2 z\n"));
        assert!(out.contains("ok 2 diff.info.group.0000:00:03.0.txt\n"));
        assert!(out.contains(
            "not ok 3 diff.mmap.group.0000:00:03.0.txt # expected present in both directories"
        ));
        assert_eq!(k.count(), 3);
        assert_eq!(k.failed(), 2);
        std::fs::remove_dir_all(&a).unwrap();
        std::fs::remove_dir_all(&b).unwrap();
    }

    #[test]
    fn empty_and_missing_dirs_fail() {
        let a = dir("empty-a");
        let b = dir("empty-b");
        let mut k = Ktap::quiet();
        run(&mut k, &a, &b);
        assert_eq!(k.failed(), 1);
        let mut k = Ktap::quiet();
        run(&mut k, &a, &a.join("nope"));
        assert_eq!(k.failed(), 1);
        assert!(k.render().contains("diff.dirs"));
        std::fs::remove_dir_all(&a).unwrap();
        std::fs::remove_dir_all(&b).unwrap();
    }
}
