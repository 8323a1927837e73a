//! GPU training against the CPU reference: every optimizer, every head,
//! clipping; determinism; diagnostics.

mod common;

use fusedmlp::data::Dataset;
use fusedmlp::reference::mlp::ReferenceMlp;
use fusedmlp::train::Kernels;
use fusedmlp::{Activation, Head, Mlp, MlpConfig, Optimizer, Schedule, TrainConfig, Trainer};

fn small_data(rows: usize, features: usize, classes: usize, seed: u32) -> Dataset {
    let x: Vec<f32> = (0..rows * features)
        .map(|i| {
            (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 16) as f32 / 65536.0 - 0.5)
                * 2.0
        })
        .collect();
    let y: Vec<u32> = (0..rows as u32)
        .map(|r| (r * 7 + seed) % classes as u32)
        .collect();
    Dataset::new("small", x, y, features, classes).unwrap()
}

fn close(gpu: &[f32], cpu: &[f32], what: &str) {
    for (i, (&g, &c)) in gpu.iter().zip(cpu).enumerate() {
        assert!(
            (g - c).abs() <= 1e-4 * c.abs() + 1e-6,
            "{what}[{i}]: gpu {g} vs reference {c}"
        );
    }
}

/// [`steps_against_reference_on`] on the layered path, and on the fully
/// fused path where the net allows it (the first step, which is logged,
/// runs layered on both); returns the last run.
fn steps_against_reference(
    gpu: &fusedmlp::Gpu,
    config: &MlpConfig,
    train: &TrainConfig,
    data: &Dataset,
    what: &str,
) -> (Trainer, ReferenceMlp) {
    let mut layered = train.clone();
    layered.kernels = Kernels::Layered;
    let last =
        steps_against_reference_on(gpu, config, &layered, data, &format!("{what} (layered)"));
    let mut fused = train.clone();
    fused.kernels = Kernels::Fused;
    match Trainer::new(
        Mlp::new(gpu, config.clone()).unwrap(),
        fused.clone(),
        data,
        data,
    ) {
        Ok(_) => steps_against_reference_on(gpu, config, &fused, data, &format!("{what} (fused)")),
        Err(fusedmlp::Error::Config(m)) if m.contains("fused kernels cannot") => last,
        Err(e) => panic!("{what}: {e}"),
    }
}

/// Runs 5 GPU steps (`run_steps`, which walks the first epoch's order) and
/// 5 reference steps on the same rows in the same order, and holds every
/// layer's weight and bias and every normalisation's scale and shift to the
/// reference.
fn steps_against_reference_on(
    gpu: &fusedmlp::Gpu,
    config: &MlpConfig,
    train: &TrainConfig,
    data: &Dataset,
    what: &str,
) -> (Trainer, ReferenceMlp) {
    let mut trainer = Trainer::new(
        Mlp::new(gpu, config.clone()).unwrap(),
        train.clone(),
        data,
        data,
    )
    .unwrap();
    trainer.run_steps(5).unwrap();
    let mut reference = ReferenceMlp::new(config.clone()).unwrap();
    let order = fusedmlp::train::shuffle_order(train.seed, 0, data.len());
    let x: Vec<f32> = order
        .iter()
        .flat_map(|&r| data.row(r as usize).to_vec())
        .collect();
    let y: Vec<u32> = order.iter().map(|&r| data.labels()[r as usize]).collect();
    for _ in 0..5 {
        reference.train_step(&x, &y, train, 1).unwrap();
    }
    let got = trainer.model().parameters().unwrap();
    for (l, ((gw, gb), (rw, rb))) in got.iter().zip(&reference.params).enumerate() {
        close(gw, rw, &format!("{what} layer {l} weight"));
        close(gb, rb, &format!("{what} layer {l} bias"));
    }
    let norms = trainer.model().norm_values().unwrap();
    for (l, ((g, b), (rg, rb))) in norms.iter().zip(&reference.norms).enumerate() {
        close(g, rg, &format!("{what} layer {l} norm scale"));
        close(b, rb, &format!("{what} layer {l} norm shift"));
    }
    (trainer, reference)
}

/// The trained model's evaluation-mode logits on all of `data` equal the
/// reference's.
fn eval_matches_reference(trainer: &Trainer, reference: &ReferenceMlp, data: &Dataset, what: &str) {
    let logits = trainer
        .model()
        .predict_logits(data.features(), data.len())
        .unwrap();
    let want = reference.forward(data.features(), data.len()).unwrap();
    for (g, w) in logits.iter().zip(&want) {
        assert!(
            (g - w).abs() <= 1e-4 * w.abs() + 1e-4,
            "{what}: eval {g} vs {w}"
        );
    }
}

