//! Inputs that once panicked or aborted the process now give a result or an
//! error: an empty prediction, nets too large for the device or for the
//! platform's integers.

mod common;

use fusedmlp::{Activation, Error, Mlp, MlpConfig};

/// Regression: `predict_logits(&[], 0)` panicked in `bytemuck::cast_slice`
/// (an empty byte vector is not aligned for f32).
#[test]
fn predicting_zero_rows_gives_zero_logits() {
    let Some(gpu) = common::gpu() else { return };
    let model = Mlp::new(&gpu, MlpConfig::deep(4, 2, 8, 3, Activation::Relu)).unwrap();
    assert_eq!(model.predict_logits(&[], 0).unwrap(), Vec::<f32>::new());
    // Zero rows with values, or values that are not whole rows: errors.
    assert!(matches!(
        model.predict_logits(&[1.0; 4], 0),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        model.predict_logits(&[1.0; 5], 1),
        Err(Error::Shape { .. })
    ));
    // A row count whose value count overflows is an error, not a panic.
    assert!(model.predict_logits(&[1.0; 4], usize::MAX).is_err());
    // And the model still predicts.
    assert_eq!(model.predict_logits(&[0.5; 8], 2).unwrap().len(), 6);
}

/// Regression: width 1,000,000 aborted the process (`memory allocation of
/// 4000000000000 bytes failed`): the host weights were drawn before any size
/// check.
#[test]
fn a_net_too_large_for_the_device_is_an_error_before_any_allocation() {
    let Some(gpu) = common::gpu() else { return };
    // 40,000 x 40,000 floats (6.4 GB) exceed every adapter's buffer limit.
    let err = Mlp::new(&gpu, MlpConfig::deep(64, 2, 40_000, 10, Activation::Relu)).unwrap_err();
    println!("{err}");
    assert!(matches!(err, Error::DeviceLimit { .. }), "{err}");
    assert!(err.to_string().contains("layer 1's weight"), "{err}");
    // Wider still: the element count does not fit the kernels' u32 indices
    // (on wasm32, where the playground's width=100000 panicked, it
    // overflows usize itself).
    for width in [100_000, 1_000_000] {
        let err = Mlp::new(&gpu, MlpConfig::deep(64, 2, width, 10, Activation::Relu)).unwrap_err();
        println!("{err}");
        assert!(err.to_string().contains("2^32"), "{err}");
    }
    let huge = MlpConfig::deep(usize::MAX / 2, 1, usize::MAX / 2, 2, Activation::Relu);
    assert!(huge.validate().is_err());
}

/// Regression: the playground's `width=10000` (20 layers of 10,000) killed
/// the WebAssembly module: each layer's weight (400 MB) fitted a buffer, so
/// 8 GB of host weights were drawn before the arena, one buffer for all
/// layers, was sized. The whole net is checked before anything is drawn.
#[test]
fn a_net_whose_layers_fit_but_whose_arena_does_not_is_an_error() {
    let Some(gpu) = common::gpu() else { return };
    let max = gpu
        .limits()
        .max_buffer_size
        .min(gpu.limits().max_storage_buffer_binding_size);
    // The widest square layer that fits one buffer, and enough of them to
    // exceed it together.
    let width = ((max / 4) as f64).sqrt() as usize / 2;
    let depth = 8;
    let config = MlpConfig::deep(8, depth, width, 2, Activation::Relu);
    let err = Mlp::new(&gpu, config).unwrap_err();
    println!("{err}");
    assert!(matches!(err, Error::DeviceLimit { .. }), "{err}");
    assert!(
        err.to_string().contains("one buffer for all layers"),
        "{err}"
    );
}

use fusedmlp::data::Dataset;
use fusedmlp::{TrainConfig, Trainer};
use rand::{Rng, SeedableRng};

/// Extreme and ordinary sizes the sweep draws from.
const SIZES: [usize; 9] = [0, 1, 2, 3, 7, 64, 1 << 16, 1 << 31, usize::MAX];
/// Extreme and ordinary reals.
const REALS: [f32; 9] = [
    0.0,
    -1.0,
    1e-3,
    0.05,
    1.0,
    1e30,
    f32::NAN,
    f32::INFINITY,
    f32::NEG_INFINITY,
];

fn pick<T: Copy>(rng: &mut rand::rngs::StdRng, from: &[T]) -> T {
    from[rng.random_range(0..from.len())]
}

/// A small positive size most of the time, an extreme one sometimes.
fn size(rng: &mut rand::rngs::StdRng, small: usize) -> usize {
    if rng.random_bool(0.85) {
        rng.random_range(1..=small.max(1))
    } else {
        pick(rng, &SIZES)
    }
}

