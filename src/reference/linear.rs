//! CPU twin of the fused linear layer (`src/gpu/linear.rs`), f64 accumulation.

use super::activation::{derivative_f64, forward_f64};
use crate::activation::Activation;
use crate::error::Error;
use crate::gpu::linear::{LinearGrads, LinearShape};

/// `Z = X·Wᵀ + b` in f64. x `[batch, in]`, w `[out, in]`, b `[out]`.
pub fn linear_preactivation_f64(x: &[f32], w: &[f32], b: &[f32], shape: LinearShape) -> Vec<f64> {
    let LinearShape {
        batch,
        in_features: n_in,
        out_features: n_out,
    } = shape;
    let mut z = vec![0.0f64; batch * n_out];
    for r in 0..batch {
        let xr = &x[r * n_in..(r + 1) * n_in];
        for o in 0..n_out {
            let wr = &w[o * n_in..(o + 1) * n_in];
            let mut acc = b[o] as f64;
            for (xv, wv) in xr.iter().zip(wr) {
                acc += *xv as f64 * *wv as f64;
            }
            z[r * n_out + o] = acc;
        }
    }
    z
}

/// `act(X·Wᵀ + b)`, accumulated in f64 and rounded once.
pub fn linear_forward(
    act: Activation,
    x: &[f32],
    w: &[f32],
    b: &[f32],
    shape: LinearShape,
) -> Result<Vec<f32>, Error> {
    act.validate()?;
    check(shape, x, w, b, None)?;
    Ok(linear_preactivation_f64(x, w, b, shape)
        .into_iter()
        .map(|z| forward_f64(act, z) as f32)
        .collect())
}

/// dX, dW and db of `act(X·Wᵀ + b)` for upstream gradient dy `[batch, out]`,
/// accumulated in f64 and rounded once.
pub fn linear_backward(
    act: Activation,
    x: &[f32],
    w: &[f32],
    b: &[f32],
    dy: &[f32],
    shape: LinearShape,
) -> Result<LinearGrads, Error> {
    act.validate()?;
    check(shape, x, w, b, Some(dy))?;
    let LinearShape {
        batch,
        in_features: n_in,
        out_features: n_out,
    } = shape;
    let z = linear_preactivation_f64(x, w, b, shape);
    let dz: Vec<f64> = z
        .iter()
        .zip(dy)
        .map(|(&z, &g)| g as f64 * derivative_f64(act, z))
        .collect();
    let mut dx = vec![0.0f64; batch * n_in];
    let mut dw = vec![0.0f64; n_out * n_in];
    let mut db = vec![0.0f64; n_out];
    for r in 0..batch {
        for o in 0..n_out {
            let d = dz[r * n_out + o];
            db[o] += d;
            if d == 0.0 {
                continue;
            }
            let wr = &w[o * n_in..(o + 1) * n_in];
            let xr = &x[r * n_in..(r + 1) * n_in];
            let dxr = &mut dx[r * n_in..(r + 1) * n_in];
            for (acc, wv) in dxr.iter_mut().zip(wr) {
                *acc += d * *wv as f64;
            }
            let dwr = &mut dw[o * n_in..(o + 1) * n_in];
            for (acc, xv) in dwr.iter_mut().zip(xr) {
                *acc += d * *xv as f64;
            }
        }
    }
    let round = |v: Vec<f64>| v.into_iter().map(|v| v as f32).collect();
    Ok(LinearGrads {
        dx: round(dx),
        dw: round(dw),
        db: round(db),
    })
}

fn check(
    shape: LinearShape,
    x: &[f32],
    w: &[f32],
    b: &[f32],
    dy: Option<&[f32]>,
) -> Result<(), Error> {
    shape.check_slices("reference linear", x, w, b, dy)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Finite differences in f64 on a tiny layer, for every activation.
    #[test]
    fn gradients_match_finite_differences() {
        let shape = LinearShape::new(3, 4, 2);
        let x: Vec<f32> = (0..12)
            .map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.21)
            .collect();
        let w: Vec<f32> = (0..8).map(|i| ((i * 5 % 7) as f32 - 3.0) * 0.17).collect();
        let b = [0.05f32, -0.11];
        let dy: Vec<f32> = (0..6).map(|i| (i as f32 - 2.5) * 0.3).collect();
        // Loss L = Σ dy ⊙ act(z) in f64, perturbing one f64 input at a time.
        for act in Activation::ALL {
            let g = linear_backward(act, &x, &w, &b, &dy, shape).unwrap();
            let loss = |x: &[f64], w: &[f64], b: &[f64]| -> f64 {
                let mut total = 0.0;
                for r in 0..3 {
                    for o in 0..2 {
                        let mut z = b[o];
                        for k in 0..4 {
                            z += x[r * 4 + k] * w[o * 4 + k];
                        }
                        total += dy[r * 2 + o] as f64 * forward_f64(act, z);
                    }
                }
                total
            };
            let (x64, w64, b64): (Vec<f64>, Vec<f64>, Vec<f64>) = (
                x.iter().map(|&v| v as f64).collect(),
                w.iter().map(|&v| v as f64).collect(),
                b.iter().map(|&v| v as f64).collect(),
            );
            let h = 1e-6;
            let fd = |which: usize, idx: usize| {
                let (mut xp, mut wp, mut bp) = (x64.clone(), w64.clone(), b64.clone());
                let (mut xm, mut wm, mut bm) = (x64.clone(), w64.clone(), b64.clone());
                match which {
                    0 => {
                        xp[idx] += h;
                        xm[idx] -= h
                    }
                    1 => {
                        wp[idx] += h;
                        wm[idx] -= h
                    }
                    _ => {
                        bp[idx] += h;
                        bm[idx] -= h
                    }
                }
                (loss(&xp, &wp, &bp) - loss(&xm, &wm, &bm)) / (2.0 * h)
            };
            for (which, grads) in [(0, &g.dx), (1, &g.dw), (2, &g.db)] {
                for (idx, &an) in grads.iter().enumerate() {
                    let num = fd(which, idx);
                    assert!(
                        (num - an as f64).abs() < 1e-4 * (1.0 + num.abs()),
                        "{act}: gradient {which}[{idx}] analytic {an}, numeric {num}"
                    );
                }
            }
        }
    }
}
