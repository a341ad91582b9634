//! Determinism guard: every `tokio::select!` in the workspace is `biased;`.
//!
//! An unbiased `select!` polls its branches in an order drawn from tokio's
//! own thread-local rng, which is seeded outside madsim (a process-wide
//! counter hashed with `RandomState`), so the same seed could replay
//! differently from one process to the next. When two branches are ready at
//! once (a heartbeat's sleep and a log-dir-failure notification, say) the
//! order decides which wakes and whether a stored `Notify` permit is
//! consumed: log-dir-failure seed 1 ran two ways across processes until
//! these were made biased.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_tokio_select_is_biased() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["src", "broker/src", "sim/src"] {
        rust_files(&root.join(dir), &mut files);
    }
    files.sort();
    let mut selects = 0;
    let mut unbiased = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).expect("readable source");
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if !code.contains("select!") {
                continue;
            }
            selects += 1;
            // `biased;` must be the first token inside the braces.
            let first = lines[i + 1..].iter().map(|l| l.trim()).find(|l| !l.is_empty() && !l.starts_with("//"));
            if first != Some("biased;") {
                unbiased.push(format!("{}:{}", path.strip_prefix(root).unwrap_or(path).display(), i + 1));
            }
        }
    }
    assert!(selects > 0, "no select! found: the scan looks in the wrong place");
    assert!(unbiased.is_empty(), "select! without `biased;` (branch order from a non-seeded rng): {unbiased:?}");
}
