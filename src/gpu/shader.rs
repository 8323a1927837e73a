//! Shader assembly: every kernel is its WGSL file plus, where it applies an
//! activation, `shaders/activations.wgsl` and a generated binding that names
//! the activation and bakes its parameters in as literals.

use crate::activation::{Activation, Saved};
use crate::error::Error;

/// The WGSL activation library.
pub const ACTIVATIONS_WGSL: &str = include_str!("../../shaders/activations.wgsl");
/// Elementwise activation kernels (forward and backward).
pub const ELEMENTWISE_WGSL: &str = include_str!("../../shaders/elementwise.wgsl");
/// The adapter's peak multiply-add rate kernels.
pub const PEAK_WGSL: &str = include_str!("../../shaders/peak.wgsl");
/// The transpose (with a padded destination stride) feeding the backward GEMMs.
pub const TRANSPOSE_WGSL: &str = include_str!("../../shaders/transpose.wgsl");
/// Packs a matrix into the texture layout of the texture GEMM kinds.
pub const PACK_WGSL: &str = include_str!("../../shaders/pack.wgsl");
/// LayerNorm forward and backward.
pub const NORM_WGSL: &str = include_str!("../../shaders/norm.wgsl");
/// Dropout, alpha dropout and residual connections.
pub const REGULARIZE_WGSL: &str = include_str!("../../shaders/regularize.wgsl");
/// Mini-batch gather from the resident data set.
pub const GATHER_WGSL: &str = include_str!("../../shaders/gather.wgsl");
/// Output heads and losses with the logits' gradient.
pub const LOSS_WGSL: &str = include_str!("../../shaders/loss.wgsl");
/// One batch row's loss and logits' gradient, shared by the loss and head kernels.
pub const LOSS_ROW_WGSL: &str = include_str!("../../shaders/loss_row.wgsl");
/// The fused path's output layer, loss and output-layer gradients in one kernel.
pub const HEAD_WGSL: &str = include_str!("../../shaders/head.wgsl");
/// What the two forms of the output-layer kernel share.
pub const HEAD_COMMON_WGSL: &str = include_str!("../../shaders/head_common.wgsl");
/// [`HEAD_WGSL`] with vec4 loads, for hidden widths that are multiples of 4.
pub const HEAD4_WGSL: &str = include_str!("../../shaders/head4.wgsl");
/// Optimizer updates, to follow [`OPTIM_COMMON_WGSL`] ([`optimizer_source`]
/// joins them).
pub const OPTIMIZER_WGSL: &str = include_str!("../../shaders/optimizer.wgsl");
/// What the optimizer shares with the kernels that fold plain SGD in: its
/// settings, the step state, the SGD rule and the finite test.
pub const OPTIM_COMMON_WGSL: &str = include_str!("../../shaders/optim_common.wgsl");
/// Plain SGD folded into a kernel that makes gradients: its bindings, the
/// per-vec4 update and the finite flags.
pub const SGD_FOLD_WGSL: &str = include_str!("../../shaders/sgd_fold.wgsl");
/// Norm reductions and the clipping scale.
pub const STATS_WGSL: &str = include_str!("../../shaders/stats.wgsl");
/// Per-layer activation diagnostics.
pub const DIAGNOSTICS_WGSL: &str = include_str!("../../shaders/diagnostics.wgsl");
/// The activation step of the linear backward pass, with the bias gradient.
pub const LINEAR_BACKWARD_WGSL: &str = include_str!("../../shaders/linear_backward.wgsl");
/// The one-dispatch finite check of a training step.
pub const FINITE_WGSL: &str = include_str!("../../shaders/finite.wgsl");
/// What both designs of the fully fused MLP share: parameters, bindings,
/// offsets and the weight layout pass.
pub const FUSED_MLP_WGSL: &str = include_str!("../../shaders/fused_mlp.wgsl");
/// The workgroup-memory fused MLP: every hidden layer forward, and every
/// layer's activation gradient backward, in one dispatch each.
pub const FUSED_MLP_LANES_WGSL: &str = include_str!("../../shaders/fused_mlp_lanes.wgsl");
/// The workgroup-memory fused MLP's weight and bias gradients of every layer.
pub const FUSED_MLP_GRADS_WGSL: &str = include_str!("../../shaders/fused_mlp_grads.wgsl");

