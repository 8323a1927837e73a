//! Layers chained on the device: one encoder, no readback until the end.
//! (Its own test binary: the readback counter is per process.)

mod common;

use common::grid_values;
use fusedmlp::{reference, Activation, LinearShape};

#[test]
fn layers_chain_on_the_device_without_readbacks() {
    let Some(gpu) = common::gpu() else { return };
    let (batch, d0, d1, d2) = (9, 12, 8, 5);
    let x = grid_values(batch * d0, 1, 1.0);
    let w1 = grid_values(d1 * d0, 2, 0.25);
    let b1 = grid_values(d1, 3, 0.1);
    let w2 = grid_values(d2 * d1, 4, 0.25);
    let b2 = grid_values(d2, 5, 0.1);
    let xt = gpu.upload(&x, batch, d0).unwrap();
    let (w1t, b1t) = (
        gpu.upload(&w1, d1, d0).unwrap(),
        gpu.upload(&b1, 1, d1).unwrap(),
    );
    let (w2t, b2t) = (
        gpu.upload(&w2, d2, d1).unwrap(),
        gpu.upload(&b2, 1, d2).unwrap(),
    );
    let h = gpu.zeros(batch, d1).unwrap();
    let y = gpu.zeros(batch, d2).unwrap();
    // Warm up: the first recording of a shape may autotune (which times
    // kernels and so reads back); recording after that must not.
    let mut warm = gpu.device().create_command_encoder(&Default::default());
    gpu.record_linear_forward(&mut warm, Activation::Relu, &xt, &w1t, &b1t, &h, None)
        .unwrap();
    gpu.record_linear_forward(&mut warm, Activation::Tanh, &h, &w2t, &b2t, &y, None)
        .unwrap();
    drop(warm);
    let before = gpu.readback_count();
    let mut encoder = gpu.device().create_command_encoder(&Default::default());
    gpu.record_linear_forward(&mut encoder, Activation::Relu, &xt, &w1t, &b1t, &h, None)
        .unwrap();
    gpu.record_linear_forward(&mut encoder, Activation::Tanh, &h, &w2t, &b2t, &y, None)
        .unwrap();
    gpu.queue().submit([encoder.finish()]);
    assert_eq!(gpu.readback_count(), before, "recording must not read back");
    let got = gpu.download(&y).unwrap();
    let h_ref = reference::linear_forward(
        Activation::Relu,
        &x,
        &w1,
        &b1,
        LinearShape::new(batch, d0, d1),
    )
    .unwrap();
    let y_ref = reference::linear_forward(
        Activation::Tanh,
        &h_ref,
        &w2,
        &b2,
        LinearShape::new(batch, d1, d2),
    )
    .unwrap();
    for (g, r) in got.iter().zip(&y_ref) {
        assert!((g - r).abs() < 1e-5, "{g} vs {r}");
    }
}
