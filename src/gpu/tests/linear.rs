//! The fused linear kernels against the CPU reference: every activation at
//! ragged shapes and several input scales, and every GEMM variant the
//! autotuner can pick at shapes that hit every tile edge.

use super::{grid_values, run_gemm};

use crate::gpu::gemm::{GemmKind, GemmVariant};
use crate::gpu::linear::{BackwardGemms, GemmDims};
use crate::{reference, Activation, Error, LinearShape};

/// Largest |gpu − ref| / (1e-4·mag + 1e-6), where mag is the same sum as
/// the output taken over absolute values. At most 1 passes.
fn worst_ratio(gpu: &[f32], reference: &[f32], magnitude: &[f64]) -> f64 {
    assert_eq!(gpu.len(), reference.len());
    gpu.iter()
        .zip(reference)
        .zip(magnitude)
        .map(|((&g, &r), &m)| {
            if g.is_nan() || r.is_nan() {
                return if g.is_nan() && r.is_nan() {
                    0.0
                } else {
                    f64::INFINITY
                };
            }
            (g as f64 - r as f64).abs() / (1e-4 * m + 1e-6)
        })
        .fold(0.0, f64::max)
}

struct Magnitudes {
    y: Vec<f64>,
    dx: Vec<f64>,
    dw: Vec<f64>,
    db: Vec<f64>,
}

/// Σ|x||w| + |b| for Z (times 2, the largest slope of any activation here),
/// and Σ|dy|·2·|w| etc. for the gradients.
fn magnitudes(x: &[f32], w: &[f32], b: &[f32], dy: &[f32], s: LinearShape) -> Magnitudes {
    let (bt, ni, no) = (s.batch, s.in_features, s.out_features);
    let abs = |v: &[f32]| v.iter().map(|x| x.abs()).collect::<Vec<f32>>();
    let z = reference::linear::linear_preactivation_f64(&abs(x), &abs(w), &abs(b), s);
    // |dz| <= 2|dy| for every activation's slope.
    let dz: Vec<f32> = dy.iter().map(|g| 2.0 * g.abs()).collect();
    let g = reference::linear_backward(
        Activation::Identity,
        &abs(x),
        &abs(w),
        &vec![0.0; no],
        &dz,
        s,
    )
    .unwrap();
    let _ = (bt, ni);
    Magnitudes {
        y: z.iter().map(|v| 2.0 * v).collect(),
        dx: g.dx.iter().map(|&v| v as f64).collect(),
        dw: g.dw.iter().map(|&v| v as f64).collect(),
        db: g.db.iter().map(|&v| v as f64).collect(),
    }
}

const SHAPES: [(usize, usize, usize); 7] = [
    (1, 1, 1),
    (1, 7, 3),
    (13, 17, 19),
    (63, 65, 17),
    (100, 1000, 10),
    (257, 129, 513),
    (512, 1024, 256),
];

