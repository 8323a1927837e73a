//! A trained net as a model to keep: `Mlp::save` and `Mlp::load` carry
//! everything prediction needs (weights, norms, BatchNorm's running
//! statistics, the standardizer), `predict_*` take rows as they come, and
//! `Mlp::evaluate` scores a labelled data set.

mod common;

use std::path::PathBuf;

use fusedmlp::data::{Dataset, Standardizer};
use fusedmlp::nn::NormPlacement;
use fusedmlp::reference::mlp::loss_and_grad;
use fusedmlp::{Activation, Error, Mlp, MlpConfig, Optimizer, TrainConfig, Trainer};

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fusedmlp-model-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Raw (unstandardised) blobs far from the origin, so a missing or doubled
/// standardisation changes every prediction.
fn raw_data() -> (Dataset, Dataset) {
    let (name, mut features, labels, n_features, n_classes) =
        fusedmlp::data::blobs(400, 3, 5, 1.0, 7)
            .unwrap()
            .into_parts();
    for (i, v) in features.iter_mut().enumerate() {
        *v = *v * 40.0 + 100.0 * (i % 5) as f32;
    }
    let all = Dataset::new(name, features, labels, n_features, n_classes).unwrap();
    all.split(0.25, 3).unwrap()
}

/// A BatchNorm net trained a few steps on standardised data, carrying the
/// standardizer; and the raw validation set.
fn trained(gpu: &fusedmlp::Gpu) -> (Mlp, Dataset) {
    let (train, val) = raw_data();
    let scaler = Standardizer::fit(&train);
    let (mut strain, mut sval) = (train.clone(), val.clone());
    scaler.apply(&mut strain).unwrap();
    scaler.apply(&mut sval).unwrap();
    let mut config = MlpConfig::deep(5, 3, 16, 3, Activation::Relu);
    config.batch_norm = Some(NormPlacement::Before);
    let tc = TrainConfig::default()
        .with_epochs(2)
        .with_batch_size(20)
        .with_learning_rate(0.01)
        .with_optimizer(Optimizer::adam())
        .with_seed(5);
    let mut t = Trainer::new(Mlp::new(gpu, config).unwrap(), tc, &strain, &sval).unwrap();
    t.set_standardizer(Some(scaler)).unwrap();
    t.train("model-io", |_, _| {}, |_| {}).unwrap();
    (t.into_model(), val)
}

