//! CPU twin of `shaders/activations.wgsl`: every activation and its
//! derivative over a tensor, each element computed in f64 (the exact maths,
//! with PyTorch's conventions at the kinks, is
//! [`activation::exact`](crate::activation::exact)) and rounded once.

pub use crate::activation::exact::{derivative_f64, derivative_from_output_f64, forward_f64};
use crate::activation::Activation;
use crate::error::Error;

/// `f(z)` for every element, computed in f64 and rounded once to f32.
pub fn activation_forward(act: Activation, z: &[f32]) -> Vec<f32> {
    z.iter()
        .map(|&v| forward_f64(act, v as f64) as f32)
        .collect()
}

/// `dL/dz = dy ⊙ f'(z)`, computed in f64 and rounded once to f32.
pub fn activation_backward(act: Activation, z: &[f32], dy: &[f32]) -> Result<Vec<f32>, Error> {
    if z.len() != dy.len() {
        return Err(Error::shape(
            "activation_backward: dy must have z's length",
            format!("dy of length {}", z.len()),
            format!("dy of length {} (z has {})", dy.len(), z.len()),
        ));
    }
    Ok(z.iter()
        .zip(dy)
        .map(|(&z, &g)| (g as f64 * derivative_f64(act, z as f64)) as f32)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivatives_match_finite_differences() {
        for act in Activation::ALL {
            for &x in &[-7.3, -2.9, -1.1, -0.4, 0.37, 1.3, 2.2, 4.1, 9.0] {
                let h = 1e-6;
                let fd = (forward_f64(act, x + h) - forward_f64(act, x - h)) / (2.0 * h);
                let d = derivative_f64(act, x);
                assert!(
                    (fd - d).abs() < 1e-6 * (1.0 + d.abs()),
                    "{act} at {x}: derivative {d}, finite difference {fd}"
                );
            }
        }
    }

    #[test]
    fn kinks_follow_pytorch() {
        assert_eq!(derivative_f64(Activation::Relu, 0.0), 0.0);
        assert_eq!(
            derivative_f64(
                Activation::LeakyRelu {
                    negative_slope: 0.01
                },
                0.0
            ),
            0.01f32 as f64
        );
        let ht = Activation::Hardtanh {
            min_val: -1.0,
            max_val: 1.0,
        };
        assert_eq!(derivative_f64(ht, -1.0), 0.0);
        assert_eq!(derivative_f64(ht, 1.0), 0.0);
        assert_eq!(derivative_f64(Activation::Relu6, 6.0), 0.0);
        assert_eq!(derivative_f64(Activation::Hardswish, -3.0), -0.5);
        assert_eq!(derivative_f64(Activation::Hardswish, 3.0), 1.5);
        assert_eq!(derivative_f64(Activation::Elu { alpha: 2.0 }, 0.0), 2.0);
        let sp = Activation::Softplus {
            beta: 1.0,
            threshold: 20.0,
        };
        assert_eq!(forward_f64(sp, 25.0), 25.0);
        assert_eq!(derivative_f64(sp, 25.0), 1.0);
    }

    #[test]
    fn output_form_of_the_derivative_agrees() {
        for act in Activation::ALL {
            if act.saved() == crate::activation::Saved::PreActivation {
                continue;
            }
            for &x in &[-7.0, -1.0, 0.0, 1e-7, 0.5, 1.0, 5.99, 6.0, 8.0] {
                let y = forward_f64(act, x);
                assert_eq!(
                    derivative_from_output_f64(act, y),
                    Some(derivative_f64(act, x)),
                    "{act} at {x}"
                );
            }
        }
    }

    #[test]
    fn limits_at_infinity_are_finite_where_they_exist() {
        for act in Activation::ALL {
            for x in [f64::INFINITY, f64::NEG_INFINITY] {
                assert!(!forward_f64(act, x).is_nan(), "{act}({x}) is NaN");
                assert!(!derivative_f64(act, x).is_nan(), "{act}'({x}) is NaN");
            }
            assert!(forward_f64(act, f64::NAN).is_nan());
            assert!(derivative_f64(act, f64::NAN).is_nan());
        }
    }
}