/// 3 hidden layers of 17 units and of 16, batch 13 (the whole set, so every
/// step sees the same rows in a shuffled order; the fused path): 5 GPU steps
/// equal 5 reference steps.
#[test]
fn gpu_steps_equal_reference_steps_for_every_optimizer_and_head() {
    let Some(gpu) = common::gpu() else { return };
    let data = small_data(13, 6, 4, 3);
    let sgd_full = Optimizer::Sgd {
        momentum: 0.9,
        nesterov: true,
        weight_decay: 0.01,
    };
    let rms_momentum = Optimizer::RmsProp {
        alpha: 0.9,
        eps: 1e-8,
        momentum: 0.5,
        weight_decay: 0.001,
    };
    let cases: Vec<(Optimizer, Head, Activation, Option<f32>, Schedule)> = vec![
        (
            Optimizer::sgd(),
            Head::Softmax,
            Activation::Tanh,
            None,
            Schedule::Constant,
        ),
        (
            sgd_full,
            Head::Softmax,
            Activation::Relu,
            None,
            Schedule::Cosine { min_lr: 0.0 },
        ),
        (
            Optimizer::adam(),
            Head::Softmax,
            Activation::Gelu,
            None,
            Schedule::Constant,
        ),
        (
            Optimizer::adamw(),
            Head::Sigmoid,
            Activation::Sigmoid,
            None,
            Schedule::Step {
                step_size: 2,
                gamma: 0.5,
            },
        ),
        (
            Optimizer::rmsprop(),
            Head::Mse,
            Activation::Elu { alpha: 1.0 },
            None,
            Schedule::Constant,
        ),
        (
            rms_momentum,
            Head::Softmax,
            Activation::LeakyRelu {
                negative_slope: 0.1,
            },
            Some(0.05),
            Schedule::Constant,
        ),
        (
            Optimizer::sgd(),
            Head::Softmax,
            Activation::Selu,
            Some(0.01),
            Schedule::Constant,
        ),
    ];
    // Width 17 and 16: the fused path's output-layer kernel has a scalar
    // form and a vec4 one (widths that are multiples of 4).
    let widths = cases.iter().flat_map(|c| [(c, 17), (c, 16)]);
    for (&(opt, head, act, clip, schedule), width) in widths {
        let mut config = MlpConfig::new(6, vec![width; 3], 4, act);
        config.head = head;
        config.seed = 11;
        let train = TrainConfig::default()
            .with_epochs(1)
            .with_batch_size(13)
            // RMSprop's first steps move every weight by about lr / sqrt(1 - alpha):
            // its usual rate keeps the comparison meaningful.
            .with_learning_rate(if opt.name() == "rmsprop" { 0.002 } else { 0.05 })
            .with_optimizer(opt)
            .with_schedule(schedule)
            .with_warmup_steps(1)
            .with_clip_norm(clip)
            .with_log_every(2)
            .with_seed(5);
        let model = Mlp::new(&gpu, config.clone()).unwrap();
        let mut trainer = Trainer::new(model, train.clone(), &data, &data).unwrap();
        trainer.run_steps(5).unwrap();
        let mut reference = ReferenceMlp::new(config).unwrap();
        for _ in 0..5 {
            // total_steps = 1 epoch × 1 step: what the trainer's schedule sees.
            reference
                .train_step(data.features(), data.labels(), &train, 1)
                .unwrap();
        }
        let got = trainer.model().parameters().unwrap();
        for (l, ((gw, gb), (rw, rb))) in got.iter().zip(&reference.params).enumerate() {
            let what = format!("{opt} {head} {act} clip {clip:?} width {width} layer {l}");
            close(gw, rw, &format!("{what} weight"));
            close(gb, rb, &format!("{what} bias"));
        }
        assert_eq!(trainer.logs().len(), 3, "steps 0, 2 and 4 are logged");
    }
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let Some(gpu) = common::gpu() else { return };
    let data = small_data(200, 8, 3, 1);
    let (train, val) = data.split(0.25, 3).unwrap();
    let run = || {
        let config = MlpConfig::deep(8, 6, 24, 3, Activation::Relu);
        let tc = TrainConfig::default()
            .with_epochs(3)
            .with_batch_size(16)
            .with_learning_rate(0.1)
            .with_log_every(5);
        let mut t = Trainer::new(Mlp::new(&gpu, config).unwrap(), tc, &train, &val).unwrap();
        let report = t.train("relu", |_, _| {}, |_| {}).unwrap();
        (t.model().parameters().unwrap(), report.epochs, report.steps)
    };
    let (p1, e1, s1) = run();
    let (p2, e2, s2) = run();
    assert_eq!(p1, p2, "parameters differ between two runs with one seed");
    assert_eq!(
        e1.iter()
            .map(|e| (e.train_loss, e.val_loss))
            .collect::<Vec<_>>(),
        e2.iter()
            .map(|e| (e.train_loss, e.val_loss))
            .collect::<Vec<_>>()
    );
    assert_eq!(s1, s2);
}

