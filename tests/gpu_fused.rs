//! The fully fused MLP against its CPU twin: every activation, ragged
//! batches (not multiples of the 16-row block), widths that are not powers
//! of two, depth 1 and 100, input widths 1 and 784, extreme inputs; and
//! bit-identical results from run to run.

mod common;

use fusedmlp::gpu::{FusedKernel, FusedShape, MAX_FUSED_WIDTH};
use fusedmlp::reference::fused_mlp;
use fusedmlp::{Activation, Error, Gpu};

type Layers = Vec<(Vec<f32>, Vec<f32>)>;

/// Weights on a grid of multiples of 1/16 (exact products in f32), scaled
/// by a power of two near √(3 / fan_in) so activations keep their scale.
fn stack(shape: FusedShape, seed: u64) -> Layers {
    (0..shape.layers)
        .map(|l| {
            let fan_in = if l == 0 { shape.input } else { shape.width };
            let scale = 2f32.powi((3.0 / fan_in as f32).sqrt().log2().round() as i32);
            (
                common::grid_values(shape.width * fan_in, seed + 2 * l as u64, scale),
                common::grid_values(shape.width, seed + 2 * l as u64 + 1, 0.25),
            )
        })
        .collect()
}

/// `gpu` within `rel` of `cpu`, measured against the larger of the value
/// and the tensor's largest magnitude (deep stacks carry rounding through
/// every layer; what matters is agreement at the tensor's own scale).
fn close(gpu: &[f32], cpu: &[f32], rel: f32, what: &str) {
    assert_eq!(gpu.len(), cpu.len(), "{what}: lengths");
    let scale = cpu
        .iter()
        .filter(|v| v.is_finite())
        .fold(0f32, |m, v| m.max(v.abs()));
    for (i, (&g, &c)) in gpu.iter().zip(cpu).enumerate() {
        if c.is_nan() {
            assert!(g.is_nan(), "{what}[{i}]: gpu {g} vs reference NaN");
            continue;
        }
        let tol = rel * (c.abs().max(scale * 1e-3) + 1e-6);
        assert!(
            (g - c).abs() <= tol || g == c,
            "{what}[{i}]: gpu {g} vs reference {c} (tolerance {tol})"
        );
    }
}

/// Both kernel designs where the adapter runs both. On llvmpipe, which
/// has subgroups of 8, the subgroup design must be among them.
fn kernels(gpu: &Gpu) -> Vec<FusedKernel> {
    let mut out = vec![FusedKernel::Lanes];
    if gpu.fused_subgroups_ok() {
        out.push(FusedKernel::Subgroup);
    } else {
        assert!(
            !gpu.adapter_info().name.contains("llvmpipe"),
            "llvmpipe offers subgroups of 8: the subgroup design must be tested"
        );
    }
    out
}

fn check(gpu: &Gpu, act: Activation, shape: FusedShape, x_scale: f32, rel: f32) {
    for kernel in kernels(gpu) {
        check_with(gpu, kernel, act, shape, x_scale, rel);
    }
}

fn check_with(
    gpu: &Gpu,
    kernel: FusedKernel,
    act: Activation,
    shape: FusedShape,
    x_scale: f32,
    rel: f32,
) {
    let x = common::grid_values(shape.batch * shape.input, 7, x_scale);
    let layers = stack(shape, 11);
    let dy = common::grid_values(shape.batch * shape.width, 13, 1.0);
    let what = format!("{act} {shape:?} {kernel:?}");
    let f_gpu = gpu
        .fused_mlp_forward_with(kernel, act, &x, &layers, shape)
        .unwrap();
    let f_cpu = fused_mlp::forward(act, &x, &layers, shape).unwrap();
    close(&f_gpu.y_last, &f_cpu.y_last, rel, &format!("{what} y_last"));
    for (l, (g, c)) in f_gpu.saved.iter().zip(&f_cpu.saved).enumerate() {
        close(g, c, rel, &format!("{what} saved[{l}]"));
    }
    let b_gpu = gpu
        .fused_mlp_backward_with(kernel, act, &x, &layers, &dy, shape)
        .unwrap();
    let b_cpu = fused_mlp::backward(act, &x, &layers, &dy, shape).unwrap();
    for (l, (g, c)) in b_gpu.dz.iter().zip(&b_cpu.dz).enumerate() {
        close(g, c, rel, &format!("{what} dz[{l}]"));
    }
    for (l, ((gw, gb), (cw, cb))) in b_gpu.grads.iter().zip(&b_cpu.grads).enumerate() {
        close(gw, cw, rel, &format!("{what} dW[{l}]"));
        close(gb, cb, rel, &format!("{what} db[{l}]"));
    }
}