#[test]
fn every_activation_at_every_shape_matches_the_reference() {
    let Some(gpu) = super::gpu() else { return };
    let mut worst = (0.0f64, String::new());
    let mut failures = Vec::new();
    for (si, &(batch, n_in, n_out)) in SHAPES.iter().enumerate() {
        let shape = LinearShape::new(batch, n_in, n_out);
        // Scales: small, unit and large inputs (the large ones saturate).
        let scale = [0.0625f32, 1.0, 8.0][si % 3];
        let x = grid_values(batch * n_in, 1 + si as u64, scale);
        // A power of two near 1/sqrt(in) keeps the grid exact.
        let w_scale = 2f32.powi(-((n_in as f32).sqrt().log2().round() as i32));
        let w = grid_values(n_out * n_in, 100 + si as u64, w_scale);
        let b = grid_values(n_out, 200 + si as u64, 0.5);
        let dy = grid_values(batch * n_out, 300 + si as u64, 1.0);
        let mag = magnitudes(&x, &w, &b, &dy, shape);
        for act in Activation::ALL {
            let y = gpu.linear_forward(act, &x, &w, &b, shape).unwrap();
            let g = gpu.linear_backward(act, &x, &w, &b, &dy, shape).unwrap();
            let ry = reference::linear_forward(act, &x, &w, &b, shape).unwrap();
            let rg = reference::linear_backward(act, &x, &w, &b, &dy, shape).unwrap();
            for (what, r) in [
                ("y", worst_ratio(&y, &ry, &mag.y)),
                ("dx", worst_ratio(&g.dx, &rg.dx, &mag.dx)),
                ("dw", worst_ratio(&g.dw, &rg.dw, &mag.dw)),
                ("db", worst_ratio(&g.db, &rg.db, &mag.db)),
            ] {
                let label = format!("{act} {batch}x{n_in}x{n_out} {what}");
                if r > worst.0 {
                    worst = (r, label.clone());
                }
                if r > 1.0 {
                    failures.push(format!("{label}: error {r:.2} x tolerance"));
                }
            }
        }
    }
    println!(
        "largest error: {:.4} of the tolerance (1e-4 of the magnitude), at {}",
        worst.0, worst.1
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn real_valued_inputs_agree_too() {
    let Some(gpu) = super::gpu() else { return };
    let shape = LinearShape::new(33, 70, 45);
    let x: Vec<f32> = (0..33 * 70)
        .map(|i| ((i as f32) * 0.7123).sin() * 1.7)
        .collect();
    let w: Vec<f32> = (0..45 * 70)
        .map(|i| ((i as f32) * 0.3331).cos() * 0.12)
        .collect();
    let b: Vec<f32> = (0..45).map(|i| (i as f32 * 0.1).sin()).collect();
    let dy: Vec<f32> = (0..33 * 45).map(|i| ((i as f32) * 1.618).sin()).collect();
    let mag = magnitudes(&x, &w, &b, &dy, shape);
    for act in [
        Activation::Gelu,
        Activation::Tanh,
        Activation::Sigmoid,
        Activation::Mish,
        Activation::Selu,
    ] {
        let y = gpu.linear_forward(act, &x, &w, &b, shape).unwrap();
        let ry = reference::linear_forward(act, &x, &w, &b, shape).unwrap();
        assert!(worst_ratio(&y, &ry, &mag.y) <= 1.0, "{act}");
        let g = gpu.linear_backward(act, &x, &w, &b, &dy, shape).unwrap();
        let rg = reference::linear_backward(act, &x, &w, &b, &dy, shape).unwrap();
        assert!(worst_ratio(&g.dx, &rg.dx, &mag.dx) <= 1.0, "{act} dx");
        assert!(worst_ratio(&g.dw, &rg.dw, &mag.dw) <= 1.0, "{act} dw");
        assert!(worst_ratio(&g.db, &rg.db, &mag.db) <= 1.0, "{act} db");
    }
}

/// Reference GEMM C = A·Bᵀ with strides, in f64.
fn gemm_ref(a: &[f32], b: &[f32], d: GemmDims) -> (Vec<f32>, Vec<f64>) {
    let mut c = vec![0.0f32; d.m * d.ldc];
    let mut mag = vec![0.0f64; d.m * d.ldc];
    for r in 0..d.m {
        for col in 0..d.n {
            let (mut acc, mut m) = (0.0f64, 0.0f64);
            for k in 0..d.k {
                let p = a[r * d.lda + k] as f64 * b[col * d.ldb + k] as f64;
                acc += p;
                m += p.abs();
            }
            c[r * d.ldc + col] = acc as f32;
            mag[r * d.ldc + col] = m;
        }
    }
    (c, mag)
}

/// Runs one GEMM variant and reads C back.
#[test]
fn every_gemm_variant_handles_every_tile_edge() {
    let Some(gpu) = super::gpu() else { return };
    let mut tested = 0;
    for v in GemmVariant::CANDIDATES {
        let (tr, tc) = (v.tile_rows() as usize, v.tile_cols() as usize);
        for &(m, n) in &[
            (1, 1),
            (tr - 1, tc - 1),
            (tr, tc),
            (tr + 1, tc + 1),
            (2 * tr + 3, tc / 2 + 1),
            (3, 2 * tc + 5),
        ] {
            for &k in &[1usize, 3, 4, 5, 17, 64] {
                let vec4 = v.needs_vec4();
                let ld = if vec4 { k.div_ceil(4) * 4 } else { k };
                let dims = GemmDims {
                    m,
                    n,
                    k,
                    lda: ld,
                    ldb: ld,
                    ldc: n,
                };
                if !gpu.applicable_variants(dims).contains(&v) {
                    continue;
                }
                // Zero padding past k, as the vec4 kernels require.
                let mut a = vec![0.0f32; m * ld];
                let mut b = vec![0.0f32; n * ld];
                let av = grid_values(m * k, (m * 31 + k) as u64, 1.0);
                let bv = grid_values(n * k, (n * 17 + k) as u64, 0.5);
                for r in 0..m {
                    a[r * ld..r * ld + k].copy_from_slice(&av[r * k..(r + 1) * k]);
                }
                for c in 0..n {
                    b[c * ld..c * ld + k].copy_from_slice(&bv[c * k..(c + 1) * k]);
                }
                let at = gpu.upload(&a, m, ld).unwrap();
                let bt = gpu.upload(&b, n, ld).unwrap();
                // A sentinel in C shows any write out of place.
                let yt = gpu.upload(&vec![-777.0; m * n], m, n).unwrap();
                let y = run_gemm(&gpu, v, dims, &at, &bt, &yt);
                let (r, mag) = gemm_ref(&a, &b, dims);
                let ratio = worst_ratio(&y, &r, &mag);
                assert!(ratio <= 1.0, "{} at m={m} n={n} k={k}: {ratio}", v.name());
                tested += 1;
            }
        }
    }
    println!("{tested} (variant, shape) cases checked");
    assert!(tested > 100);
}

#[test]
fn the_backward_through_every_gemm_kind_matches_the_reference() {
    let Some(gpu) = super::gpu() else { return };
    let kinds = [
        GemmKind::Scalar,
        GemmKind::Vec4,
        GemmKind::Vec4Subgroup,
        GemmKind::Texture,
        GemmKind::TextureSubgroup,
    ];
    let mut tested = Vec::new();
    for kind in kinds {
        for v in GemmVariant::CANDIDATES.iter().filter(|v| v.kind == kind) {
            for &(bt, i, o) in &[(1, 7, 3), (13, 17, 19), (63, 65, 17), (70, 33, 130)] {
                let shape = LinearShape::new(bt, i, o);
                let dims = GemmDims {
                    m: bt,
                    n: i,
                    k: o,
                    lda: o.div_ceil(4) * 4,
                    ldb: o.div_ceil(4) * 4,
                    ldc: i,
                };
                if !gpu.applicable_variants(dims).contains(v) {
                    continue;
                }
                let x = grid_values(bt * i, (bt + i) as u64, 1.0);
                let w = grid_values(o * i, (o * 3 + i) as u64, 0.25);
                let b = grid_values(o, o as u64, 0.5);
                let dy = grid_values(bt * o, (bt * 7 + o) as u64, 1.0);
                let mag = magnitudes(&x, &w, &b, &dy, shape);
                for act in [Activation::Relu, Activation::Gelu] {
                    let g = gpu
                        .linear_backward_with(
                            act,
                            &x,
                            &w,
                            &b,
                            &dy,
                            shape,
                            BackwardGemms::Variant(*v),
                        )
                        .unwrap();
                    let r = reference::linear_backward(act, &x, &w, &b, &dy, shape).unwrap();
                    for (what, ratio) in [
                        ("dx", worst_ratio(&g.dx, &r.dx, &mag.dx)),
                        ("dw", worst_ratio(&g.dw, &r.dw, &mag.dw)),
                        ("db", worst_ratio(&g.db, &r.db, &mag.db)),
                    ] {
                        assert!(
                            ratio <= 1.0,
                            "{} {act} {bt}x{i}x{o} {what}: {ratio}",
                            v.name()
                        );
                    }
                }
                tested.push(v.name());
            }
        }
    }
    tested.dedup();
    println!("backward checked through {}", tested.join(", "));
    // Every kind this adapter can run was exercised.
    for kind in kinds {
        let runs = GemmVariant::CANDIDATES.iter().any(|v| {
            v.kind == kind
                && gpu
                    .applicable_variants(GemmDims::dense(16, 16, 16))
                    .contains(v)
        });
        let tested_kind = GemmVariant::CANDIDATES
            .iter()
            .any(|v| v.kind == kind && tested.contains(&v.name()));
        assert_eq!(runs, tested_kind, "{kind:?}");
    }
}

#[test]
fn the_k_by_n_backward_matches_the_reference_at_ragged_shapes_and_scales() {
    let Some(gpu) = super::gpu() else { return };
    if !gpu.subgroups_ok() || !gpu.texture_operands_fit(GemmDims::dense(4, 4, 4)) {
        println!("skipped: the k-by-n kernels need subgroups of 8 and texture operands");
        return;
    }
    // Batches, inputs and outputs that leave partial texels, partial row
    // tiles, workgroups narrower and wider than the output, and k tails of
    // 1 to 3 (k is the output width for dX, the batch for dW).
    let shapes = [
        (1, 1, 1),
        (3, 5, 2),
        (13, 17, 19),
        (33, 64, 65),
        (70, 33, 130),
        (100, 257, 31),
        (256, 256, 256),
    ];
    let mut cases = 0;
    for &(bt, i, o) in &shapes {
        let shape = LinearShape::new(bt, i, o);
        // The upstream gradient at extreme scales (it scales dz, so all three
        // gradients), and the input too for identity (scaling x through a
        // ReLU would put z's cancellations on the wrong side of 0 in f32).
        for scale in [1e-20f32, 1.0, 1e15] {
            for act in [Activation::Relu, Activation::Tanh, Activation::Identity] {
                let x_scale = if act == Activation::Identity {
                    scale
                } else {
                    1.0
                };
                let x = grid_values(bt * i, (bt + i) as u64, x_scale);
                let w = grid_values(o * i, (o * 3 + i) as u64, 0.25);
                let b = grid_values(o, o as u64, 0.5);
                let dy = grid_values(bt * o, (bt * 7 + o) as u64, scale);
                let mag = magnitudes(&x, &w, &b, &dy, shape);
                let g = gpu
                    .linear_backward_with(act, &x, &w, &b, &dy, shape, BackwardGemms::KByN)
                    .unwrap();
                let r = reference::linear_backward(act, &x, &w, &b, &dy, shape).unwrap();
                for (what, ratio) in [
                    ("dx", worst_ratio(&g.dx, &r.dx, &mag.dx)),
                    ("dw", worst_ratio(&g.dw, &r.dw, &mag.dw)),
                    ("db", worst_ratio(&g.db, &r.db, &mag.db)),
                ] {
                    assert!(ratio <= 1.0, "{act} {bt}x{i}x{o} x{scale} {what}: {ratio}");
                }
                // db is summed in the same order as the buffer path's.
                let v = GemmVariant::CANDIDATES[0];
                let other = gpu
                    .linear_backward_with(act, &x, &w, &b, &dy, shape, BackwardGemms::Variant(v))
                    .unwrap();
                assert_eq!(g.db, other.db, "{act} {bt}x{i}x{o} x{scale}");
                cases += 1;
            }
        }
    }
    assert_eq!(cases, shapes.len() * 9);
}

#[test]
fn rows_past_the_dispatch_limit_are_split_not_dropped() {
    let Some(gpu) = super::gpu() else { return };
    let v = GemmVariant::CANDIDATES[0]; // scalar, 4 rows per workgroup
    let max = gpu.limits().max_compute_workgroups_per_dimension as usize;
    let m = max * v.tile_rows() as usize + 9;
    let (n, k) = (2usize, 4usize);
    let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32).collect();
    let b = vec![1.0f32, 2.0, 3.0, 4.0, -1.0, 0.0, 1.0, 0.5];
    let dims = GemmDims::dense(m, n, k);
    let at = gpu.upload(&a, m, k).unwrap();
    let bt = gpu.upload(&b, n, k).unwrap();
    let yt = gpu.zeros(m, n).unwrap();
    let y = run_gemm(&gpu, v, dims, &at, &bt, &yt);
    let (r, _) = gemm_ref(&a, &b, dims);
    assert_eq!(
        &y[y.len() - 20..],
        &r[r.len() - 20..],
        "the last rows were dropped"
    );
    assert_eq!(y, r);
}

#[test]
fn wrong_lengths_are_shape_errors_naming_both() {
    let Some(gpu) = super::gpu() else { return };
    let shape = LinearShape::new(2, 3, 4);
    let err = gpu
        .linear_forward(Activation::Relu, &[0.0; 5], &[0.0; 12], &[0.0; 4], shape)
        .unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("length 6") && text.contains("length 5"),
        "{text}"
    );
    let err = gpu
        .linear_backward(
            Activation::Relu,
            &[0.0; 6],
            &[0.0; 12],
            &[0.0; 4],
            &[0.0; 7],
            shape,
        )
        .unwrap_err();
    assert!(err.to_string().contains("dy"), "{err}");
    let err = reference::linear_forward(Activation::Relu, &[0.0; 6], &[0.0; 11], &[0.0; 4], shape)
        .unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err}");
}

