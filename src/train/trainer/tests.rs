//! The step plan: replaying it is recording the step afresh.

use super::*;
use crate::nn::{MlpConfig, NormPlacement, PreluMode};
use crate::train::Kernels;

/// A small data set: `rows` rows of 12 features, 3 classes.
fn data(rows: usize) -> Dataset {
    let x = (0..rows * 12)
        .map(|i| ((i * 37) % 23) as f32 / 23.0 - 0.4)
        .collect();
    let y = (0..rows as u32).map(|r| r % 3).collect();
    Dataset::new("plan", x, y, 12, 3).unwrap()
}

/// The nets and settings the plans are held to: the fused stack with
/// clipping and Adam; the layered path with residuals, dropout (whose
/// masks change every step), batch norm and AdamW; learned PReLU slopes
/// with momentum and weight decay. Logged steps every second or third step.
fn cases() -> Vec<(&'static str, MlpConfig, TrainConfig)> {
    let base = TrainConfig::default().with_batch_size(8).with_epochs(3);
    vec![
        (
            "fused, Adam, clipping",
            MlpConfig::deep(12, 4, 16, 3, Activation::Relu),
            base.clone()
                .with_kernels(Kernels::Fused)
                .with_optimizer(Optimizer::adam())
                .with_clip_norm(0.5)
                .with_log_every(3),
        ),
        (
            "layered, residual, dropout, batch norm, AdamW",
            MlpConfig::deep(12, 3, 10, 3, Activation::Tanh)
                .with_residual(true)
                .with_dropout(0.25)
                .with_batch_norm(NormPlacement::Before),
            base.clone()
                .with_kernels(Kernels::Layered)
                .with_optimizer(Optimizer::adamw())
                .with_log_every(2),
        ),
        (
            "layered, learned PReLU, momentum",
            MlpConfig::deep(12, 2, 9, 3, Activation::Prelu { weight: 0.25 })
                .with_learn_prelu(PreluMode::PerUnit)
                .with_dropout(0.1),
            base.with_kernels(Kernels::Layered)
                .with_optimizer(Optimizer::Sgd {
                    momentum: 0.9,
                    nesterov: true,
                    weight_decay: 1e-3,
                })
                .with_log_every(2),
        ),
    ]
}

#[test]
fn replayed_steps_equal_steps_recorded_afresh() {
    let Some(gpu) = crate::gpu::context::tests::gpu_for_test() else {
        return;
    };
    let set = data(40);
    for (what, net, tc) in cases() {
        let mut parameters = Vec::new();
        let mut losses = Vec::new();
        for replay in [true, false] {
            let model = Mlp::new(&gpu, net.clone()).unwrap();
            let mut t = Trainer::new(model, tc.clone(), &set, &set).unwrap();
            t.replay = replay;
            t.run_steps(9).unwrap();
            // An unlogged plan and at least one logged one, or none.
            let kept = t.plans.len();
            assert!(
                if replay { kept >= 2 } else { kept == 0 },
                "{what}: {kept} plans kept with replay {replay}"
            );
            parameters.push(gpu.download(t.model().arena()).unwrap());
            let logs: Vec<_> = t.logs().iter().map(|l| l.loss).collect();
            losses.push(logs);
        }
        assert!(
            parameters[0] == parameters[1],
            "{what}: replayed steps differ from steps recorded afresh"
        );
        assert_eq!(losses[0], losses[1], "{what}: logged losses differ");
    }
}

#[test]
fn a_plan_holds_every_dispatch_a_step_takes() {
    let Some(gpu) = crate::gpu::context::tests::gpu_for_test() else {
        return;
    };
    let set = data(40);
    for (what, net, tc) in cases() {
        // The first unlogged step after the plans exist replays; the same
        // step recorded afresh must take as many dispatches, and the plan
        // must hold each of them and nothing else.
        let steps = (2..).find(|s| s % tc.log_every != 0).unwrap() as usize;
        let mut counted = Vec::new();
        let mut made = Vec::new();
        for replay in [true, false] {
            let model = Mlp::new(&gpu, net.clone()).unwrap();
            let mut t = Trainer::new(model, tc.clone(), &set, &set).unwrap();
            t.replay = replay;
            t.run_steps(steps).unwrap();
            let before = gpu.dispatch_count();
            let objects = gpu.objects_created();
            t.run_steps(1).unwrap();
            counted.push(gpu.dispatch_count() - before);
            made.push(gpu.objects_created() != objects);
            if replay {
                let plan = t.step_plan(false).expect("an unlogged step was taken");
                assert_eq!(plan.dispatches() as u64, counted[0], "{what}");
                let logged = t.step_plan(true).expect("a logged step was taken");
                assert!(logged.dispatches() > plan.dispatches(), "{what}");
                let text = format!("{plan:?}");
                assert!(
                    text.starts_with(&format!("StepPlan: {} dispatches", counted[0])),
                    "{what}: {text}"
                );
            }
        }
        assert_eq!(
            counted[0], counted[1],
            "{what}: a replayed step and the same step recorded afresh"
        );
        assert!(
            !made[0],
            "{what}: a replayed step made a buffer or bind group"
        );
    }
}