fn shape(batch: usize, input: usize, width: usize, layers: usize) -> FusedShape {
    FusedShape {
        batch,
        input,
        width,
        layers,
    }
}

#[test]
fn every_activation_at_ragged_shapes_matches_the_reference() {
    let Some(gpu) = common::gpu() else { return };
    let shapes = [
        shape(1, 1, 17, 1),
        shape(3, 5, 100, 2),
        shape(33, 20, 64, 4),
        shape(17, 9, 16, 3),
        shape(5, 3, 128, 2),
        // The workgroup-memory design reads the weights where they lie
        // when the widths are multiples of 4, with column groups past the
        // width (60 of 64 lanes).
        shape(7, 8, 60, 3),
    ];
    // The subgroup design compiles a kernel per width and activation (about
    // a second each on llvmpipe): every activation at three of the shapes,
    // which cover one, two and four column groups per invocation, aligned
    // widths and not.
    let subgroup_shapes = [shapes[0], shapes[2], shapes[4]];
    // The workgroup-memory design compiles a kernel per activation and
    // lane count (16, 32, 64 or 128) and whether the widths are multiples
    // of 4: every shape for activations whose backward reads the output
    // (sigmoid) and the pre-activation (gelu), and ReLU; for the others, a
    // shape with ragged widths and one with aligned widths.
    let every_shape = [Activation::Relu, Activation::Sigmoid, Activation::Gelu];
    for act in Activation::ALL {
        for s in shapes {
            if every_shape.contains(&act) || s == shapes[0] || s == shapes[5] {
                check_with(&gpu, FusedKernel::Lanes, act, s, 1.0, 2e-3);
            }
        }
        if kernels(&gpu).contains(&FusedKernel::Subgroup) {
            for s in subgroup_shapes {
                check_with(&gpu, FusedKernel::Subgroup, act, s, 1.0, 2e-3);
            }
        }
    }
}

#[test]
fn large_batches_deep_stacks_and_wide_inputs_match_the_reference() {
    let Some(gpu) = common::gpu() else { return };
    check(&gpu, Activation::Relu, shape(1000, 64, 64, 3), 1.0, 2e-3);
    check(&gpu, Activation::Tanh, shape(33, 784, 32, 2), 1.0, 2e-3);
    check(&gpu, Activation::Sigmoid, shape(3, 7, 16, 100), 1.0, 5e-3);
    check(&gpu, Activation::Relu, shape(3, 7, 17, 100), 1.0, 5e-3);
    check(&gpu, Activation::Relu, shape(32, 64, 64, 20), 1.0, 2e-3);
}

#[test]
fn extreme_inputs_match_the_reference() {
    let Some(gpu) = common::gpu() else { return };
    for act in [
        Activation::Relu,
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Gelu,
        Activation::Softplus {
            beta: 1.0,
            threshold: 20.0,
        },
        Activation::Mish,
        Activation::Elu { alpha: 1.0 },
    ] {
        check(&gpu, act, shape(19, 6, 24, 3), 1000.0, 2e-3);
    }
}

#[test]
fn runs_are_bit_identical() {
    let Some(gpu) = common::gpu() else { return };
    let s = shape(50, 30, 48, 6);
    let x = common::grid_values(s.batch * s.input, 1, 1.0);
    let layers = stack(s, 2);
    let dy = common::grid_values(s.batch * s.width, 3, 1.0);
    let bits = |g: &fusedmlp::gpu::FusedGrads| -> Vec<u32> {
        g.grads
            .iter()
            .flat_map(|(w, b)| w.iter().chain(b).map(|v| v.to_bits()))
            .chain(g.dz.iter().flatten().map(|v| v.to_bits()))
            .collect()
    };
    for kernel in kernels(&gpu) {
        let run = || {
            gpu.fused_mlp_backward_with(kernel, Activation::Gelu, &x, &layers, &dy, s)
                .unwrap()
        };
        assert_eq!(bits(&run()), bits(&run()), "{kernel:?}");
    }
}

#[test]
fn shapes_it_cannot_take_are_errors_that_say_so() {
    let Some(gpu) = common::gpu() else { return };
    let wide = shape(2, 3, MAX_FUSED_WIDTH + 1, 1);
    let err = gpu
        .fused_mlp_forward(Activation::Relu, &[0.0; 6], &stack(wide, 0), wide)
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
    assert!(err.to_string().contains("layered path"), "{err}");
    let s = shape(2, 3, 4, 2);
    let mut layers = stack(s, 0);
    layers[1].0.pop();
    let err = gpu
        .fused_mlp_forward(Activation::Relu, &[0.0; 6], &layers, s)
        .unwrap_err();
    assert!(err.to_string().contains("layer 1"), "{err}");
}
