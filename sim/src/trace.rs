//! The trace hash: a digest of everything a run observably did (history and
//! fault actions, in order). Same binary + scenario + seed ⇒ same hash; a
//! test runs seeds twice and compares.

use sha2::{Digest, Sha256};

#[derive(Default)]
pub struct TraceHasher {
    h: Sha256,
    lines: u64,
}

impl TraceHasher {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one line of the trace (a history op, a fault action, …).
    pub fn line(&mut self, s: &str) {
        self.h.update(s.as_bytes());
        self.h.update(b"\n");
        self.lines += 1;
    }

    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Hex digest, first 16 bytes (32 hex chars).
    pub fn finish(self) -> String {
        let d = self.h.finalize();
        hex::encode(&d[..16])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_lines_same_hash_and_order_matters() {
        let mut a = TraceHasher::new();
        let mut b = TraceHasher::new();
        let mut c = TraceHasher::new();
        for s in ["x", "y"] {
            a.line(s);
            b.line(s);
        }
        c.line("y");
        c.line("x");
        let (ha, hb, hc) = (a.finish(), b.finish(), c.finish());
        assert_eq!(ha, hb);
        assert_ne!(ha, hc);
        assert_eq!(ha.len(), 32);
    }
}
