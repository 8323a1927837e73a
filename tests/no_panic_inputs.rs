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
