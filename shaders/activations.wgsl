// Every activation f(z) and its derivative f'(z), the one place they live in
// WGSL. CPU twin: src/reference/activation.rs.
//
// Each function takes (z, p0, p1): the activation's parameters, baked in as
// literals by src/gpu/shader.rs, which also wraps these in `activation(z)`
// and `activation_derivative(z)` with the NaN and infinity handling, so the
// functions here only need to be right (and finite) for finite z.
//
// Numerics: WGSL's tanh may return NaN past |z| ~ 88 and has no erf, expm1 or
// log1p, so those are written here from exp and log. Every formula keeps
// exp's argument <= 0 or bounded, so nothing overflows for |z| up to f32's max.

const SELU_SCALE: f32 = 1.0507009873554805;
const SELU_ALPHA: f32 = 1.6732632423543772;
const SQRT_2_OVER_PI: f32 = 0.7978845608028654;
const GELU_KAPPA: f32 = 0.044715;
const INV_SQRT_2: f32 = 0.7071067811865476;
const INV_SQRT_2PI: f32 = 0.3989422804014327;

// exp with its argument clamped at -87: below that exp's result (and the
// intermediates of some drivers' exp) are subnormal, which CPU drivers
// compute 10-100x slower; fm_exp(-87) = 1.6e-38 is already far below every
// tolerance.
fn fm_exp(x: f32) -> f32 {
    return exp(max(x, -87.0));
}

// fm_exp(x) - 1 without cancellation near 0 (Taylor to x^7 below |x| = 0.25:
// truncation error under 0.25^8/8! = 3.8e-10 relative).
fn fm_expm1(x: f32) -> f32 {
    if (abs(x) < 0.25) {
        return x * (1.0 + x * (0.5 + x * (0.16666667 + x * (0.041666668
            + x * (0.008333334 + x * (0.0013888889 + x * 0.0001984127))))));
    }
    return fm_exp(x) - 1.0;
}

// log(1 + u) for u > -1. Near 0 a Taylor series (to u^7; truncation error
// under 0.0625^8/8 = 7e-11 relative), because some drivers' log is only
// absolutely accurate near 1; elsewhere the log(w)·u/(w−1) correction.
fn fm_log1p(u: f32) -> f32 {
    if (abs(u) < 0.0625) {
        return u * (1.0 + u * (-0.5 + u * (0.33333334 + u * (-0.25 + u * (0.2
            + u * (-0.16666667 + u * 0.14285715))))));
    }
    let w = 1.0 + u;
    if (w == 1.0) {
        return u;
    }
    return log(w) * (u / (w - 1.0));
}

// 1 / (1 + fm_exp(-x)), with exp's argument always <= 0.
fn fm_sigmoid(x: f32) -> f32 {
    let e = fm_exp(-abs(x));
    let s = 1.0 / (1.0 + e);
    return select(e * s, s, x >= 0.0);
}

// sigmoid'(x) = e / (1 + e)^2, e = fm_exp(-|x|): no 1 - s cancellation.
fn fm_sigmoid_derivative(x: f32) -> f32 {
    let e = fm_exp(-abs(x));
    let d = 1.0 + e;
    return e / (d * d);
}

// tanh through fm_exp(-2|x|); odd Taylor series near 0 where 1 - e cancels.
fn fm_tanh(x: f32) -> f32 {
    let a = abs(x);
    if (a < 0.125) {
        let x2 = x * x;
        return x * (1.0 + x2 * (-0.33333334 + x2 * (0.13333334 + x2 * -0.053968254)));
    }
    let e = fm_exp(-2.0 * a);
    let t = (1.0 - e) / (1.0 + e);
    return select(-t, t, x >= 0.0);
}

// 1 - tanh(x)^2 = 4e / (1 + e)^2, e = fm_exp(-2|x|).
fn fm_tanh_derivative(x: f32) -> f32 {
    let e = fm_exp(-2.0 * abs(x));
    let d = 1.0 + e;
    return 4.0 * e / (d * d);
}

// log(1 + fm_exp(x)) = max(x, 0) + log1p(fm_exp(-|x|)).
fn fm_softplus1(x: f32) -> f32 {
    return max(x, 0.0) + fm_log1p(fm_exp(-abs(x)));
}

// erfc(x), fractional error below 1.2e-7 everywhere (the Chebyshev fit of
// Numerical Recipes' erfcc); exp's argument is <= 0.
fn fm_erfc(x: f32) -> f32 {
    let z = abs(x);
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418
        + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587
        + t * (-0.82215223 + t * 0.17087277))))))));
    let r = t * fm_exp(poly);
    return select(2.0 - r, r, x >= 0.0);
}