/// A chained backward that cannot run as asked is a configuration error,
/// not a silent unchained one: chaining on the k-contiguous kernels, or
/// leaving the layer below's dz without a dX to make it from, or a saved
/// tensor of the wrong shape.
#[test]
fn a_chained_backward_that_cannot_run_is_an_error() {
    use crate::gpu::linear::DzChain;
    let Some(gpu) = super::gpu() else { return };
    let shape = LinearShape::new(8, 12, 16);
    let t = |r, c| gpu.zeros(r, c).unwrap();
    let (x, w, saved, dy) = (t(8, 12), t(16, 12), t(8, 16), t(8, 16));
    let (dx, dw, db) = (t(8, 12), t(16, 12), t(1, 16));
    let below_saved = t(8, 12);
    let wrong_saved = t(8, 13);
    let scratch = gpu.linear_scratch(shape).unwrap();
    let kn_ok = gpu.subgroups_ok() && gpu.texture_operands_fit(GemmDims::dense(8, 12, 16));
    let variant = GemmVariant::CANDIDATES[0];
    let below = Some((Activation::Tanh, &below_saved));
    let cases: Vec<(BackwardGemms, DzChain, bool, &str)> = vec![
        (
            BackwardGemms::Variant(variant),
            DzChain {
                ready: true,
                parity: 0,
                below: None,
            },
            true,
            "k-by-n",
        ),
        (
            BackwardGemms::Variant(variant),
            DzChain {
                ready: false,
                parity: 1,
                below,
            },
            true,
            "k-by-n",
        ),
        (
            BackwardGemms::KByN,
            DzChain {
                ready: false,
                parity: 0,
                below,
            },
            false,
            "without dX",
        ),
        (
            BackwardGemms::KByN,
            DzChain {
                ready: false,
                parity: 0,
                below: Some((Activation::Tanh, &wrong_saved)),
            },
            true,
            "saved below",
        ),
    ];
    for (gemms, chain, with_dx, needle) in cases {
        if gemms == BackwardGemms::KByN && !kn_ok {
            continue;
        }
        let mut encoder = gpu.device().create_command_encoder(&Default::default());
        let err = gpu
            .record_linear_backward(
                &mut encoder,
                Activation::Relu,
                &x,
                &w,
                &saved,
                &dy,
                &scratch,
                with_dx.then_some(&dx),
                &dw,
                &db,
                gemms,
                chain,
            )
            .unwrap_err();
        assert!(err.to_string().contains(needle), "{needle}: {err}");
    }
}

