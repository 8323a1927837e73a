//! Watching and stopping a run: an `Observer` sees every step, every logged
//! step and every epoch, and `Control::Stop` ends the run there; a run
//! without a validation set reports the validation figures as absent.

mod common;

use fusedmlp::data::Dataset;
use fusedmlp::train::{Control, EpochLog, Observer, Outcome, StepLog};
use fusedmlp::{Activation, Mlp, MlpConfig, TrainConfig, Trainer};

fn data() -> Dataset {
    fusedmlp::data::blobs(240, 3, 4, 1.0, 2).unwrap()
}

fn trainer(gpu: &fusedmlp::Gpu, validation: Option<&Dataset>, train: &Dataset) -> Trainer {
    let tc = TrainConfig::default()
        .with_epochs(5)
        .with_batch_size(16)
        .with_log_every(4);
    let model = Mlp::new(gpu, MlpConfig::deep(4, 3, 16, 3, Activation::Relu)).unwrap();
    Trainer::new(model, tc, train, validation).unwrap()
}

/// Records what it sees; stops at a step or after an epoch.
#[derive(Default)]
struct Watch {
    steps: Vec<u64>,
    logged: Vec<u64>,
    epochs: Vec<usize>,
    stop_at_step: Option<u64>,
    stop_after_epoch: Option<usize>,
}

impl Observer for Watch {
    fn on_step(&mut self, step: u64, _total: u64) -> Control {
        self.steps.push(step);
        if self.stop_at_step == Some(step) {
            Control::Stop
        } else {
            Control::Continue
        }
    }
    fn on_logged_step(&mut self, log: &StepLog) -> Control {
        self.logged.push(log.step);
        Control::Continue
    }
    fn on_epoch(&mut self, e: &EpochLog) -> Control {
        self.epochs.push(e.epoch);
        if self.stop_after_epoch == Some(e.epoch) {
            Control::Stop
        } else {
            Control::Continue
        }
    }
}

#[test]
fn an_observer_sees_every_event_and_can_stop_the_run() {
    let Some(gpu) = common::gpu() else { return };
    let (train, val) = data().split(0.25, 1).unwrap();
    // Watching only: the run is the same as an unwatched one.
    let mut watch = Watch::default();
    let mut t = trainer(&gpu, Some(&val), &train);
    let per_epoch = t.steps_per_epoch() as u64;
    let report = t.train_observed("watched", &mut watch).unwrap();
    assert_eq!(report.outcome, "completed");
    assert_eq!(report.status, Outcome::Completed);
    assert_eq!(watch.steps, (1..=5 * per_epoch).collect::<Vec<_>>());
    assert_eq!(watch.epochs, [0, 1, 2, 3, 4]);
    let logged: Vec<u64> = report.steps.iter().map(|s| s.step).collect();
    assert_eq!(watch.logged, logged, "every logged step, in order, once");
    let plain = trainer(&gpu, Some(&val), &train)
        .train("plain", |_, _| {}, |_| {})
        .unwrap();
    assert_eq!(
        plain.epochs.last().unwrap().val_loss.to_bits(),
        report.epochs.last().unwrap().val_loss.to_bits()
    );
    // Stopped after epoch 1 of 5 (early stopping): two epochs, said so.
    let mut stop = Watch {
        stop_after_epoch: Some(1),
        ..Default::default()
    };
    let report = trainer(&gpu, Some(&val), &train)
        .train_observed("early", &mut stop)
        .unwrap();
    assert_eq!(report.epochs.len(), 2);
    assert_eq!(report.total_steps, 2 * per_epoch);
    // Regression: this read "after epoch 1" (the 0-based index) while two
    // epochs had run, and "... after epoch 1 after 2 epochs" printed.
    assert_eq!(
        report.outcome,
        "stopped by the observer after 2 of 5 epochs"
    );
    assert_eq!(
        report.status,
        Outcome::StoppedByObserver {
            step: 2 * per_epoch
        }
    );
    // Stopped mid-epoch at a step.
    let mut stop = Watch {
        stop_at_step: Some(7),
        ..Default::default()
    };
    let report = trainer(&gpu, Some(&val), &train)
        .train_observed("step", &mut stop)
        .unwrap();
    assert_eq!(report.total_steps, 7);
    assert_eq!(report.outcome, "stopped by the observer after step 7");
    assert_eq!(report.status, Outcome::StoppedByObserver { step: 7 });
    assert!(report.epochs.is_empty());
}

/// Regression: `split(0.0)` gave an empty validation set and every epoch
/// reported a validation accuracy of 0.0. Without a validation set the
/// figures are absent (`None`, null in JSON), whether none is given or an
/// empty one.
#[test]
fn a_run_without_a_validation_set_reports_it_absent() {
    let Some(gpu) = common::gpu() else { return };
    let all = data();
    let (train, empty) = all.split(0.0, 1).unwrap();
    assert!(empty.is_empty());
    for (what, validation) in [("none", None), ("empty", Some(&empty))] {
        let report = trainer(&gpu, validation, &train)
            .train(what, |_, _| {}, |_| {})
            .unwrap();
        for e in &report.epochs {
            assert_eq!(e.validation(), None, "{what}: epoch {}", e.epoch);
            assert_eq!(e.val_rows, 0);
            assert!(e.train_eval_accuracy > 0.0);
        }
        let json = serde_json::to_value(&report.epochs[0]).unwrap();
        assert!(json["val_accuracy"].is_null(), "{what}: {json}");
    }
    // With one, it is there.
    let (train, val) = all.split(0.25, 1).unwrap();
    let report = trainer(&gpu, Some(&val), &train)
        .train("with", |_, _| {}, |_| {})
        .unwrap();
    let (loss, acc) = report.epochs[0].validation().expect("a validation set");
    assert!(loss.is_finite() && (0.0..=1.0).contains(&acc));
}
