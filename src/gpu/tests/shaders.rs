//! Every shader, as assembled for every activation, parses and validates
//! with naga. Needs no GPU.

use crate::gpu::shader;
use crate::Activation;

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

/// Regression: lavapipe (Mesa 22.3) folds uniform-buffer values that bound
/// a loop into the shader and, where unrolling makes it larger, compiles a
/// new variant at every dispatch and keeps each one: the diagnostics of a
/// 20 × 64 net at batch 32 grew the process by 8.7 MB per logged step.
/// Kernel parameters are read-only storage buffers, in every kernel.
#[test]
fn no_kernel_reads_a_uniform_buffer() {
    let mut sources = shader::activation_free_sources();
    for act in variants() {
        sources.extend(shader::all_kernel_sources(act));
    }
    for (name, source) in sources {
        let module =
            naga::front::wgsl::parse_str(&source).unwrap_or_else(|e| panic!("{name}: {e}"));
        for (_, var) in module.global_variables.iter() {
            assert!(
                var.space != naga::AddressSpace::Uniform,
                "{name}: `{}` is a uniform buffer; bind kernel parameters as \
                 var<storage, read> (see Gpu::params)",
                var.name.as_deref().unwrap_or("?")
            );
        }
    }
}