/// A first layer (no dX) whose batch is taller than a texture may be: the
/// backward's dW GEMM alone would fit the texture kinds (its depth is the
/// batch, a quarter of it in texels), but dz packed by rows would not, so
/// the backward takes buffers instead of failing.
#[test]
fn a_batch_taller_than_a_texture_runs_the_first_layer_backward() {
    let Some(gpu) = super::gpu() else { return };
    let max = gpu.limits().max_texture_dimension_2d as usize;
    let (bt, i, o) = (max + 5, 8, 32);
    let shape = LinearShape::new(bt, i, o);
    let x = grid_values(bt * i, 3, 1.0);
    let w = grid_values(o * i, 4, 0.25);
    let b = grid_values(o, 5, 0.5);
    let dy = grid_values(bt * o, 6, 1.0);
    let r = reference::linear_backward(Activation::Relu, &x, &w, &b, &dy, shape).unwrap();
    let up = |v: &[f32], rows, cols| gpu.upload(v, rows, cols).unwrap();
    let (xt, wt, yt) = (
        up(&x, bt, i),
        up(&w, o, i),
        up(&grid_values(bt * o, 7, 1.0), bt, o),
    );
    let dyt = up(&dy, bt, o);
    let (dw, db) = (gpu.zeros(o, i).unwrap(), gpu.zeros(1, o).unwrap());
    // f' of ReLU from y: run the forward for y first.
    let bias = up(&b, 1, o);
    let scratch = gpu.linear_scratch(shape).unwrap();
    let mut encoder = gpu.device().create_command_encoder(&Default::default());
    gpu.record_linear_forward(&mut encoder, Activation::Relu, &xt, &wt, &bias, &yt, None)
        .unwrap();
    gpu.record_linear_backward(
        &mut encoder,
        Activation::Relu,
        &xt,
        &wt,
        &yt,
        &dyt,
        &scratch,
        None,
        &dw,
        &db,
        BackwardGemms::Auto,
        crate::gpu::linear::DzChain::ALONE,
    )
    .unwrap();
    gpu.queue().submit([encoder.finish()]);
    let mag = magnitudes(&x, &w, &b, &dy, shape);
    let (gw, gb) = (gpu.download(&dw).unwrap(), gpu.download(&db).unwrap());
    assert!(worst_ratio(&gw, &r.dw, &mag.dw) <= 1.0);
    assert!(worst_ratio(&gb, &r.db, &mag.db) <= 1.0);
}

