//! Device-level failures are errors, not aborts or hangs. Its own test
//! binary: it destroys the process's device on purpose.

mod common;

use fusedmlp::{Activation, Error};

#[test]
fn oversized_tensors_name_the_limit_and_a_lost_device_is_an_error() {
    let Some(gpu) = common::gpu() else { return };
    let limit = gpu
        .limits()
        .max_storage_buffer_binding_size
        .min(gpu.limits().max_buffer_size);
    let rows = (limit / 4 / 1024) as usize + 1;
    let err = gpu.zeros(rows, 1024).unwrap_err();
    println!("{err}");
    assert!(matches!(err, Error::DeviceLimit { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("max_") && text.contains(&limit.to_string()),
        "{text}"
    );
    // The device still works after a refused allocation.
    assert_eq!(
        gpu.activation_forward(Activation::Relu, &[-1.0, 1.0])
            .unwrap(),
        vec![0.0, 1.0]
    );
    // A destroyed device reports itself lost on the next call.
    gpu.device().destroy();
    let _ = gpu.device().poll(wgpu::PollType::Poll);
    let err = gpu
        .activation_forward(Activation::Relu, &[1.0])
        .unwrap_err();
    println!("{err}");
    assert!(matches!(err, Error::DeviceLost { .. }), "{err}");
}
