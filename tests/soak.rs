//! Soak: a training run with diagnostics logged at every step holds its
//! live GPU objects and its resident memory flat after the warm-up.

mod common;

use fusedmlp::soak::{soak, SoakConfig};
use fusedmlp::{data, Activation, MlpConfig, TrainConfig};

/// The main job's net (20 × 64, batch 32), every step logged, the report
/// capped at 32 entries so that it is at its cap (and thinning) before the
/// baseline. 160 steps after a 60-step warm-up: about 7 s on lavapipe.
///
/// The resident-memory bound is 24 MB: the steady state's own churn (the
/// 32 kept entries are about 0.1 MB; the allocator's and the driver's pools
/// move by a few MB) stays well under it, while the leak it guards against
/// (lavapipe compiling a diagnostics kernel variant at every dispatch and
/// keeping it) added 8.7 MB per logged step, over 1 GB here; a leak of
/// 150 KB a step would cross the bound too.
#[test]
fn logged_training_holds_memory_and_gpu_objects_flat() {
    let Some(gpu) = common::gpu() else { return };
    let (train, _) = data::digits().unwrap().split(0.2, 0).unwrap();
    let model = MlpConfig::deep(64, 20, 64, 10, Activation::Relu);
    let config = TrainConfig::default()
        .with_batch_size(32)
        .with_log_every(1)
        .with_max_logged_steps(32);
    let report = soak(
        &gpu,
        model,
        config,
        &train,
        &SoakConfig {
            warmup_steps: 60,
            steps: Some(160),
            duration: None,
            sample_every: std::time::Duration::from_secs(1),
            max_resident_growth: 24_000_000,
        },
        |step, s| println!("step {step}: {}", s.describe()),
    )
    .unwrap();
    let end = report.samples.last().unwrap().1;
    assert!(
        report.failures.is_empty(),
        "{:?}\nbaseline: {}\nend: {}",
        report.failures,
        report.baseline.describe(),
        end.describe()
    );
    assert!(
        report.logged_steps_held <= 32,
        "the report holds {} logged steps past its cap of 32",
        report.logged_steps_held
    );
    if cfg!(target_os = "linux") {
        assert!(
            report.baseline.resident_bytes.is_some(),
            "RSS unreadable on Linux"
        );
    }
    // The counters are real: a trainer holds hundreds of buffers.
    assert!(
        report.baseline.buffers > 100,
        "{}",
        report.baseline.describe()
    );
}