#[test]
fn a_class_choice_that_cannot_hold_a_larger_member_falls_back() {
    let Some(gpu) = super::gpu() else { return };
    // Rows past the 2-D texture limit, in the same shape class as 2000 rows.
    let limit = gpu.limits().max_texture_dimension_2d as usize;
    // Widths where the texture kinds win on lavapipe, so that the class's
    // choice (made at 2000 rows) is one that cannot hold limit + 1 rows.
    let (n_in, n_out) = (64, 256);
    let w = grid_values(n_out * n_in, 3, 0.125);
    let b = grid_values(n_out, 4, 0.5);
    for batch in [2000, limit + 1] {
        let shape = LinearShape::new(batch, n_in, n_out);
        let x = grid_values(batch * n_in, batch as u64, 1.0);
        let y = gpu
            .linear_forward(Activation::Relu, &x, &w, &b, shape)
            .unwrap();
        let r = reference::linear_forward(Activation::Relu, &x, &w, &b, shape).unwrap();
        let dims = GemmDims::dense(batch, n_out, n_in);
        let textures = gpu
            .applicable_variants(dims)
            .iter()
            .any(|v| v.kind.uses_textures());
        println!("{batch} rows: texture kinds applicable: {textures}");
        if batch > limit {
            assert!(!textures, "{batch} rows fit a texture of at most {limit}");
        }
        let worst = y
            .iter()
            .zip(&r)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst <= 1e-4, "{batch} rows: error {worst}");
    }
}