/// Formats an f32 as a WGSL literal that parses back to the same value
/// (always with a decimal point or an exponent, as WGSL requires).
pub fn wgsl_f32(v: f32) -> String {
    let s = format!("{v:?}");
    if s.contains('.') || s.contains('e') || s.contains("inf") || s.contains("NaN") {
        s
    } else {
        format!("{s}.0")
    }
}

/// The WGSL expression for the value an activation (or its derivative) takes
/// at an infinite input `z`. Infinity has no WGSL literal (and a constant
/// infinity is a compile error), so an infinite limit is expressed through `z`.
fn limit_expr(value: f64, z_positive: bool) -> String {
    if value.is_infinite() {
        let same_sign = (value > 0.0) == z_positive;
        return if same_sign { "z".into() } else { "-z".into() };
    }
    wgsl_f32(value as f32)
}

fn params_of(act: Activation) -> (f32, f32) {
    match act {
        Activation::LeakyRelu { negative_slope: s } | Activation::Prelu { weight: s } => (s, 0.0),
        Activation::Elu { alpha } | Activation::Celu { alpha } => (alpha, 0.0),
        Activation::Softplus { beta, threshold } => (beta, threshold),
        Activation::Hardtanh { min_val, max_val } => (min_val, max_val),
        _ => (0.0, 0.0),
    }
}

fn wgsl_name(act: Activation) -> &'static str {
    match act {
        Activation::Prelu { .. } => "leaky_relu",
        other => other.name(),
    }
}

/// The generated WGSL that binds `activation(z)`, `activation_derivative(z)`
/// and, where the activation supports it, `activation_derivative_from_output(y)`
/// to one activation with its parameters.
pub fn activation_binding(act: Activation) -> String {
    let (p0, p1) = params_of(act);
    let (p0, p1) = (wgsl_f32(p0), wgsl_f32(p1));
    let name = wgsl_name(act);
    let f = |x: f64| crate::activation::exact::forward_f64(act, x);
    let df = |x: f64| crate::activation::exact::derivative_f64(act, x);
    let mut out = format!(
        "// Binding generated for `{act}`.\n\
         fn activation(z: f32) -> f32 {{\n\
         \x20   if (is_nan_f32(z)) {{ return z; }}\n\
         \x20   if (is_inf_f32(z)) {{ return select({neg}, {pos}, z > 0.0); }}\n\
         \x20   return flush_subnormal(act_{name}(z, {p0}, {p1}));\n\
         }}\n\
         fn activation_derivative(z: f32) -> f32 {{\n\
         \x20   if (is_nan_f32(z)) {{ return z; }}\n\
         \x20   if (is_inf_f32(z)) {{ return select({dneg}, {dpos}, z > 0.0); }}\n\
         \x20   return flush_subnormal(dact_{name}(z, {p0}, {p1}));\n\
         }}\n",
        neg = limit_expr(f(f64::NEG_INFINITY), false),
        pos = limit_expr(f(f64::INFINITY), true),
        dneg = limit_expr(df(f64::NEG_INFINITY), false),
        dpos = limit_expr(df(f64::INFINITY), true),
    );
    let from_output = match act {
        Activation::Identity => Some(("identity", p0.clone(), p1.clone())),
        Activation::Relu => Some(("relu", p0.clone(), p1.clone())),
        Activation::LeakyRelu { .. } | Activation::Prelu { .. } => {
            Some(("leaky_relu", p0.clone(), p1.clone()))
        }
        Activation::Hardtanh { .. } => Some(("hardtanh", p0.clone(), p1.clone())),
        Activation::Relu6 => Some(("hardtanh", "0.0".into(), "6.0".into())),
        _ => None,
    };
    match act.saved() {
        Saved::PreActivation => out.push_str(
            "fn derivative_from_saved(s: f32) -> f32 { return activation_derivative(s); }\n",
        ),
        Saved::Output | Saved::Nothing => {
            let (fname, a, b) =
                from_output.expect("every Saved::Output activation has a WGSL form");
            out.push_str(&format!(
                "fn activation_derivative_from_output(y: f32) -> f32 {{\n\
                 \x20   if (is_nan_f32(y)) {{ return y; }}\n\
                 \x20   return dact_from_output_{fname}(y, {a}, {b});\n\
                 }}\n\
                 fn derivative_from_saved(s: f32) -> f32 {{ return activation_derivative_from_output(s); }}\n"
            ));
        }
    }
    out
}