#[test]
fn a_saved_model_loads_and_predicts_raw_rows_exactly_as_before() {
    let Some(gpu) = common::gpu() else { return };
    let (model, val) = trained(&gpu);
    let dir = temp_dir("roundtrip");
    let path = dir.join("model.safetensors");
    model.save(&path).unwrap();
    let loaded = Mlp::load(&gpu, &path).unwrap();
    assert_eq!(loaded.config(), model.config());
    assert_eq!(loaded.standardizer(), model.standardizer());
    let rows = val.len();
    let want = model.predict_logits(val.features(), rows).unwrap();
    let got = loaded.predict_logits(val.features(), rows).unwrap();
    assert_eq!(got, want, "loaded predictions are bit-identical");
    assert_eq!(
        loaded.predict_classes(val.features(), rows).unwrap(),
        model.predict_classes(val.features(), rows).unwrap()
    );
    // The running statistics came along: a model without them (fresh
    // BatchNorm) predicts differently.
    let mut fresh = Mlp::from_parameters_and_slopes(
        &gpu,
        model.config().clone(),
        &model.parameters().unwrap(),
        &model.slope_values().unwrap(),
    )
    .unwrap();
    fresh.set_norms(&model.norm_values().unwrap()).unwrap();
    fresh
        .set_standardizer(model.standardizer().cloned())
        .unwrap();
    assert_ne!(fresh.predict_logits(val.features(), rows).unwrap(), want);
    // The standardizer is applied once: standardising by hand and
    // predicting without it gives the same logits.
    let mut plain = Mlp::load(&gpu, &path).unwrap();
    let mut scaled = val.features().to_vec();
    plain
        .standardizer()
        .unwrap()
        .apply_rows(&mut scaled)
        .unwrap();
    plain.set_standardizer(None).unwrap();
    assert_eq!(plain.predict_logits(&scaled, rows).unwrap(), want);
    // And differs from the raw rows fed unscaled.
    assert_ne!(plain.predict_logits(val.features(), rows).unwrap(), want);
    // Bytes, as the browser saves and loads them: the same file.
    let bytes = pollster::block_on(model.to_bytes_async()).unwrap();
    let from_bytes = Mlp::from_bytes(&gpu, "in memory", &bytes).unwrap();
    assert_eq!(
        from_bytes.predict_logits(val.features(), rows).unwrap(),
        want
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn evaluate_scores_raw_rows_as_the_reference_does() {
    let Some(gpu) = common::gpu() else { return };
    let (model, val) = trained(&gpu);
    let m = model.evaluate(&val).unwrap();
    let logits = model.predict_logits(val.features(), val.len()).unwrap();
    let (loss, correct, _) = loss_and_grad(model.config().head, &logits, val.labels(), 3);
    assert_eq!(m.rows, val.len());
    assert_eq!(m.correct, correct);
    assert!((m.loss - loss).abs() < 1e-12, "{} vs {loss}", m.loss);
    assert!((m.accuracy - correct as f64 / val.len() as f64).abs() < 1e-12);
    // Trained a little on separable blobs: better than chance.
    assert!(m.accuracy > 0.6, "{m}");
    // A data set of another width, or labels the head cannot score: errors
    // that say so.
    let wide = Dataset::new("wide", vec![0.5; 12], vec![0, 1], 6, 2).unwrap();
    let err = model.evaluate(&wide).unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err}");
    let many = Dataset::new("many", vec![0.5; 10], vec![0, 7], 5, 8).unwrap();
    let err = model.evaluate(&many).unwrap_err();
    assert!(
        matches!(err, Error::Data { .. }) && err.to_string().contains("row 1 has label 7"),
        "{err}"
    );
}

#[test]
fn a_training_checkpoint_loads_as_a_model_and_bad_files_say_what_they_are() {
    let Some(gpu) = common::gpu() else { return };
    let (train, val) = raw_data();
    let config = MlpConfig::deep(5, 2, 8, 3, Activation::Tanh);
    let tc = TrainConfig::default().with_epochs(1).with_batch_size(30);
    let mut t = Trainer::new(Mlp::new(&gpu, config).unwrap(), tc, &train, &val).unwrap();
    t.run_steps(3).unwrap();
    let dir = temp_dir("training");
    let path = dir.join("run.safetensors");
    t.save_checkpoint(&path).unwrap();
    // Its optimizer file is not needed to predict.
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        if e.file_name().to_string_lossy().contains(".optim-") {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
    let loaded = Mlp::load(&gpu, &path).unwrap();
    assert_eq!(
        loaded.predict_logits(val.features(), val.len()).unwrap(),
        t.model().predict_logits(val.features(), val.len()).unwrap()
    );
    // A CSV where a model was expected.
    let csv = dir.join("data.csv");
    std::fs::write(&csv, "a,b,label\n1,2,0\n").unwrap();
    let err = Mlp::load(&gpu, &csv).unwrap_err().to_string();
    assert!(err.contains("not a fusedmlp model or checkpoint"), "{err}");
    // A standardizer of the wrong width is refused.
    let mut m = loaded;
    let s = Standardizer::new(vec![0.0; 4], vec![1.0; 4]).unwrap();
    // One whose deviations do not match its means, or are not positive, is
    // not a standardizer at all.
    assert!(Standardizer::new(vec![0.0; 4], vec![1.0; 3]).is_err());
    assert!(Standardizer::new(vec![0.0; 2], vec![1.0, 0.0]).is_err());
    assert!(matches!(
        m.set_standardizer(Some(s)),
        Err(Error::Shape { .. })
    ));
    let _ = std::fs::remove_dir_all(dir);
}

/// Predictions of more rows than one chunk holds are split and joined in
/// order.
#[test]
fn many_rows_are_predicted_in_chunks_in_order() {
    let Some(gpu) = common::gpu() else { return };
    let model = Mlp::new(&gpu, MlpConfig::deep(2, 2, 8, 3, Activation::Relu)).unwrap();
    let rows = 40_000;
    let x: Vec<f32> = (0..rows * 2)
        .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
        .collect();
    let all = model.predict_logits(&x, rows).unwrap();
    assert_eq!(all.len(), rows * 3);
    for start in [0, 16_383, 16_384, 39_990] {
        let n = 10.min(rows - start);
        let part = model
            .predict_logits(&x[start * 2..(start + n) * 2], n)
            .unwrap();
        assert_eq!(
            &all[start * 3..(start + n) * 3],
            &part[..],
            "rows from {start}"
        );
    }
}