// Standard normal CDF.
fn fm_normal_cdf(x: f32) -> f32 {
    return 0.5 * fm_erfc(-x * INV_SQRT_2);
}

fn act_identity(z: f32, p0: f32, p1: f32) -> f32 { return z; }
fn dact_identity(z: f32, p0: f32, p1: f32) -> f32 { return 1.0; }

fn act_relu(z: f32, p0: f32, p1: f32) -> f32 { return select(0.0, z, z > 0.0); }
fn dact_relu(z: f32, p0: f32, p1: f32) -> f32 { return select(0.0, 1.0, z > 0.0); }

// leaky_relu and prelu (p0 = slope); f'(0) = slope as in PyTorch.
fn act_leaky_relu(z: f32, p0: f32, p1: f32) -> f32 { return select(z * p0, z, z > 0.0); }
fn dact_leaky_relu(z: f32, p0: f32, p1: f32) -> f32 { return select(p0, 1.0, z > 0.0); }

// p0 = alpha; f'(0) = alpha as in PyTorch.
fn act_elu(z: f32, p0: f32, p1: f32) -> f32 {
    return select(p0 * fm_expm1(min(z, 0.0)), z, z > 0.0);
}
fn dact_elu(z: f32, p0: f32, p1: f32) -> f32 {
    return select(p0 * fm_exp(min(z, 0.0)), 1.0, z > 0.0);
}

fn act_selu(z: f32, p0: f32, p1: f32) -> f32 {
    return SELU_SCALE * select(SELU_ALPHA * fm_expm1(min(z, 0.0)), z, z > 0.0);
}
fn dact_selu(z: f32, p0: f32, p1: f32) -> f32 {
    return SELU_SCALE * select(SELU_ALPHA * fm_exp(min(z, 0.0)), 1.0, z > 0.0);
}

// p0 = alpha (non-zero); f'(0) = 1.
fn act_celu(z: f32, p0: f32, p1: f32) -> f32 {
    return select(p0 * fm_expm1(min(z, 0.0) / p0), z, z > 0.0);
}
fn dact_celu(z: f32, p0: f32, p1: f32) -> f32 {
    return select(fm_exp(min(z, 0.0) / p0), 1.0, z > 0.0);
}

fn act_gelu(z: f32, p0: f32, p1: f32) -> f32 { return z * fm_normal_cdf(z); }
fn dact_gelu(z: f32, p0: f32, p1: f32) -> f32 {
    // fm_exp(-z^2/2) underflows to 0 for large |z|, so z * pdf stays finite.
    return fm_normal_cdf(z) + z * (INV_SQRT_2PI * fm_exp(-0.5 * z * z));
}

// 0.5 z (1 + tanh(u)) = z sigmoid(2u): no cancellation for negative z.
fn gelu_tanh_inner(z: f32) -> f32 {
    // The cubic overflows f32 only past |z| ~ 1.9e12, where sigmoid is saturated.
    let zc = clamp(z, -1.0e12, 1.0e12);
    return SQRT_2_OVER_PI * (zc + GELU_KAPPA * zc * zc * zc);
}
fn act_gelu_tanh(z: f32, p0: f32, p1: f32) -> f32 {
    return z * fm_sigmoid(2.0 * gelu_tanh_inner(z));
}
fn dact_gelu_tanh(z: f32, p0: f32, p1: f32) -> f32 {
    let u = gelu_tanh_inner(z);
    let zc = clamp(z, -1.0e6, 1.0e6);
    let du = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_KAPPA * zc * zc);
    // sech^2(u) underflows to exactly 0 long before z * du could overflow.
    return fm_sigmoid(2.0 * u) + 0.5 * zc * fm_tanh_derivative(u) * du;
}

fn act_sigmoid(z: f32, p0: f32, p1: f32) -> f32 { return fm_sigmoid(z); }
fn dact_sigmoid(z: f32, p0: f32, p1: f32) -> f32 { return fm_sigmoid_derivative(z); }

fn act_tanh(z: f32, p0: f32, p1: f32) -> f32 { return fm_tanh(z); }
fn dact_tanh(z: f32, p0: f32, p1: f32) -> f32 { return fm_tanh_derivative(z); }

// p0 = beta (> 0), p1 = threshold: linear where beta z > threshold.
fn act_softplus(z: f32, p0: f32, p1: f32) -> f32 {
    let bz = z * p0;
    return select(fm_softplus1(bz) / p0, z, bz > p1);
}
fn dact_softplus(z: f32, p0: f32, p1: f32) -> f32 {
    let bz = z * p0;
    return select(fm_sigmoid(bz), 1.0, bz > p1);
}

