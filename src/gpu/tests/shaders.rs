//! Every shader, as assembled for every activation, parses and validates
//! with naga. Needs no GPU.

use crate::gpu::fused;
use crate::gpu::fused_sg::GradsOut;
use crate::gpu::gemm::{generate, Epilogue, GemmVariant};
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
        for (name, source) in all_kernel_sources(act) {
            shader::validate(&name, &source).unwrap_or_else(|e| panic!("{e}"));
            checked += 1;
        }
    }
    println!("validated {checked} assembled shaders");
    assert!(checked >= variants().len());
}

#[test]
fn activation_free_kernels_validate() {
    for (name, source) in activation_free_sources() {
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
    let mut sources = activation_free_sources();
    for act in variants() {
        sources.extend(all_kernel_sources(act));
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

/// Every kernel that applies an activation, assembled for `act`, as
/// (name, source) pairs: what the naga validation test walks.
fn all_kernel_sources(act: Activation) -> Vec<(String, String)> {
    let mut out = vec![
        (
            format!("elementwise[{act}]"),
            shader::assemble(shader::ELEMENTWISE_WGSL, Some(act)),
        ),
        (
            format!("linear_backward[{act}]"),
            shader::assemble(shader::LINEAR_BACKWARD_WGSL, Some(act)),
        ),
        (
            format!("diagnostics[{act}]"),
            shader::assemble(shader::DIAGNOSTICS_WGSL, Some(act)),
        ),
        (
            format!("norm[{act}]"),
            shader::assemble(shader::NORM_WGSL, Some(act)),
        ),
    ];
    for (input4, width4) in [(true, true), (false, true), (true, false), (false, false)] {
        out.push((
            format!("fused_mlp_grads[{act}, input4={input4}, width4={width4}]"),
            fused::fused_grads_source(act, input4, width4),
        ));
    }
    for lanes in [16, 32, 64, 128] {
        for (keep_all_z, aligned) in [(false, false), (true, false), (false, true), (true, true)] {
            out.push((
                format!(
                    "fused_mlp[{act}, {lanes} lanes, keep_all_z={keep_all_z}, aligned={aligned}]"
                ),
                fused::fused_source(act, lanes, keep_all_z, aligned),
            ));
        }
    }
    // The subgroup design, aligned (widths multiples of 4) and not, on
    // llvmpipe's subgroups and a real GPU's.
    for (input, width, subgroup) in [(3, 17, 8), (64, 64, 8), (8, 36, 32)] {
        for (keep_all_z, gathered) in [(false, false), (true, false), (false, true), (true, true)] {
            out.push((
                format!("fused_mlp[{act}, subgroup {subgroup}, {input} -> {width}, keep_all_z={keep_all_z}, gathered={gathered}]"),
                fused::fused_subgroup_source(act, input, width, subgroup, keep_all_z, gathered),
            ));
        }
        out.push((
            format!("fused_mlp_grads[{act}, subgroup {subgroup}, {input} -> {width}]"),
            fused::fused_subgroup_grads_source(act, input, width, subgroup, GradsOut::Store),
        ));
        if input % 4 == 0 && width % 4 == 0 {
            for grads in [GradsOut::StoreAndUpdate, GradsOut::Update] {
                out.push((
                    format!("fused_mlp_grads[{act}, subgroup {subgroup}, {input} -> {width}, {grads:?}]"),
                    fused::fused_subgroup_grads_source(act, input, width, subgroup, grads),
                ));
            }
        }
    }
    for v in GemmVariant::CANDIDATES {
        for save_z in [false, true] {
            out.push((
                format!("linear_forward[{act}, {}, save_z={save_z}]", v.name()),
                generate(v, Epilogue::BiasActivation { act, save_z }),
            ));
        }
    }
    out
}

/// Every kernel that applies no activation, as (name, source) pairs.
fn activation_free_sources() -> Vec<(String, String)> {
    let mut out = vec![
        ("peak[fma]".to_string(), shader::peak_source(true)),
        ("peak[mul_add]".to_string(), shader::peak_source(false)),
        ("transpose".to_string(), shader::TRANSPOSE_WGSL.to_string()),
        ("pack".to_string(), shader::PACK_WGSL.to_string()),
        ("gather".to_string(), shader::GATHER_WGSL.to_string()),
        (
            "regularize".to_string(),
            shader::REGULARIZE_WGSL.to_string(),
        ),
        ("loss".to_string(), shader::loss_source()),
        ("head".to_string(), shader::head_source()),
        ("head4".to_string(), shader::head4_source()),
        ("optimizer".to_string(), shader::optimizer_source()),
        ("stats".to_string(), shader::STATS_WGSL.to_string()),
        ("finite".to_string(), shader::FINITE_WGSL.to_string()),
    ];
    for v in GemmVariant::CANDIDATES {
        out.push((format!("gemm[{}]", v.name()), generate(v, Epilogue::Plain)));
    }
    out
}