/// A kernel's full source: the activation library and binding (when an
/// activation is given) followed by the kernel file.
pub fn assemble(kernel: &str, act: Option<Activation>) -> String {
    match act {
        Some(a) => format!("{ACTIVATIONS_WGSL}\n{}\n{kernel}", activation_binding(a)),
        None => kernel.to_string(),
    }
}

/// Parses and validates WGSL with naga, as wgpu will; no device needed.
pub fn validate(name: &str, source: &str) -> Result<(), Error> {
    let module = naga::front::wgsl::parse_str(source).map_err(|e| Error::Shader {
        name: name.to_string(),
        message: e.emit_to_string(source),
    })?;
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    )
    .validate(&module)
    .map_err(|e| Error::Shader {
        name: name.to_string(),
        message: e.emit_to_string(source),
    })?;
    Ok(())
}

/// The peak-rate kernel with `mad` bound to `fma()` (`use_fma`) or `a * b + c`.
pub fn peak_source(use_fma: bool) -> String {
    let body = if use_fma { "fma(a, b, c)" } else { "a * b + c" };
    format!("fn mad(a: vec4<f32>, b: vec4<f32>, c: vec4<f32>) -> vec4<f32> {{ return {body}; }}\n{PEAK_WGSL}")
}

/// The loss kernels' source (`shaders/loss.wgsl` with its per-row maths).
pub(crate) fn loss_source() -> String {
    format!("{ACTIVATIONS_WGSL}\n{LOSS_ROW_WGSL}\n{LOSS_WGSL}")
}

/// The fused path's output-layer kernel's source (`shaders/head.wgsl`).
pub(crate) fn head_source() -> String {
    format!("{ACTIVATIONS_WGSL}\n{LOSS_ROW_WGSL}\n{HEAD_COMMON_WGSL}\n{HEAD_WGSL}")
}

/// Its vec4 twin's source (`shaders/head4.wgsl`), for widths that are
/// multiples of 4, with the SGD its `head_step_sgd` folds in.
pub(crate) fn head4_source() -> String {
    format!(
        "{ACTIVATIONS_WGSL}\n{LOSS_ROW_WGSL}\n{HEAD_COMMON_WGSL}\n{OPTIM_COMMON_WGSL}\n{SGD_FOLD_WGSL}\n{HEAD4_WGSL}"
    )
}

/// The optimizer's source: [`OPTIM_COMMON_WGSL`] and [`OPTIMIZER_WGSL`].
pub fn optimizer_source() -> String {
    format!("{OPTIM_COMMON_WGSL}\n{OPTIMIZER_WGSL}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_always_have_a_point_or_exponent() {
        assert_eq!(wgsl_f32(1.0), "1.0");
        assert_eq!(wgsl_f32(-2.0), "-2.0");
        assert_eq!(wgsl_f32(0.01), "0.01");
        assert_eq!(wgsl_f32(1e-30), "1e-30");
        assert_eq!(wgsl_f32(0.1).parse::<f32>().unwrap(), 0.1);
    }
}
