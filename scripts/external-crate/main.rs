//! A program outside the repository, using fusedmlp through its public API
//! alone (scripts/external-crate.sh builds it as a crate of its own): it
//! trains on the embedded digits, saves the model, loads it back,
//! predicts raw rows and evaluates, and checks that a bad setting is a
//! typed error. Exits non-zero, saying why, on any failure.

use fusedmlp::data::{self, Standardizer};
use fusedmlp::train::{Control, EpochLog, Observer};
use fusedmlp::{Activation, Error, Gpu, Mlp, MlpConfig, Optimizer, TrainConfig, Trainer};

/// Stops once the validation accuracy passes a target.
struct Target(f32);

impl Observer for Target {
    fn on_epoch(&mut self, e: &EpochLog) -> Control {
        match e.validation() {
            Some((_, accuracy)) if accuracy >= self.0 => Control::Stop,
            _ => Control::Continue,
        }
    }
}

fn run() -> Result<(), Error> {
    let gpu = Gpu::new()?;
    println!("adapter: {}", gpu.describe());
    let (raw_train, raw_val) = data::digits()?.split(0.2, 0)?;
    let scaler = Standardizer::fit(&raw_train);
    let (mut train, mut val) = (raw_train.clone(), raw_val.clone());
    scaler.apply(&mut train)?;
    scaler.apply(&mut val)?;

    // A bad setting is a typed error naming the field.
    let bad = TrainConfig::default().with_batch_size(0);
    let model = Mlp::new(&gpu, MlpConfig::deep(64, 4, 64, 10, Activation::Relu))?;
    match Trainer::new(model, bad, &train, &val) {
        Err(e) if e.field() == Some("TrainConfig::batch_size") => println!("refused: {e}"),
        Err(e) => panic!("unexpected error: {e}"),
        Ok(_) => panic!("a batch size of 0 was accepted"),
    }

    let model = Mlp::new(&gpu, MlpConfig::deep(64, 4, 64, 10, Activation::Relu))?;
    let config = TrainConfig::default()
        .with_epochs(10)
        .with_batch_size(32)
        .with_learning_rate(1e-3)
        .with_optimizer(Optimizer::adam());
    let mut trainer = Trainer::new(model, config, &train, &val)?;
    let report = trainer.train_observed("external", &mut Target(0.9))?;
    println!("{}: {} epochs trained", report.outcome, report.epochs.len());
    trainer.set_standardizer(Some(scaler))?;

    let path = std::env::temp_dir().join(format!(
        "fusedmlp-external-{}.safetensors",
        std::process::id()
    ));
    trainer.model().save(&path)?;
    let model = Mlp::load(&gpu, &path)?;
    let _ = std::fs::remove_file(&path);

    let rows = 5;
    let x = &raw_val.features()[..rows * 64];
    let before = trainer.model().predict_proba(x, rows)?;
    let after = model.predict_proba(x, rows)?;
    assert_eq!(
        before, after,
        "the loaded model predicts as the trained one"
    );
    let classes = model.predict_classes(x, rows)?;
    println!(
        "predicted {classes:?}, labels {:?}",
        &raw_val.labels()[..rows]
    );
    let metrics = model.evaluate(&raw_val)?;
    println!("validation: {metrics}");
    assert!(metrics.accuracy > 0.85, "accuracy {}", metrics.accuracy);
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("external crate: {e}");
        std::process::exit(1);
    }
    println!("external crate: trained, saved, loaded and predicted through the public API");
}
