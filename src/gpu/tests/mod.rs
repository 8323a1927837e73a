//! The GPU layer's own tests: kernels, GEMM variants, timing and shader
//! validation, through the crate's internals (the integration tests in
//! `tests/` use the public API only).

mod fused;
mod grid;
mod linear;
mod shaders;
mod timing;

use super::gemm::{Epilogue, GemmVariant};
use super::linear::GemmDims;
use super::{Gpu, GpuTensor};
use grid::grid_values;

/// The process's GPU, or a loud skip under `FUSEDMLP_REQUIRE_GPU=0`.
fn gpu() -> Option<Gpu> {
    super::context::tests::gpu_for_test()
}

/// Runs one GEMM variant on `a`·`b`ᵀ into `y` (plain epilogue) and reads `y` back.
fn run_gemm(
    gpu: &Gpu,
    v: GemmVariant,
    dims: GemmDims,
    a: &GpuTensor,
    b: &GpuTensor,
    y: &GpuTensor,
) -> Vec<f32> {
    let mut encoder = gpu.device().create_command_encoder(&Default::default());
    gpu.record_gemm_with(&mut encoder, v, Epilogue::Plain, dims, a, b, None, y, None)
        .unwrap();
    gpu.queue().submit([encoder.finish()]);
    gpu.download(y).unwrap()
}
