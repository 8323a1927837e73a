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

/// Inputs on a grid (multiples of 1/16 times a power of two) so that every
/// product and partial sum is exact in f32: the GPU's pre-activations then
/// equal the reference's exactly, whatever the summation order, and the
/// comparison measures the kernels, not the luck of a sign near a kink.
pub fn grid_values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let q = ((s >> 33) % 33) as i32 - 16; // -16..=16
            q as f32 / 16.0 * scale
        })
        .collect()
}

/// Runs one GEMM variant on `a`·`b`ᵀ into `y` (plain epilogue) and reads `y` back.
pub fn run_gemm(
    gpu: &fusedmlp::Gpu,
    v: fusedmlp::gpu::gemm::GemmVariant,
    dims: fusedmlp::gpu::linear::GemmDims,
    a: &fusedmlp::GpuTensor,
    b: &fusedmlp::GpuTensor,
    y: &fusedmlp::GpuTensor,
) -> Vec<f32> {
    let mut encoder = gpu.device().create_command_encoder(&Default::default());
    gpu.record_gemm_with(
        &mut encoder,
        v,
        fusedmlp::gpu::gemm::Epilogue::Plain,
        dims,
        a,
        b,
        None,
        y,
        None,
    )
    .unwrap();
    gpu.queue().submit([encoder.finish()]);
    gpu.download(y).unwrap()
}