fn act_silu(z: f32, p0: f32, p1: f32) -> f32 { return z * fm_sigmoid(z); }
fn dact_silu(z: f32, p0: f32, p1: f32) -> f32 {
    return fm_sigmoid(z) + z * fm_sigmoid_derivative(z);
}

// mish uses PyTorch's softplus (threshold 20).
fn mish_softplus(z: f32) -> f32 { return select(fm_softplus1(z), z, z > 20.0); }
fn act_mish(z: f32, p0: f32, p1: f32) -> f32 { return z * fm_tanh(mish_softplus(z)); }
fn dact_mish(z: f32, p0: f32, p1: f32) -> f32 {
    let sp = mish_softplus(z);
    return fm_tanh(sp) + z * fm_tanh_derivative(sp) * fm_sigmoid(z);
}

// p0 = min_val, p1 = max_val; f' = 0 at and beyond the bounds.
fn act_hardtanh(z: f32, p0: f32, p1: f32) -> f32 { return clamp(z, p0, p1); }
fn dact_hardtanh(z: f32, p0: f32, p1: f32) -> f32 {
    return select(0.0, 1.0, z > p0 && z < p1);
}

fn act_relu6(z: f32, p0: f32, p1: f32) -> f32 { return clamp(z, 0.0, 6.0); }
fn dact_relu6(z: f32, p0: f32, p1: f32) -> f32 { return select(0.0, 1.0, z > 0.0 && z < 6.0); }

fn act_hardsigmoid(z: f32, p0: f32, p1: f32) -> f32 { return clamp(z + 3.0, 0.0, 6.0) / 6.0; }
fn dact_hardsigmoid(z: f32, p0: f32, p1: f32) -> f32 {
    return select(0.0, 1.0 / 6.0, z > -3.0 && z < 3.0);
}

// f'(-3) = -0.5 and f'(3) = 1.5, PyTorch's convention.
fn act_hardswish(z: f32, p0: f32, p1: f32) -> f32 {
    if (z <= -3.0) { return 0.0; }
    if (z >= 3.0) { return z; }
    return z * (z + 3.0) / 6.0;
}
fn dact_hardswish(z: f32, p0: f32, p1: f32) -> f32 {
    if (z < -3.0) { return 0.0; }
    if (z <= 3.0) { return z / 3.0 + 0.5; }
    return 1.0;
}

fn act_softsign(z: f32, p0: f32, p1: f32) -> f32 { return z / (1.0 + abs(z)); }
fn dact_softsign(z: f32, p0: f32, p1: f32) -> f32 {
    let d = 1.0 + abs(z);
    return 1.0 / (d * d);
}

// log(sigmoid(z)) = min(z, 0) - log1p(fm_exp(-|z|)).
fn act_log_sigmoid(z: f32, p0: f32, p1: f32) -> f32 {
    return min(z, 0.0) - fm_log1p(fm_exp(-abs(z)));
}
fn dact_log_sigmoid(z: f32, p0: f32, p1: f32) -> f32 { return fm_sigmoid(-z); }

// The derivative from the output y = f(z), for the activations whose
// backward keeps y instead of z (see `Saved::Output` in src/activation.rs).
fn dact_from_output_relu(y: f32, p0: f32, p1: f32) -> f32 { return select(0.0, 1.0, y > 0.0); }
fn dact_from_output_leaky_relu(y: f32, p0: f32, p1: f32) -> f32 { return select(p0, 1.0, y > 0.0); }
fn dact_from_output_hardtanh(y: f32, p0: f32, p1: f32) -> f32 {
    return select(0.0, 1.0, y > p0 && y < p1);
}
fn dact_from_output_identity(y: f32, p0: f32, p1: f32) -> f32 { return 1.0; }

// Results below 1e-30 in magnitude become 0. Such values are far below
// every tolerance, but multiplied by a weight in the next GEMM they give
// subnormal products, which CPU drivers (lavapipe) compute 10-100x slower:
// a saturated tanh layer (f' = 4e^(-2|z|), |z| > 35) made its backward 2-5x
// slower before this. NaN passes through (the comparison is false).
fn flush_subnormal(v: f32) -> f32 {
    return select(v, 0.0 * v, abs(v) < 1.0e-30);
}

// NaN and infinity tests on the bits: immune to any fast-math assumption.
fn is_nan_f32(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}
fn is_inf_f32(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) == 0x7f800000u;
}
