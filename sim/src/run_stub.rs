//! TEMP(simcheck): stand-in for `run.rs` while the client API it needs is
//! being written. Same signature as the real `run_seed`; always an error.
//! The integrator deletes this file and the `#[path]` line in lib.rs.

use crate::report::SeedResult;
use crate::scenario::Scenario;

/// TEMP(simcheck): the real one builds and runs the simulation.
pub fn run_seed(_scenario: &Scenario, _seed: u64) -> anyhow::Result<SeedResult> {
    anyhow::bail!("the simulation is not linked into this build (TEMP run stub)")
}
