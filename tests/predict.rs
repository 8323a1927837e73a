//! Predictions a user reads: class probabilities and predicted classes,
//! held to the logits they come from, for every head.

mod common;

use fusedmlp::Head;
use fusedmlp::{Activation, Mlp, MlpConfig};

fn model(gpu: &fusedmlp::Gpu, head: Head, outputs: usize) -> Mlp {
    let mut config = MlpConfig::deep(3, 2, 8, outputs, Activation::Tanh);
    config.head = head;
    Mlp::new(gpu, config).unwrap()
}

#[test]
fn probabilities_and_classes_follow_the_logits() {
    let Some(gpu) = common::gpu() else { return };
    let rows = 7;
    let x: Vec<f32> = (0..rows * 3)
        .map(|i| (i as f32 * 0.37).sin() * 3.0)
        .collect();
    // Softmax: each row sums to 1, the class is the largest logit.
    let m = model(&gpu, Head::Softmax, 4);
    let logits = m.predict_logits(&x, rows).unwrap();
    let p = m.predict_proba(&x, rows).unwrap();
    let classes = m.predict_classes(&x, rows).unwrap();
    assert_eq!((p.len(), classes.len()), (rows * 4, rows));
    for (r, (row, probs)) in logits.chunks(4).zip(p.chunks(4)).enumerate() {
        assert!(
            (probs.iter().sum::<f32>() - 1.0).abs() < 1e-5,
            "row {r}: {probs:?}"
        );
        let best = (0..4).fold(0, |b, j| if row[j] > row[b] { j } else { b });
        assert_eq!(classes[r] as usize, best, "row {r}: {row:?}");
        let best_p = (0..4).fold(0, |b, j| if probs[j] > probs[b] { j } else { b });
        assert_eq!(best_p, best, "row {r}: probabilities rank as logits");
    }
    // Sigmoid, one output: the probability of class 1, class 1 when the
    // logit is positive.
    let m = model(&gpu, Head::Sigmoid, 1);
    let logits = m.predict_logits(&x, rows).unwrap();
    let p = m.predict_proba(&x, rows).unwrap();
    let classes = m.predict_classes(&x, rows).unwrap();
    for r in 0..rows {
        let want = 1.0 / (1.0 + (-logits[r] as f64).exp());
        assert!((p[r] as f64 - want).abs() < 1e-6, "row {r}");
        assert_eq!(classes[r], u32::from(logits[r] > 0.0), "row {r}");
    }
    // Mse predicts values: no probabilities, and the error says what to use.
    let m = model(&gpu, Head::Mse, 1);
    let err = m.predict_proba(&x, rows).unwrap_err().to_string();
    assert!(err.contains("predict_logits"), "{err}");
    assert_eq!(m.predict_classes(&x, rows).unwrap().len(), rows);
    // A wrong input length is an error, no rows give nothing.
    let m = model(&gpu, Head::Softmax, 4);
    assert!(m.predict_proba(&x[1..], rows).is_err());
    assert!(m.predict_classes(&x[1..], rows).is_err());
    assert!(m.predict_proba(&[], 0).unwrap().is_empty());
    assert!(m.predict_classes(&[], 0).unwrap().is_empty());
}
