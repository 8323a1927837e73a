//! Shared helpers for the GPU test suites.
#![allow(dead_code)]

use fusedmlp::Gpu;

/// The process's GPU. Without an adapter the test fails with a message
/// saying how to get one; only `FUSEDMLP_REQUIRE_GPU=0` lets GPU tests skip,
/// and then they say so loudly (a skipped test is not a pass).
pub fn gpu() -> Option<Gpu> {
    match Gpu::new() {
        Ok(gpu) => Some(gpu),
        Err(e) => {
            if std::env::var("FUSEDMLP_REQUIRE_GPU").as_deref() == Ok("0") {
                eprintln!("SKIPPED (NOT PASSED): no GPU adapter: {e}");
                None
            } else {
                panic!(
                    "GPU test needs an adapter: {e}\n\
                     Run scripts/test.sh (installs lavapipe when no Vulkan driver exists), \
                     or set FUSEDMLP_REQUIRE_GPU=0 to skip GPU tests explicitly."
                )
            }
        }
    }
}

#[path = "../../src/gpu/tests/grid.rs"]
mod grid;
#[allow(unused_imports)] // not every suite uses it
pub use grid::grid_values;