#[test]
fn diagnostics_match_the_reference_forward() {
    let Some(gpu) = common::gpu() else { return };
    let data = small_data(32, 5, 3, 9);
    // Both paths; the layered one also with hidden widths that differ (the
    // diagnostics read every hidden layer from the arenas at its offset).
    let cases = [Activation::Relu, Activation::Sigmoid, Activation::Tanh]
        .into_iter()
        .flat_map(|act| {
            [
                (MlpConfig::deep(5, 4, 12, 3, act), Kernels::Fused),
                (MlpConfig::deep(5, 4, 12, 3, act), Kernels::Layered),
                (
                    MlpConfig::new(5, vec![12, 7, 9, 12], 3, act),
                    Kernels::Layered,
                ),
            ]
        });
    for (config, kernels) in cases {
        let act = config.activation;
        let tc = TrainConfig::default()
            .with_epochs(1)
            .with_batch_size(32)
            .with_learning_rate(0.1)
            .with_log_every(1)
            .with_kernels(kernels);
        let mut t =
            Trainer::new(Mlp::new(&gpu, config.clone()).unwrap(), tc, &data, &data).unwrap();
        t.run_steps(1).unwrap();
        let log = &t.logs()[0];
        let reference = ReferenceMlp::new(config.clone()).unwrap();
        // The batch is the whole set in some order: statistics are order-free.
        let (outs, _) = reference.forward_all(data.features(), 32).unwrap();
        for (l, d) in log.layers.iter().enumerate() {
            let y = &outs[l + 1];
            let n = y.len() as f64;
            let mean = y.iter().map(|&v| v as f64).sum::<f64>() / n;
            let std = (y.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
            assert!(
                (d.activation_mean as f64 - mean).abs() < 1e-4,
                "{act} layer {l} mean {} vs {mean}",
                d.activation_mean
            );
            assert!(
                (d.activation_std as f64 - std).abs() < 1e-4,
                "{act} layer {l} std {} vs {std}",
                d.activation_std
            );
            let units = y.len() / 32;
            let dead = (0..units)
                .filter(|&u| (0..32).all(|r| y[r * units + u] == 0.0))
                .count();
            assert!(
                (d.dead_fraction - dead as f32 / units as f32).abs() < 1e-6,
                "{act} layer {l} dead"
            );
            let w = &reference.params[l].0;
            let wn = w.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
            assert!(
                (d.weight_norm as f64 - wn).abs() < 1e-4 * wn,
                "{act} layer {l} weight norm"
            );
            assert_eq!(
                d.histogram.iter().map(|&c| c as usize).sum::<usize>(),
                y.len(),
                "histogram counts"
            );
            assert!(d.weight_grad_norm.is_finite() && d.weight_grad_norm > 0.0);
            assert!(d.update_ratio > 0.0 && d.update_ratio.is_finite());
        }
    }
}

/// A logged step's per-layer gradient and update norms (one segmented
/// reduction over the arenas) equal the reference step's: with plain SGD
/// the update of each weight is `-lr · g`, so the reference's weight change
/// over one step gives both.
#[test]
fn logged_gradient_and_update_norms_match_the_reference_step() {
    let Some(gpu) = common::gpu() else { return };
    let lr = 0.1;
    // Input width 8: on the subgroup design the update is folded into the
    // gradient kernels, which then also store the gradients the norms read.
    for (input, kernels) in [
        (5, Kernels::Fused),
        (5, Kernels::Layered),
        (8, Kernels::Fused),
    ] {
        let data = small_data(32, input, 3, 4);
        let config = MlpConfig::deep(input, 3, 12, 3, Activation::Tanh);
        let tc = TrainConfig::default()
            .with_batch_size(32)
            .with_learning_rate(lr)
            .with_log_every(1)
            .with_kernels(kernels);
        let mut t = Trainer::new(
            Mlp::new(&gpu, config.clone()).unwrap(),
            tc.clone(),
            &data,
            &data,
        )
        .unwrap();
        t.run_steps(1).unwrap();
        let log = &t.logs()[0];
        let mut reference = ReferenceMlp::new(config.clone()).unwrap();
        let before = reference.params.clone();
        // The first batch is the whole set (in another order: sums differ
        // only in rounding).
        reference
            .train_step(data.features(), data.labels(), &tc, 1)
            .unwrap();
        for (l, d) in log.layers.iter().enumerate() {
            let change = |a: &[f32], b: &[f32]| {
                a.iter()
                    .zip(b)
                    .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
                    .sum::<f64>()
                    .sqrt()
            };
            let dw = change(&before[l].0, &reference.params[l].0);
            let db = change(&before[l].1, &reference.params[l].1);
            let close = |got: f64, want: f64, what: &str| {
                assert!(
                    (got - want).abs() <= 1e-3 * want + 1e-7,
                    "input {input}, kernels {kernels}, layer {l}: {what} {got} vs {want}"
                )
            };
            close(
                d.weight_grad_norm as f64,
                dw / lr as f64,
                "weight gradient norm",
            );
            close(
                d.bias_grad_norm as f64,
                db / lr as f64,
                "bias gradient norm",
            );
            close(
                d.update_ratio as f64 * d.weight_norm as f64,
                dw,
                "update norm",
            );
        }
    }
}

#[test]
fn training_steps_make_no_readbacks() {
    let Some(gpu) = common::gpu() else { return };
    let data = small_data(64, 4, 2, 2);
    let config = MlpConfig::deep(4, 3, 8, 2, Activation::Relu);
    let tc = TrainConfig::default()
        .with_epochs(1)
        .with_batch_size(8)
        .with_log_every(1_000_000);
    let mut t = Trainer::new(Mlp::new(&gpu, config).unwrap(), tc, &data, &data).unwrap();
    t.run_steps(2).unwrap(); // the first step is logged
    let before = t.readbacks();
    t.run_steps(5).unwrap();
    assert_eq!(t.readbacks(), before, "unlogged steps must not read back");
}

#[test]
fn bad_training_configurations_are_errors() {
    let Some(gpu) = common::gpu() else { return };
    let data = small_data(10, 4, 2, 2);
    let model = || Mlp::new(&gpu, MlpConfig::deep(4, 2, 8, 2, Activation::Relu)).unwrap();
    let ok = TrainConfig::default().with_batch_size(4);
    let cases = [
        (
            ok.clone().with_batch_size(0),
            "TrainConfig::batch_size is 0; it must be at least 1",
        ),
        (
            ok.clone().with_batch_size(11),
            "TrainConfig::batch_size is 11; it must be at most the training split's 10 rows",
        ),
        (
            ok.clone().with_learning_rate(-1.0),
            "TrainConfig::learning_rate is -1; it must be positive and finite",
        ),
        (
            ok.clone().with_learning_rate(f32::NAN),
            "TrainConfig::learning_rate is NaN",
        ),
        (ok.clone().with_epochs(0), "TrainConfig::epochs is 0"),
        (
            ok.clone().with_clip_norm(-1.0),
            "TrainConfig::clip_norm is -1",
        ),
    ];
    for (tc, want) in cases {
        let err = Trainer::new(model(), tc, &data, &data)
            .err()
            .expect("must fail");
        // Typed: the field in the library's own names, no command-line flag.
        assert!(
            err.field().is_some_and(|f| f.starts_with("TrainConfig::")),
            "{err}"
        );
        assert!(err.to_string().contains(want), "{err}");
        assert!(!err.to_string().contains("--"), "{err}");
    }
    let err = Mlp::new(&gpu, MlpConfig::deep(4, 2, 0, 2, Activation::Relu)).unwrap_err();
    assert_eq!(err.field(), Some("MlpConfig::hidden[0]"), "{err}");
    assert!(
        err.to_string().contains("is 0; it must be at least 1 unit"),
        "{err}"
    );
    let err = Trainer::new(
        Mlp::new(&gpu, MlpConfig::deep(5, 2, 8, 2, Activation::Relu)).unwrap(),
        TrainConfig::default().with_batch_size(4),
        &data,
        &data,
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("features"), "{err}");
    let many = small_data(10, 4, 5, 2);
    let err = Trainer::new(
        model(),
        TrainConfig::default().with_batch_size(4),
        &many,
        &many,
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("classes"), "{err}");
}

/// Residual connections, dropout and alpha dropout: 5 GPU steps equal 5
/// reference steps (the masks are the same hash on both sides).
#[test]
fn residual_and_dropout_steps_equal_reference_steps() {
    let Some(gpu) = common::gpu() else { return };
    let data = small_data(13, 6, 4, 8);
    let cases = [
        (Activation::Relu, true, 0.0, false),
        (Activation::Tanh, false, 0.3, false),
        (Activation::Gelu, true, 0.25, false),
        (Activation::Selu, false, 0.1, true),
        (Activation::Selu, true, 0.2, true),
    ];
    for (act, residual, dropout, alpha) in cases {
        let mut config = MlpConfig::new(6, vec![17, 17, 17], 4, act);
        config.seed = 21;
        config.residual = residual;
        config.dropout = dropout;
        config.alpha_dropout = alpha;
        let train = TrainConfig::default()
            .with_epochs(1)
            .with_batch_size(13)
            .with_learning_rate(0.05)
            // SGD: Adam's per-element normalisation would turn the bias
            // gradients before BatchNorm (zero but for rounding) into full steps.
            .with_optimizer(Optimizer::Sgd {
                momentum: 0.9,
                nesterov: false,
                weight_decay: 0.0,
            })
            .with_log_every(3)
            .with_seed(2);
        let mut trainer = Trainer::new(
            Mlp::new(&gpu, config.clone()).unwrap(),
            train.clone(),
            &data,
            &data,
        )
        .unwrap();
        trainer.run_steps(5).unwrap();
        let mut reference = ReferenceMlp::new(config).unwrap();
        // The batch is the whole set in a shuffled order, but dropout masks
        // index batch rows: the reference must see the same row order.
        let order = fusedmlp::train::shuffle_order(2, 0, 13);
        let x: Vec<f32> = order
            .iter()
            .flat_map(|&r| data.row(r as usize).to_vec())
            .collect();
        let y: Vec<u32> = order.iter().map(|&r| data.labels()[r as usize]).collect();
        for _ in 0..5 {
            reference.train_step(&x, &y, &train, 1).unwrap();
        }
        let got = trainer.model().parameters().unwrap();
        for (l, ((gw, gb), (rw, rb))) in got.iter().zip(&reference.params).enumerate() {
            let what =
                format!("{act} residual {residual} dropout {dropout} alpha {alpha} layer {l}");
            close(gw, rw, &format!("{what} weight"));
            close(gb, rb, &format!("{what} bias"));
        }
    }
}

#[test]
fn dropout_keeps_the_expected_fraction_and_is_off_in_evaluation() {
    let keep = (0..100_000u32)
        .filter(|&i| {
            fusedmlp::reference::mlp::dropout_keep(
                12345,
                7,
                i,
                (0.3f64 * (1u64 << 24) as f64) as u32,
            )
        })
        .count();
    assert!((keep as f64 / 100_000.0 - 0.7).abs() < 0.01, "kept {keep}");
    let Some(gpu) = common::gpu() else { return };
    let data = small_data(40, 6, 3, 1);
    let mut config = MlpConfig::deep(6, 3, 16, 3, Activation::Relu);
    config.dropout = 0.5;
    let model = Mlp::new(&gpu, config.clone()).unwrap();
    let mut no_drop = config.clone();
    no_drop.dropout = 0.0;
    // Evaluation ignores dropout: the same logits as the net without it.
    let a = model.predict_logits(data.features(), 40).unwrap();
    let b = Mlp::new(&gpu, no_drop)
        .unwrap()
        .predict_logits(data.features(), 40)
        .unwrap();
    assert_eq!(a, b);
}

#[test]
fn residual_nets_predict_as_the_reference() {
    let Some(gpu) = common::gpu() else { return };
    let data = small_data(30, 8, 3, 4);
    let mut config = MlpConfig::deep(8, 6, 8, 3, Activation::Relu);
    config.residual = true;
    config.seed = 5;
    let got = Mlp::new(&gpu, config.clone())
        .unwrap()
        .predict_logits(data.features(), 30)
        .unwrap();
    let want = ReferenceMlp::new(config)
        .unwrap()
        .forward(data.features(), 30)
        .unwrap();
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() <= 1e-4 * w.abs() + 1e-5, "{g} vs {w}");
    }
}