/// An ordinary value most of the time, an extreme one sometimes.
fn real(rng: &mut rand::rngs::StdRng, ordinary: f32) -> f32 {
    if rng.random_bool(0.85) {
        ordinary
    } else {
        pick(rng, &REALS)
    }
}

/// One case of the sweep: a net, a data set, a training configuration and
/// predictions from random, extreme and empty values. Each call either
/// fails with an `Err` or gives a result of the right size. Returns how far
/// the case got: 0 no net, 1 a net, 2 a data set too, 3 a trainer that ran.
fn one_case(gpu: &fusedmlp::Gpu, seed: u64) -> usize {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let input = size(&mut rng, 9);
    let depth = size(&mut rng, 4).min(64);
    let width = size(&mut rng, 24);
    let output = size(&mut rng, 5) + usize::from(rng.random_bool(0.9));
    let act = pick(&mut rng, &Activation::ALL);
    let Ok(model) = Mlp::new(gpu, MlpConfig::deep(input, depth, width, output, act)) else {
        return 0;
    };
    // Predictions with right and wrong lengths.
    let rows = size(&mut rng, 5).min(1 << 12);
    let len = if rng.random_bool(0.8) {
        rows.saturating_mul(input).min(1 << 22)
    } else {
        size(&mut rng, 40).min(1 << 22)
    };
    let x: Vec<f32> = (0..len).map(|_| pick(&mut rng, &REALS)).collect();
    if let Ok(logits) = model.predict_logits(&x, rows) {
        assert_eq!(logits.len(), rows * output, "seed {seed}: logits");
    }
    // A data set (perhaps empty, ragged, non-finite or mislabelled).
    let n = size(&mut rng, 40).min(1 << 11);
    let mut features: Vec<f32> = (0..n.saturating_mul(input).min(1 << 22))
        .map(|_| rng.random_range(-2.0..2.0))
        .collect();
    if rng.random_bool(0.1) && !features.is_empty() {
        let at = rng.random_range(0..features.len());
        features[at] = pick(&mut rng, &REALS);
    }
    let classes = output.clamp(1, 1 << 16) as u32;
    let labels: Vec<u32> = (0..n)
        .map(|_| {
            if rng.random_bool(0.98) {
                rng.random_range(0..classes)
            } else {
                rng.random_range(0..classes.saturating_add(3))
            }
        })
        .collect();
    let Ok(data) = Dataset::new("sweep", features, labels, input, output.max(1)) else {
        return 1;
    };
    let config = TrainConfig::default()
        .with_epochs(size(&mut rng, 2))
        .with_batch_size(size(&mut rng, 16).min(n.max(1)))
        .with_learning_rate(real(&mut rng, 0.05))
        .with_clip_norm(rng.random_bool(0.3).then(|| real(&mut rng, 1.0)))
        .with_log_every(size(&mut rng, 3) as u64)
        .with_max_logged_steps(size(&mut rng, 4) + 1);
    let Ok(mut trainer) = Trainer::new(model, config, &data, &data) else {
        return 2;
    };
    trainer.stop_after(2);
    let _ = trainer.train("sweep", |_, _| {}, |_| {});
    3
}

/// The sweep itself, in the child process that
/// `no_input_panics_or_aborts` starts (an abort would end the process, so
/// it cannot run in the test harness's own).
#[test]
#[ignore = "the child process of no_input_panics_or_aborts"]
fn input_sweep_child() {
    let Some(gpu) = common::gpu() else { return };
    let cases: u64 = std::env::var("FUSEDMLP_SWEEP_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(120);
    let mut panics = Vec::new();
    let mut reached = [0usize; 4];
    for seed in 0..cases {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| one_case(&gpu, seed))) {
            Ok(stage) => reached[stage] += 1,
            Err(_) => panics.push(seed),
        }
    }
    assert!(panics.is_empty(), "cases that panicked (seeds): {panics:?}");
    println!(
        "SWEEP DONE: {cases} cases: {} refused a net, {} a data set, {} a trainer, {} trained",
        reached[0], reached[1], reached[2], reached[3]
    );
    // The sweep must reach training often enough to mean something.
    assert!(
        reached[3] * 10 >= cases as usize,
        "too few cases trained: {reached:?}"
    );
}

/// Public constructors and calls driven with random, extreme and empty
/// values: every one returns `Err` or a correct result, never a panic
/// (caught per case) or an abort (the sweep runs in a child process whose
/// death fails this test).
#[test]
fn no_input_panics_or_aborts() {
    if common::gpu().is_none() {
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "input_sweep_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .output()
        .expect("the test binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("SWEEP DONE"),
        "the sweep failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let done = stdout
        .lines()
        .find(|l| l.contains("SWEEP DONE"))
        .unwrap_or("");
    println!("{done}");
}
