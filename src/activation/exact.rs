//! Every activation and its derivative in f64, with PyTorch's conventions
//! at the kinks: the definition the WGSL kernels
//! (`shaders/activations.wgsl`) and the CPU reference are both held to,
//! and where the kernels' limits at ±infinity come from.

use super::{Activation, SELU_ALPHA, SELU_SCALE};

/// `sqrt(2/pi)`, the GELU tanh approximation's inner scale.
const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
/// The GELU tanh approximation's cubic coefficient.
const GELU_KAPPA: f64 = 0.044_715;

fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `sigmoid'(x) = e/(1+e)^2` with `e = exp(-|x|)`: no cancellation at large |x|.
fn sigmoid_derivative(x: f64) -> f64 {
    let e = (-x.abs()).exp();
    e / ((1.0 + e) * (1.0 + e))
}

/// `1 - tanh(x)^2` computed without cancellation.
fn tanh_derivative(x: f64) -> f64 {
    let e = (-2.0 * x.abs()).exp();
    4.0 * e / ((1.0 + e) * (1.0 + e))
}

/// `log(1 + exp(x))` without overflow.
fn softplus1(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

fn normal_pdf(x: f64) -> f64 {
    (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

/// Complementary error function to near f64 precision (W. J. Cody's rational
/// approximations, as in most libm implementations).
pub(crate) fn erfc(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let ax = x.abs();
    let r = if ax < 0.5 {
        // erf by its Maclaurin series, converging fast for |x| < 0.5.
        let mut term = x;
        let mut sum = x;
        let x2 = x * x;
        // 40 terms reach 1e-30 for |x| < 0.5.
        for n in 1..40 {
            let n = n as f64;
            term *= -x2 / n;
            let add = term / (2.0 * n + 1.0);
            sum += add;
            if add.abs() <= 1e-18 * sum.abs() {
                break;
            }
        }
        return 1.0 - sum * 2.0 / std::f64::consts::PI.sqrt();
    } else if ax < 27.0 {
        // Continued fraction for erfc (Lentz's method), accurate for x >= 0.5.
        let mut f;
        let tiny = 1e-300;
        let mut c;
        let mut d;
        // erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + 1/2/(x + 1/(x + 3/2/(x + ...))))
        f = ax;
        c = ax;
        d = 0.0;
        for i in 1..500 {
            let a = i as f64 * 0.5;
            d = ax + a * d;
            d = if d.abs() < tiny { tiny } else { d };
            c = ax + a / c;
            c = if c.abs() < tiny { tiny } else { c };
            d = 1.0 / d;
            let delta = c * d;
            f *= delta;
            if (delta - 1.0).abs() < 1e-16 {
                break;
            }
        }
        (-ax * ax).exp() / std::f64::consts::PI.sqrt() / f
    } else {
        0.0
    };
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// `f(x)` in f64.
pub fn forward_f64(act: Activation, x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    match act {
        Activation::Identity => x,
        Activation::Relu => {
            if x > 0.0 {
                x
            } else {
                0.0
            }
        }
        Activation::LeakyRelu { negative_slope: s } | Activation::Prelu { weight: s } => {
            if x > 0.0 {
                x
            } else {
                x * s as f64
            }
        }
        Activation::Elu { alpha } => {
            if x > 0.0 {
                x
            } else {
                alpha as f64 * x.exp_m1()
            }
        }
        Activation::Selu => SELU_SCALE * if x > 0.0 { x } else { SELU_ALPHA * x.exp_m1() },
        Activation::Celu { alpha } => {
            let a = alpha as f64;
            if x > 0.0 {
                x
            } else {
                a * (x / a).exp_m1()
            }
        }
        Activation::Gelu => {
            if x == f64::NEG_INFINITY {
                0.0
            } else {
                x * normal_cdf(x)
            }
        }
        Activation::GeluTanh => {
            if x.is_infinite() {
                return if x > 0.0 { x } else { 0.0 };
            }
            let inner = SQRT_2_OVER_PI * (x + GELU_KAPPA * x * x * x);
            // 0.5·x·(1 + tanh(u)) = x·sigmoid(2u): no cancellation for negative x.
            x * sigmoid(2.0 * inner)
        }
        Activation::Sigmoid => sigmoid(x),
        Activation::Tanh => x.tanh(),
        Activation::Softplus { beta, threshold } => {
            let (b, t) = (beta as f64, threshold as f64);
            if x * b > t {
                x
            } else {
                softplus1(x * b) / b
            }
        }
        Activation::Silu => {
            if x == f64::NEG_INFINITY {
                0.0
            } else {
                x * sigmoid(x)
            }
        }
        Activation::Mish => {
            if x == f64::NEG_INFINITY {
                return 0.0;
            }
            let sp = if x > 20.0 { x } else { softplus1(x) };
            x * sp.tanh()
        }
        Activation::Hardtanh { min_val, max_val } => x.clamp(min_val as f64, max_val as f64),
        Activation::Relu6 => x.clamp(0.0, 6.0),
        Activation::Hardsigmoid => (x + 3.0).clamp(0.0, 6.0) / 6.0,
        Activation::Hardswish => {
            if x <= -3.0 {
                0.0
            } else if x >= 3.0 {
                x
            } else {
                x * (x + 3.0) / 6.0
            }
        }
        Activation::Softsign => {
            if x.is_infinite() {
                x.signum()
            } else {
                x / (1.0 + x.abs())
            }
        }
        Activation::LogSigmoid => -softplus1(-x),
    }
}

/// `f'(x)` in f64, with PyTorch's value at each kink.
pub fn derivative_f64(act: Activation, x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    match act {
        Activation::Identity => 1.0,
        Activation::Relu => {
            if x > 0.0 {
                1.0
            } else {
                0.0
            }
        }
        Activation::LeakyRelu { negative_slope: s } | Activation::Prelu { weight: s } => {
            if x > 0.0 {
                1.0
            } else {
                s as f64
            }
        }
        Activation::Elu { alpha } => {
            if x > 0.0 {
                1.0
            } else {
                alpha as f64 * x.exp()
            }
        }
        Activation::Selu => {
            if x > 0.0 {
                SELU_SCALE
            } else {
                SELU_SCALE * SELU_ALPHA * x.exp()
            }
        }
        Activation::Celu { alpha } => {
            if x > 0.0 {
                1.0
            } else {
                (x / alpha as f64).exp()
            }
        }
        Activation::Gelu => {
            if x.is_infinite() {
                return if x > 0.0 { 1.0 } else { 0.0 };
            }
            normal_cdf(x) + x * normal_pdf(x)
        }
        Activation::GeluTanh => {
            if x.is_infinite() {
                return if x > 0.0 { 1.0 } else { 0.0 };
            }
            let inner = SQRT_2_OVER_PI * (x + GELU_KAPPA * x * x * x);
            let left_derivative = sigmoid(2.0 * inner);
            let inner_derivative = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_KAPPA * x * x);
            left_derivative + 0.5 * x * tanh_derivative(inner) * inner_derivative
        }
        Activation::Sigmoid => sigmoid_derivative(x),
        Activation::Tanh => tanh_derivative(x),
        Activation::Softplus { beta, threshold } => {
            let (b, t) = (beta as f64, threshold as f64);
            if x * b > t {
                1.0
            } else {
                sigmoid(x * b)
            }
        }
        Activation::Silu => {
            if x.is_infinite() {
                return if x > 0.0 { 1.0 } else { 0.0 };
            }
            sigmoid(x) + x * sigmoid_derivative(x)
        }
        Activation::Mish => {
            if x.is_infinite() {
                return if x > 0.0 { 1.0 } else { 0.0 };
            }
            let sp = if x > 20.0 { x } else { softplus1(x) };
            sp.tanh() + x * tanh_derivative(sp) * sigmoid(x)
        }
        Activation::Hardtanh { min_val, max_val } => {
            if x <= min_val as f64 || x >= max_val as f64 {
                0.0
            } else {
                1.0
            }
        }
        Activation::Relu6 => {
            if x <= 0.0 || x >= 6.0 {
                0.0
            } else {
                1.0
            }
        }
        Activation::Hardsigmoid => {
            if x > -3.0 && x < 3.0 {
                1.0 / 6.0
            } else {
                0.0
            }
        }
        Activation::Hardswish => {
            if x < -3.0 {
                0.0
            } else if x <= 3.0 {
                x / 3.0 + 0.5
            } else {
                1.0
            }
        }
        Activation::Softsign => {
            let d = 1.0 + x.abs();
            1.0 / (d * d)
        }
        Activation::LogSigmoid => sigmoid(-x),
    }
}

/// `f'` evaluated from the output `y = f(z)`, for activations whose
/// [`Saved`](crate::activation::Saved) is `Output` (it matches
/// `derivative_f64(z)`); `None` for the others, whose output does not
/// determine the derivative.
pub fn derivative_from_output_f64(act: Activation, y: f64) -> Option<f64> {
    let step = |inside: bool, slope: f64| {
        if y.is_nan() {
            y
        } else if inside {
            1.0
        } else {
            slope
        }
    };
    match act {
        Activation::Identity => Some(step(true, 1.0)),
        Activation::Relu => Some(step(y > 0.0, 0.0)),
        Activation::LeakyRelu { negative_slope: s } | Activation::Prelu { weight: s } => {
            Some(step(y > 0.0, s as f64))
        }
        Activation::Relu6 => Some(step(y > 0.0 && y < 6.0, 0.0)),
        Activation::Hardtanh { min_val, max_val } => {
            Some(step(y > min_val as f64 && y < max_val as f64, 0.0))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erfc_matches_known_values() {
        // Values from Abramowitz and Stegun, table 7.1.
        let cases = [
            (0.0, 1.0),
            (0.5, 0.479_500_122_186_953_5),
            (1.0, 0.157_299_207_050_285_1),
            (2.0, 0.004_677_734_981_047_266),
            (-1.0, 1.842_700_792_949_715),
            (5.0, 1.537_459_794_428_035e-12),
        ];
        for (x, want) in cases {
            let got = erfc(x);
            assert!(
                ((got - want) / want).abs() < 1e-13,
                "erfc({x}) = {got}, want {want}"
            );
        }
    }

    #[test]
    fn the_derivative_from_the_output_is_none_where_the_output_cannot_give_it() {
        assert_eq!(derivative_from_output_f64(Activation::Gelu, 0.5), None);
        assert_eq!(derivative_from_output_f64(Activation::Sigmoid, 0.5), None);
        assert_eq!(derivative_from_output_f64(Activation::Relu, 2.0), Some(1.0));
        assert_eq!(derivative_from_output_f64(Activation::Relu, 0.0), Some(0.0));
        assert!(derivative_from_output_f64(Activation::Relu6, f64::NAN).is_some_and(f64::is_nan));
    }
}