/// Learned PReLU slopes, per layer and per unit: 5 GPU steps equal 5
/// reference steps, the slopes move, and a checkpoint keeps them.
#[test]
fn learned_prelu_steps_equal_reference_steps() {
    let Some(gpu) = common::gpu() else { return };
    let data = small_data(13, 6, 4, 3);
    for mode in [
        fusedmlp::nn::PreluMode::PerLayer,
        fusedmlp::nn::PreluMode::PerUnit,
    ] {
        let mut config = MlpConfig::new(6, vec![17, 17, 17], 4, Activation::Prelu { weight: 0.25 });
        config.seed = 4;
        config.learn_prelu = Some(mode);
        // Plain SGD: Adam divides by the gradient's own size, so elements
        // whose gradient is rounding noise move by a whole step on either
        // path and no tolerance tells the paths apart.
        let train = TrainConfig::default()
            .with_epochs(1)
            .with_batch_size(13)
            .with_learning_rate(0.05)
            .with_optimizer(Optimizer::sgd())
            .with_clip_norm(0.5)
            .with_log_every(2)
            .with_seed(1);
        let mut trainer = Trainer::new(
            Mlp::new(&gpu, config.clone()).unwrap(),
            train.clone(),
            &data,
            &data,
        )
        .unwrap();
        trainer.run_steps(5).unwrap();
        let mut reference = ReferenceMlp::new(config.clone()).unwrap();
        for _ in 0..5 {
            reference
                .train_step(data.features(), data.labels(), &train, 1)
                .unwrap();
        }
        let got = trainer.model().parameters().unwrap();
        for (l, ((gw, gb), (rw, rb))) in got.iter().zip(&reference.params).enumerate() {
            close(gw, rw, &format!("{mode:?} layer {l} weight"));
            close(gb, rb, &format!("{mode:?} layer {l} bias"));
        }
        let slopes = trainer.model().slope_values().unwrap();
        for (l, (g, r)) in slopes.iter().zip(&reference.slopes).enumerate() {
            assert_eq!(g.len(), config.slope_count(l));
            close(g, r, &format!("{mode:?} layer {l} slopes"));
        }
        assert!(
            slopes[0].iter().any(|&a| a != 0.25),
            "the slopes must learn"
        );
        // The checkpoint keeps the slopes under nn.PReLU's name.
        let dir =
            std::env::temp_dir().join(format!("fusedmlp-prelu-{}-{mode:?}", std::process::id()));
        let path = dir.join("p.safetensors");
        trainer.save_checkpoint(&path).unwrap();
        let c = fusedmlp::train::Checkpoint::load(&path).unwrap();
        assert_eq!(c.slopes, slopes);
        let bytes = std::fs::read(&path).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(
            st.tensor("activations.0.weight").unwrap().shape(),
            &[config.slope_count(0)]
        );
        let resumed = Trainer::resume(&gpu, &c, &data, &data, None).unwrap();
        assert_eq!(resumed.model().slope_values().unwrap(), slopes);
        let _ = std::fs::remove_dir_all(dir);
    }
    let mut bad = MlpConfig::deep(6, 2, 8, 3, Activation::Relu);
    bad.learn_prelu = Some(fusedmlp::nn::PreluMode::PerUnit);
    assert!(Mlp::new(&gpu, bad)
        .unwrap_err()
        .to_string()
        .contains("prelu"));
}

