//! The number of compute dispatches a training step takes, counted by the
//! host layer, may not grow: a later change cannot quietly add passes.
//! Its own test binary, so that the GEMM variants come from the heuristic
//! (`FUSEDMLP_AUTOTUNE=0`, set before the device exists): measured choices
//! differ from machine to machine, and some kinds take more passes.

mod common;

use fusedmlp::data::Dataset;
use fusedmlp::train::Kernels;
use fusedmlp::{Activation, Mlp, MlpConfig, Optimizer, TrainConfig, Trainer};

/// Dispatches of one unlogged step of the main job's net (20 hidden layers
/// of 64, batch 32, input 64, 10 classes, plain SGD), as counted when this
/// test was written: on the fully fused path (what `Kernels::Auto` picks
/// for it) and on the layered path. Lower them when a change removes
/// passes.
const MAIN_JOB_STEP_DISPATCHES_FUSED: u64 = 8;
const MAIN_JOB_STEP_DISPATCHES_LAYERED: u64 = 129;
/// The same for a logged step (diagnostics of every layer), on either path.
const MAIN_JOB_LOGGED_STEP_DISPATCHES: u64 = 135;
/// A logged step on the fused path (the stack keeps its pre-activations).
const MAIN_JOB_LOGGED_STEP_DISPATCHES_FUSED: u64 = 14;
/// Where the fused stack runs the subgroup design (llvmpipe, SwiftShader),
/// the weights are read where they lie: one dispatch fewer than the above.
const SUBGROUP_DESIGN_SAVES: u64 = 1;
/// Where it also may bind 14 storage buffers a stage (llvmpipe, not
/// SwiftShader), the forward gathers the batch itself and plain SGD is
/// folded into the output layer's and the weight gradients' kernels with
/// the finite checks: three more fewer (4 unlogged, 10 logged).
const GATHER_AND_FOLD_SAVE: u64 = 3;

#[test]
fn main_job_step_dispatches_do_not_grow() {
    // SAFETY: the only test in this binary, before any thread or device.
    unsafe { std::env::set_var(fusedmlp::gpu::AUTOTUNE_ENV, "0") };
    let Some(gpu) = common::gpu() else { return };
    let rows = 96;
    let x: Vec<f32> = (0..rows * 64)
        .map(|i| ((i * 37) % 17) as f32 / 17.0)
        .collect();
    let y: Vec<u32> = (0..rows as u32).map(|r| r % 10).collect();
    let data = Dataset::new("dispatch", x, y, 64, 10).unwrap();
    let config = MlpConfig::deep(64, 20, 64, 10, Activation::Relu);
    let saved = match gpu.fused_kernel() {
        fusedmlp::gpu::FusedKernel::Subgroup
            if gpu.limits().max_storage_buffers_per_shader_stage >= 14 =>
        {
            SUBGROUP_DESIGN_SAVES + GATHER_AND_FOLD_SAVE
        }
        fusedmlp::gpu::FusedKernel::Subgroup => SUBGROUP_DESIGN_SAVES,
        _ => 0,
    };
    for (kernels, bound, log_every) in [
        (Kernels::Auto, MAIN_JOB_STEP_DISPATCHES_FUSED, u64::MAX),
        (Kernels::Fused, MAIN_JOB_STEP_DISPATCHES_FUSED, u64::MAX),
        (Kernels::Layered, MAIN_JOB_STEP_DISPATCHES_LAYERED, u64::MAX),
        (Kernels::Fused, MAIN_JOB_LOGGED_STEP_DISPATCHES_FUSED, 1),
        (Kernels::Layered, MAIN_JOB_LOGGED_STEP_DISPATCHES, 1),
    ] {
        let logged = if log_every == 1 { "logged" } else { "unlogged" };
        let bound = if kernels == Kernels::Layered {
            bound
        } else {
            bound - saved
        };
        let tc = TrainConfig::default()
            .with_batch_size(32)
            .with_log_every(log_every)
            .with_optimizer(Optimizer::sgd())
            .with_kernels(kernels);
        let mut t =
            Trainer::new(Mlp::new(&gpu, config.clone()).unwrap(), tc, &data, &data).unwrap();
        t.run_steps(1).unwrap();
        let before = gpu.dispatch_count();
        t.run_steps(1).unwrap();
        let n = gpu.dispatch_count() - before;
        // Nothing is made per step: over 100 more steps the host layer
        // creates no buffer (parameter blocks, tables and staging are made
        // once) and no bind group (each pass reuses the one the first step
        // made), and each step waits on one set of error scopes.
        let (buffers, bind_groups) = gpu.objects_created();
        let scopes = gpu.error_scopes();
        t.run_steps(100).unwrap();
        let created = gpu.objects_created();
        let (buffers, bind_groups) = (created.0 - buffers, created.1 - bind_groups);
        let scopes = gpu.error_scopes() - scopes;
        eprintln!(
            "100 {logged} steps, kernels {kernels}: {buffers} buffers and {bind_groups} bind \
             groups created, {scopes} error scopes"
        );
        assert_eq!(
            (buffers, bind_groups),
            (0, 0),
            "{logged} steps with kernels {kernels} created (buffers, bind groups)"
        );
        assert!(
            scopes <= 100,
            "{scopes} error scopes over 100 {logged} steps with kernels {kernels}"
        );
        eprintln!("a {logged} step of the main job's net, kernels {kernels}: {n} dispatches");
        assert!(n > 0, "no dispatches counted");
        assert!(
            n <= bound,
            "a {logged} step of the main job's net took {n} dispatches with kernels {kernels} \
             (bound {bound})"
        );
    }
}
