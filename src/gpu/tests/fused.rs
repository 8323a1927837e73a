//! The fully fused stack's dispatch counts, through its buffers and
//! recording calls.

use crate::gpu::fused::{FusedKernel, FusedShape};
use crate::Activation;

#[test]
fn a_fused_stack_takes_at_most_four_dispatches_at_any_depth() {
    let Some(gpu) = super::gpu() else { return };
    let mut kernels = vec![FusedKernel::Lanes];
    if gpu.fused_subgroups_ok() {
        kernels.push(FusedKernel::Subgroup);
    }
    // The subgroup design reads weights where they lie when the widths are
    // multiples of 4 (three dispatches), else it pads them first (four);
    // the workgroup-memory design always lays them out (four).
    for kernel in kernels {
        for (input, layers) in [(5, 1), (5, 20), (8, 20), (8, 100)] {
            let s = FusedShape {
                batch: 8,
                input,
                width: 16,
                layers,
            };
            let bufs = gpu
                .fused_buffers_with_kernel(Activation::Tanh, s, kernel)
                .unwrap();
            let x = gpu.zeros(s.batch, s.input).unwrap();
            let w = gpu.zeros(1, s.weight_len()).unwrap();
            let b = gpu.zeros(1, s.bias_len()).unwrap();
            let dy = gpu.zeros(s.batch, s.width).unwrap();
            let mut e = gpu.device().create_command_encoder(&Default::default());
            let before = gpu.dispatch_count();
            gpu.record_fused_mlp_forward(&mut e, &x, &w, &b, &bufs)
                .unwrap();
            gpu.record_fused_mlp_backward(&mut e, &x, &w, &dy, &bufs)
                .unwrap();
            let expected = if kernel == FusedKernel::Subgroup && input % 4 == 0 {
                3
            } else {
                4
            };
            assert_eq!(
                gpu.dispatch_count() - before,
                expected,
                "{kernel:?}, input {input}, {layers} layers"
            );
            drop(e);
        }
    }
}