/// LayerNorm before and after the activation (alone, with residual
/// connections and with dropout): 5 GPU steps equal 5 reference steps, the
/// scale and shift learn, checkpoints keep them as nn.LayerNorm names them,
/// and evaluation applies them.
#[test]
fn layer_norm_steps_equal_reference_steps() {
    use fusedmlp::nn::NormPlacement;
    let Some(gpu) = common::gpu() else { return };
    let data = small_data(13, 6, 4, 6);
    let cases = [
        (Activation::Tanh, NormPlacement::Before, false, 0.0),
        (Activation::Sigmoid, NormPlacement::After, false, 0.0),
        (Activation::Relu, NormPlacement::Before, true, 0.2),
        (Activation::Gelu, NormPlacement::After, true, 0.0),
    ];
    for (act, placement, residual, dropout) in cases {
        let mut config = MlpConfig::new(6, vec![17, 17, 17], 4, act);
        config.seed = 8;
        config.layer_norm = Some(placement);
        config.residual = residual;
        config.dropout = dropout;
        let train = TrainConfig::default()
            .with_epochs(1)
            .with_batch_size(13)
            .with_learning_rate(0.05)
            .with_optimizer(Optimizer::Sgd {
                momentum: 0.9,
                nesterov: false,
                weight_decay: 0.0,
            })
            .with_clip_norm(2.0)
            .with_log_every(2)
            .with_seed(3);
        let what = format!("{act} {placement:?} residual {residual} dropout {dropout}");
        let (mut trainer, reference) = steps_against_reference(&gpu, &config, &train, &data, &what);
        let norms = trainer.model().norm_values().unwrap();
        assert!(
            norms[0].0.iter().any(|&v| v != 1.0),
            "{what}: the scale must learn"
        );
        // Evaluation applies the norms (and no dropout).
        eval_matches_reference(&trainer, &reference, &data, &what);
        // Checkpoints keep them under nn.LayerNorm's names, and resume.
        let dir = std::env::temp_dir().join(format!(
            "fusedmlp-ln-{}-{placement:?}-{residual}",
            std::process::id()
        ));
        let path = dir.join("n.safetensors");
        trainer.save_checkpoint(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(st.tensor("norms.0.weight").unwrap().shape(), &[17]);
        assert_eq!(st.tensor("norms.2.bias").unwrap().shape(), &[17]);
        let c = fusedmlp::train::Checkpoint::load(&path).unwrap();
        assert_eq!(c.norms, norms);
        let resumed = Trainer::resume(&gpu, &c, &data, &data, None).unwrap();
        assert_eq!(resumed.model().norm_values().unwrap(), norms);
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// BatchNorm1d before and after the activation (alone, with residual
/// connections and dropout, and on inputs a thousand times larger): 5 GPU
/// steps equal 5 reference steps, in the parameters, the scale and shift
/// and the running estimates; evaluation uses the running estimates;
/// checkpoints keep them as nn.BatchNorm1d names them and a resumed run
/// continues exactly.
#[test]
fn batch_norm_steps_equal_reference_steps() {
    use fusedmlp::nn::NormPlacement;
    let Some(gpu) = common::gpu() else { return };
    let cases = [
        (Activation::Sigmoid, NormPlacement::Before, false, 0.0, 1.0),
        (Activation::Tanh, NormPlacement::After, false, 0.0, 1.0),
        (Activation::Relu, NormPlacement::Before, true, 0.2, 1.0),
        (Activation::Gelu, NormPlacement::After, true, 0.0, 1000.0),
    ];
    for (act, placement, residual, dropout, scale) in cases {
        let (name, mut features, labels, n_features, n_classes) =
            small_data(13, 6, 4, 9).into_parts();
        for v in &mut features {
            *v *= scale;
        }
        let data = Dataset::new(name, features, labels, n_features, n_classes).unwrap();
        let mut config = MlpConfig::new(6, vec![17, 17, 17], 4, act);
        config.seed = 5;
        config.batch_norm = Some(placement);
        config.residual = residual;
        config.dropout = dropout;
        let train = TrainConfig::default()
            .with_epochs(1)
            .with_batch_size(13)
            .with_learning_rate(0.05)
            .with_optimizer(Optimizer::Sgd {
                momentum: 0.9,
                nesterov: false,
                weight_decay: 0.0,
            })
            .with_clip_norm(2.0)
            .with_log_every(2)
            .with_seed(3);
        let what = format!("{act} {placement:?} residual {residual} dropout {dropout} x{scale}");
        let (mut trainer, reference) = steps_against_reference(&gpu, &config, &train, &data, &what);
        let norms = trainer.model().norm_values().unwrap();
        let running = trainer.model().running_stat_values().unwrap();
        assert_eq!(running.len(), 4);
        assert!(running[3].0.is_empty(), "the output layer has no norm");
        for (l, ((m, v), (rm, rv))) in running.iter().zip(&reference.running).enumerate() {
            close(m, rm, &format!("{what} layer {l} running mean"));
            close(v, rv, &format!("{what} layer {l} running var"));
        }
        assert!(
            running[0].0.iter().any(|&v| v != 0.0) && running[0].1.iter().any(|&v| v != 1.0),
            "{what}: the running estimates must move"
        );
        assert!(
            norms[0].0.iter().any(|&v| v != 1.0),
            "{what}: the scale must learn"
        );
        // Evaluation uses the running estimates (after 5 steps at momentum
        // 0.1 they are far from the batch statistics, so a batch-statistics
        // evaluation would not match).
        eval_matches_reference(&trainer, &reference, &data, &what);
        // Checkpoints keep them under nn.BatchNorm1d's names; a resumed run
        // continues exactly as the original.
        let dir = std::env::temp_dir().join(format!(
            "fusedmlp-bn-{}-{placement:?}-{residual}",
            std::process::id()
        ));
        let path = dir.join("n.safetensors");
        trainer.save_checkpoint(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        for name in [
            "norms.0.weight",
            "norms.0.bias",
            "norms.2.running_mean",
            "norms.2.running_var",
        ] {
            assert_eq!(st.tensor(name).unwrap().shape(), &[17], "{name}");
        }
        assert!(st.tensor("norms.3.running_mean").is_err());
        let c = fusedmlp::train::Checkpoint::load(&path).unwrap();
        assert_eq!(c.running, running);
        let mut resumed = Trainer::resume(&gpu, &c, &data, &data, None).unwrap();
        resumed.run_steps(2).unwrap();
        trainer.run_steps(2).unwrap();
        assert_eq!(
            resumed.model().running_stat_values().unwrap(),
            trainer.model().running_stat_values().unwrap()
        );
        assert_eq!(
            resumed.model().parameters().unwrap(),
            trainer.model().parameters().unwrap()
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// BatchNorm's configuration mistakes are refused with errors that say what
/// to change: one-row training batches, and two normalisations at once.
#[test]
fn batch_norm_refuses_bad_configurations() {
    use fusedmlp::nn::NormPlacement;
    let Some(gpu) = common::gpu() else { return };
    let data = small_data(13, 6, 4, 9);
    let mut config = MlpConfig::new(6, vec![8, 8], 4, Activation::Relu);
    config.batch_norm = Some(NormPlacement::Before);
    let train = TrainConfig::default().with_batch_size(1);
    let err = Trainer::new(Mlp::new(&gpu, config.clone()).unwrap(), train, &data, &data)
        .err()
        .expect("batch size 1 must be refused")
        .to_string();
    assert!(
        err.contains("TrainConfig::batch_size is 1; it must be at least 2 with BatchNorm"),
        "{err}"
    );
    config.layer_norm = Some(NormPlacement::After);
    let err = Mlp::new(&gpu, config).expect_err("two norms").to_string();
    assert!(err.contains("MlpConfig::batch_norm"), "{err}");
}

/// Regression: trainers on several threads share one device, and one
/// thread's poll can run another's map callbacks; collecting logged steps
/// must wait for its own buffers rather than fail with "a log buffer was
/// never mapped".
#[test]
fn trainers_on_several_threads_share_the_device() {
    let Some(gpu) = common::gpu() else { return };
    let data = small_data(64, 6, 4, 2);
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let gpu = gpu.clone();
            let data = data.clone();
            std::thread::spawn(move || {
                let mut config = MlpConfig::new(6, vec![16, 16], 4, Activation::Tanh);
                config.seed = t;
                let train = TrainConfig::default()
                    .with_epochs(1)
                    .with_batch_size(16)
                    .with_log_every(1);
                for _ in 0..3 {
                    let mut trainer = Trainer::new(
                        Mlp::new(&gpu, config.clone()).unwrap(),
                        train.clone(),
                        &data,
                        &data,
                    )
                    .unwrap();
                    trainer.run_steps(12).unwrap();
                    assert_eq!(trainer.logs().len(), 12, "thread {t}");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("a training thread failed");
    }
}

/// A 100-layer residual ReLU net under He initialisation doubles its
/// activations' variance at every block (x + f(x) with Var f(x) ≈ Var x), so
/// its last layer starts around 2^50 times larger than its first;
/// `scale_residual_init` keeps it within a small factor, and scales exactly
/// the residual branches' initial parameters.
#[test]
fn scaled_residual_init_keeps_a_100_layer_net_bounded() {
    let Some(gpu) = common::gpu() else { return };
    let data = small_data(64, 6, 4, 4);
    let mut config = MlpConfig::deep(6, 100, 32, 4, Activation::Relu);
    config.residual = true;
    let mut scaled = config.clone();
    scaled.scale_residual_init = true;
    // The branches (layers 1..100) are scaled by 1/√99; the first hidden
    // layer and the output layer are not.
    let (plain_p, scaled_p) = (config.initial_parameters(), scaled.initial_parameters());
    assert_eq!(scaled.residual_blocks(), 99);
    let k = 1.0 / 99f32.sqrt();
    for (l, ((pw, _), (sw, _))) in plain_p.iter().zip(&scaled_p).enumerate() {
        let want = if (1..100).contains(&l) { k } else { 1.0 };
        for (a, b) in pw.iter().zip(sw) {
            assert!((a * want - b).abs() <= 1e-6 * a.abs(), "layer {l}");
        }
    }
    let last_std = |config: MlpConfig| -> f32 {
        let train = TrainConfig::default()
            .with_epochs(1)
            .with_batch_size(64)
            .with_log_every(1);
        let mut t = Trainer::new(Mlp::new(&gpu, config).unwrap(), train, &data, &data).unwrap();
        t.run_steps(1).unwrap();
        let layers = &t.logs()[0].layers;
        layers[99].activation_std / layers[0].activation_std
    };
    let plain = last_std(config);
    let bounded = last_std(scaled);
    // (Regression, too: the diagnostics' std once overflowed to 0 for
    // activations past 1e19.)
    assert!(
        plain > 1e12,
        "plain residual: last/first activation std {plain}"
    );
    assert!(
        bounded < 100.0,
        "scaled residual: last/first activation std {bounded}"
    );
    // Asking for the scaling without residual connections is an error.
    let mut bad = MlpConfig::deep(6, 3, 8, 4, Activation::Relu);
    bad.scale_residual_init = true;
    let err = bad.validate().unwrap_err();
    assert_eq!(err.field(), Some("MlpConfig::scale_residual_init"), "{err}");
    assert!(err.to_string().contains("MlpConfig::residual"), "{err}");
}

/// The fully fused path at the shapes it must survive: batches that are not
/// a multiple of its row block (1, 3, 33), widths that are not a multiple
/// of 4 (17, 100), depth 1 and 100, input widths 1 and 784; and every
/// activation at a small shape. Each against the reference step (and the
/// layered path, through the shared helper).
#[test]
fn fused_path_steps_equal_reference_steps_at_ragged_shapes() {
    let Some(gpu) = common::gpu() else { return };
    let shapes = [
        // (batch = rows, input, width, depth)
        (1, 1, 17, 1),
        (3, 784, 100, 2),
        (33, 20, 17, 3),
        (3, 5, 16, 100),
    ];
    for (rows, input, width, depth) in shapes {
        let data = small_data(rows, input, 3, 5);
        // ReLU under He initialisation: a 100-layer tanh net under Xavier
        // amplifies rounding from layer to layer (both paths then differ
        // from the f64 reference by far more than the tolerance).
        let mut config = MlpConfig::deep(input, depth, width, 3, Activation::Relu);
        config.seed = 2;
        // Plain SGD, as above.
        let train = TrainConfig::default()
            .with_batch_size(rows)
            .with_learning_rate(0.05)
            .with_optimizer(Optimizer::sgd())
            .with_clip_norm(0.5);
        steps_against_reference(
            &gpu,
            &config,
            &train,
            &data,
            &format!("{rows}x{input}x{width}x{depth}"),
        );
    }
    let data = small_data(11, 4, 3, 9);
    for act in Activation::ALL {
        let mut config = MlpConfig::deep(4, 3, 17, 3, act);
        config.seed = 4;
        let train = TrainConfig::default()
            .with_batch_size(11)
            .with_learning_rate(0.02)
            .with_optimizer(Optimizer::sgd());
        steps_against_reference(&gpu, &config, &train, &data, &format!("{act}"));
    }
}

/// The layered path where its backward runs the k-by-n GEMMs (texture
/// operands and subgroups of 8, at about 128³ and up): layers whose dX
/// GEMM leaves the layer below's dz directly, a width that is not a
/// multiple of 4 (partial texels, k tails) and one that is, f' from z
/// (tanh) and from y (ReLU), a residual connection (which keeps dX in
/// memory). Against the reference step; where the k-by-n path runs, only
/// the top layer of each linked run makes its own dz.
#[test]
fn linked_k_by_n_backward_steps_equal_reference_steps() {
    let Some(gpu) = common::gpu() else { return };
    let data = small_data(160, 40, 3, 7);
    for (width, act, residual) in [
        (130, Activation::Tanh, false),
        (132, Activation::Relu, false),
        (132, Activation::Gelu, true),
    ] {
        let mut config = MlpConfig::deep(40, 4, width, 3, act);
        config.seed = 3;
        config.residual = residual;
        let train = TrainConfig::default()
            .with_batch_size(160)
            .with_learning_rate(0.02)
            .with_optimizer(Optimizer::sgd())
            .with_kernels(Kernels::Layered);
        let what = format!("{width} {act} residual {residual}");
        let (trainer, _) = steps_against_reference_on(&gpu, &config, &train, &data, &what);
        let plan = format!(
            "{:?}",
            trainer.step_plan(false).expect("an unlogged step ran")
        );
        let own_dz = plan.matches("dispatch dz_packed_only").count();
        println!("{what}: {own_dz} layers make their own dz in the k-by-n backward");
        // Where the hidden layers run the k-by-n GEMMs, linked, only the top
        // one makes its dz; residual connections (layers 1-3) keep each
        // layer's dX in memory, so each makes its own.
        if residual {
            assert!(own_dz == 0 || own_dz >= 3, "{what}\n{plan}");
        } else {
            assert!(own_dz <= 1, "{what}\n{plan}");
        }
    }
}

/// Plain SGD folded into the fused path's gradient kernels (the output
/// layer's and the stack's weight gradients, no optimizer or finite-check
/// dispatch): input and hidden widths multiples of 4, SGD without
/// clipping. Momentum, Nesterov and weight decay, logged and unlogged
/// steps, a width that fills no whole tile of outputs (12) and a single
/// hidden layer: 5 GPU steps equal 5 reference steps.
#[test]
fn folded_sgd_steps_equal_reference_steps() {
    let Some(gpu) = common::gpu() else { return };
    let data = small_data(13, 8, 3, 7);
    let optimizers = [
        Optimizer::sgd(),
        Optimizer::Sgd {
            momentum: 0.9,
            nesterov: false,
            weight_decay: 0.0,
        },
        Optimizer::Sgd {
            momentum: 0.9,
            nesterov: true,
            weight_decay: 0.01,
        },
    ];
    let nets = [
        (16, 3, Activation::Relu),
        (12, 2, Activation::Tanh),
        (16, 1, Activation::Gelu),
    ];
    for opt in optimizers {
        for (width, depth, act) in nets {
            let mut config = MlpConfig::deep(8, depth, width, 3, act);
            config.seed = 3;
            for log_every in [2, u64::MAX] {
                let train = TrainConfig::default()
                    .with_batch_size(13)
                    .with_learning_rate(0.05)
                    .with_optimizer(opt)
                    .with_kernels(Kernels::Fused)
                    .with_log_every(log_every);
                let what = format!("{opt} {act} width {width} depth {depth} log every {log_every}");
                let (trainer, _) = steps_against_reference_on(&gpu, &config, &train, &data, &what);
                // Where the stack runs the subgroup design on a device
                // allowing the 14 storage buffers a stage the folded output
                // layer binds (llvmpipe), the update is folded: a step is
                // the forward, the output layer, the backward and the
                // weight gradients.
                if gpu.fused_kernel() == fusedmlp::gpu::FusedKernel::Subgroup
                    && gpu.limits().max_storage_buffers_per_shader_stage >= 14
                {
                    let plan = trainer
                        .step_plan(log_every == 2)
                        .expect("the trainer keeps its step's plan");
                    let most = if log_every == 2 { 10 } else { 4 };
                    assert!(
                        plan.dispatches() <= most,
                        "{what}: {} dispatches, at most {most} with SGD folded in:\n{plan:?}",
                        plan.dispatches()
                    );
                }
            }
        }
    }
}

/// Two runs on the fused path with the same seed give bit-identical
/// parameters; so do two on the layered path.
#[test]
fn both_paths_are_bit_identical_from_run_to_run() {
    let Some(gpu) = common::gpu() else { return };
    let data = small_data(64, 9, 4, 1);
    let config = MlpConfig::deep(9, 6, 24, 4, Activation::Gelu);
    for kernels in [Kernels::Fused, Kernels::Layered] {
        let train = TrainConfig::default()
            .with_batch_size(16)
            .with_optimizer(Optimizer::adam())
            .with_kernels(kernels);
        let run = || {
            let mut t = Trainer::new(
                Mlp::new(&gpu, config.clone()).unwrap(),
                train.clone(),
                &data,
                &data,
            )
            .unwrap();
            t.run_steps(12).unwrap();
            t.model()
                .parameters()
                .unwrap()
                .iter()
                .flat_map(|(w, b)| w.iter().chain(b).map(|v| v.to_bits()).collect::<Vec<_>>())
                .collect::<Vec<u32>>()
        };
        assert_eq!(run(), run(), "{kernels}");
    }
}

/// Kernels::Fused on a net the fused stack cannot run is an error that says
/// why; Kernels::Auto falls back to the layered path there.
#[test]
fn fused_kernels_refuse_nets_they_cannot_run() {
    let Some(gpu) = common::gpu() else { return };
    let data = small_data(32, 4, 3, 1);
    let mut config = MlpConfig::deep(4, 3, 8, 3, Activation::Relu);
    config.residual = true;
    let mut train = TrainConfig::default()
        .with_batch_size(8)
        .with_kernels(Kernels::Fused);
    let err = Trainer::new(
        Mlp::new(&gpu, config.clone()).unwrap(),
        train.clone(),
        &data,
        &data,
    )
    .err()
    .expect("residual nets are not fused");
    assert!(err.to_string().contains("residual connections"), "{err}");
    let mut wide = MlpConfig::deep(4, 2, 200, 3, Activation::Relu);
    wide.seed = 1;
    let err = Trainer::new(Mlp::new(&gpu, wide).unwrap(), train.clone(), &data, &data)
        .err()
        .expect("width 200 is not fused");
    assert!(err.to_string().contains("200"), "{err}");
    train.kernels = Kernels::Auto;
    Trainer::new(Mlp::new(&gpu, config).unwrap(), train, &data, &data).unwrap();
}

/// The step's one finite check names where a NaN first appears: poisoning
/// one layer's bias makes that layer's output the first non-finite value,
/// on both kernel paths, for even and odd hidden layers (their outputs live
/// in two buffers) and for the output layer (the logits).
#[test]
fn the_one_finite_check_names_the_first_non_finite_layer() {
    let Some(gpu) = common::gpu() else { return };
    let data = small_data(64, 8, 3, 5);
    for kernels in [Kernels::Fused, Kernels::Layered] {
        for poisoned in [1usize, 2, 4] {
            let model = Mlp::new(&gpu, MlpConfig::deep(8, 4, 16, 3, Activation::Identity)).unwrap();
            let width = model.bias(poisoned).unwrap().len();
            gpu.write(model.bias(poisoned).unwrap(), &vec![f32::NAN; width])
                .unwrap();
            let tc = TrainConfig::default()
                .with_batch_size(16)
                .with_log_every(u64::MAX)
                .with_kernels(kernels);
            let mut t = Trainer::new(model, tc, &data, &data).unwrap();
            t.run_steps(3).unwrap();
            let d = t.divergence().unwrap().expect("a NaN bias must be caught");
            assert_eq!(
                (d.step, d.layer, d.tensor.as_str()),
                (0, Some(poisoned), "activation"),
                "kernels {kernels}, NaN in layer {poisoned}'s bias: {d}"
            );
        }
        // A clean run raises no flag.
        let model = Mlp::new(&gpu, MlpConfig::deep(8, 4, 16, 3, Activation::Identity)).unwrap();
        let tc = TrainConfig::default()
            .with_batch_size(16)
            .with_kernels(kernels);
        let mut t = Trainer::new(model, tc, &data, &data).unwrap();
        t.run_steps(3).unwrap();
        assert!(t.divergence().unwrap().is_none());
    }
}

/// A logged step's global gradient norm is the norm of every gradient
/// together, on both paths, with and without clipping (the per-tensor sums
/// of squares added in slot order, as clipping adds them before the
/// update).
#[test]
fn the_logged_global_norm_is_the_norm_of_every_gradient() {
    let Some(gpu) = common::gpu() else { return };
    let data = small_data(48, 7, 3, 2);
    for kernels in [Kernels::Fused, Kernels::Layered] {
        for clip in [None, Some(0.5)] {
            let config = MlpConfig::deep(7, 3, 12, 3, Activation::Tanh);
            let tc = TrainConfig::default()
                .with_batch_size(16)
                .with_log_every(1)
                .with_clip_norm(clip)
                .with_kernels(kernels);
            let mut t = Trainer::new(Mlp::new(&gpu, config).unwrap(), tc, &data, &data).unwrap();
            t.run_steps(3).unwrap();
            assert_eq!(t.logs().len(), 3);
            for log in t.logs() {
                let sum: f64 = log
                    .layers
                    .iter()
                    .map(|l| {
                        (l.weight_grad_norm as f64).powi(2) + (l.bias_grad_norm as f64).powi(2)
                    })
                    .sum();
                let expected = sum.sqrt();
                let got = log.grad_global_norm as f64;
                assert!(
                    got > 0.0 && (got - expected).abs() <= 1e-4 * expected,
                    "kernels {kernels}, clip {clip:?}, step {}: global norm {got}, \
                     per-tensor norms give {expected}",
                    log.step
                );
            }
        }
    }
}