#[test]
fn texture_operands_copied_from_rows_longer_than_k_stay_exact() {
    let Some(gpu) = super::gpu() else { return };
    // Rows of 64 floats (256 bytes, which the copy engine can stride over)
    // holding k = 60 (whole texels: copied) or k = 62 (a partial texel: must
    // be packed, with zeros past k). The padding holds values that would show.
    let mut checked = 0;
    for k in [60, 62] {
        let (m, n, ld) = (70, 130, 64);
        let dims = GemmDims {
            m,
            n,
            k,
            lda: ld,
            ldb: ld,
            ldc: n,
        };
        for v in gpu
            .applicable_variants(dims)
            .into_iter()
            .filter(|v| v.kind.uses_textures())
        {
            let mut a = grid_values(m * ld, 11, 1.0);
            let mut b = grid_values(n * ld, 12, 0.5);
            for r in 0..m {
                a[r * ld + k..(r + 1) * ld].fill(1e30);
            }
            for r in 0..n {
                b[r * ld + k..(r + 1) * ld].fill(-1e30);
            }
            let at = gpu.upload(&a, m, ld).unwrap();
            let bt = gpu.upload(&b, n, ld).unwrap();
            let yt = gpu.zeros(m, n).unwrap();
            let y = run_gemm(&gpu, v, dims, &at, &bt, &yt);
            let (r, mag) = gemm_ref(&a, &b, dims);
            let ratio = worst_ratio(&y, &r, &mag);
            assert!(ratio <= 1.0, "{} at k = {k}: {ratio}", v.name());
            checked += 1;
        }
    }
    println!("{checked} (texture variant, k) cases checked");
}
