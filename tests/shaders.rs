//! Every shader, as assembled for every activation, parses and validates
//! with naga. Needs no GPU.

use fusedmlp::gpu::shader;
use fusedmlp::Activation;

fn variants() -> Vec<Activation> {
    let mut acts = Activation::ALL.to_vec();
    acts.extend([
        Activation::LeakyRelu {
            negative_slope: -0.5,
        },
        Activation::Hardtanh {
            min_val: -2.5,
            max_val: 0.0,
        },
        Activation::Softplus {
            beta: 0.5,
            threshold: 3.0,
        },
        Activation::Celu { alpha: 2.0 },
    ]);
    acts
}

#[test]
fn every_kernel_validates_for_every_activation() {
    let mut checked = 0;
    for act in variants() {
        for (name, source) in shader::all_kernel_sources(act) {
            shader::validate(&name, &source).unwrap_or_else(|e| panic!("{e}"));
            checked += 1;
        }
    }
    println!("validated {checked} assembled shaders");
    assert!(checked >= variants().len());
}

#[test]
fn activation_free_kernels_validate() {
    for (name, source) in shader::activation_free_sources() {
        shader::validate(&name, &source).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn a_broken_shader_is_an_error_not_a_panic() {
    let err = shader::validate("broken", "fn f() -> f32 { return not_defined; }").unwrap_err();
    assert!(err.to_string().contains("broken"), "{err}");
}
