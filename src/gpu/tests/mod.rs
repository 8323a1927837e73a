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

#[test]
fn an_invalid_dispatch_is_an_error_not_silent_zeros() {
    let Some(gpu) = gpu() else { return };
    let act = crate::Activation::Relu;
    let pipeline = gpu
        .pipeline(
            "elementwise[relu]",
            "activation_forward",
            || super::shader::assemble(super::shader::ELEMENTWISE_WGSL, Some(act)),
            false,
        )
        .unwrap();
    let z = gpu.upload(&[1.0; 4], 1, 4).unwrap();
    let y = gpu.zeros(1, 4).unwrap();
    let params = gpu.params(&[4u32, 256, 0, 0]).unwrap();
    let too_many = gpu.limits().max_compute_workgroups_per_dimension + 1;
    let result = gpu.scoped("an over-limit dispatch", || {
        let mut encoder = gpu.device().create_command_encoder(&Default::default());
        super::elementwise::record_pass(
            &gpu,
            &mut encoder,
            "over-limit",
            &pipeline,
            &[(0, &params), (1, &z), (3, &y)],
            (too_many, 1, 1),
        );
        gpu.queue().submit([encoder.finish()]);
    });
    let err = result.unwrap_err();
    assert!(matches!(err, crate::Error::GpuValidation { .. }), "{err}");
    // The device stays usable after a caught error.
    assert_eq!(
        gpu.activation_forward(act, &[-1.0, 2.0]).unwrap(),
        vec![0.0, 2.0]
    );
}

#[test]
fn work_recorded_outside_the_plan_is_not_captured() {
    let Some(gpu) = gpu() else { return };
    let (t, u) = (gpu.zeros(4, 4).unwrap(), gpu.zeros(4, 4).unwrap());
    let mut encoder = gpu.device().create_command_encoder(&Default::default());
    // The autotuner measures on encoders of its own in the middle of a
    // step's first recording: what it records must stay out of the plan.
    let ((), plan) = super::plan::StepPlan::capture(|| {
        t.record_clear(&mut encoder);
        super::plan::outside_plan(|| t.record_clear(&mut encoder));
        t.record_copy_to(&mut encoder, 0, &u, 8, 4);
    });
    gpu.queue().submit([encoder.finish()]);
    assert_eq!((plan.dispatches(), plan.copies()), (0, 2), "{plan:?}");
}

#[test]
fn a_panic_while_capturing_leaves_no_capture_behind() {
    let Some(gpu) = gpu() else { return };
    let t = gpu.zeros(1, 4).unwrap();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        super::plan::StepPlan::capture(|| {
            let mut encoder = gpu.device().create_command_encoder(&Default::default());
            t.record_clear(&mut encoder);
            panic!("a recording that fails halfway");
        })
    }));
    assert!(caught.is_err());
    assert!(
        !super::plan::capturing(),
        "the thread still captures after the panic"
    );
}
