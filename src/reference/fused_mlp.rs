//! CPU twin of the fully fused MLP (`src/gpu/fused.rs`): each layer's sums
//! accumulated in f64 and rounded once to f32, as the GPU keeps each
//! layer's values in f32 between layers.

use super::activation::{derivative_f64, forward_f64};
use super::linear::linear_preactivation_f64;
use crate::activation::{Activation, Saved};
use crate::error::Error;
use crate::gpu::fused::{FusedForward, FusedGrads, FusedShape};
use crate::gpu::LinearShape;

fn check(shape: FusedShape, x: &[f32], layers: &[(Vec<f32>, Vec<f32>)]) -> Result<(), Error> {
    shape.check()?;
    if x.len() != shape.batch * shape.input {
        return Err(Error::shape(
            "fused_mlp: x",
            format!("{} floats", shape.batch * shape.input),
            format!("{} floats", x.len()),
        ));
    }
    if layers.len() != shape.layers {
        return Err(Error::shape(
            "fused_mlp: layers",
            shape.layers.to_string(),
            layers.len().to_string(),
        ));
    }
    for (l, (w, b)) in layers.iter().enumerate() {
        if w.len() != shape.width * shape.fan_in(l) || b.len() != shape.width {
            return Err(Error::shape(
                format!("fused_mlp: layer {l} (weight, bias)"),
                format!("({} x {}, {})", shape.width, shape.fan_in(l), shape.width),
                format!("({} floats, {})", w.len(), b.len()),
            ));
        }
    }
    Ok(())
}

/// Per layer (z, y) in f32.
fn layer_values(
    act: Activation,
    x: &[f32],
    layers: &[(Vec<f32>, Vec<f32>)],
    shape: FusedShape,
) -> Vec<(Vec<f32>, Vec<f32>)> {
    let mut h = x.to_vec();
    let mut out = Vec::with_capacity(shape.layers);
    for (l, (w, b)) in layers.iter().enumerate() {
        let z64 = linear_preactivation_f64(
            &h,
            w,
            b,
            LinearShape::new(shape.batch, shape.fan_in(l), shape.width),
        );
        let z: Vec<f32> = z64.iter().map(|&v| v as f32).collect();
        let y: Vec<f32> = z64.iter().map(|&v| forward_f64(act, v) as f32).collect();
        h = y.clone();
        out.push((z, y));
    }
    out
}

/// The twin of [`crate::Gpu::fused_mlp_forward`].
pub fn forward(
    act: Activation,
    x: &[f32],
    layers: &[(Vec<f32>, Vec<f32>)],
    shape: FusedShape,
) -> Result<FusedForward, Error> {
    act.validate()?;
    check(shape, x, layers)?;
    let values = layer_values(act, x, layers, shape);
    let keep_z = act.saved() == Saved::PreActivation;
    let y_last = values.last().map(|v| v.1.clone()).unwrap_or_default();
    Ok(FusedForward {
        saved: values
            .into_iter()
            .map(|(z, y)| if keep_z { z } else { y })
            .collect(),
        y_last,
    })
}

/// The twin of [`crate::Gpu::fused_mlp_backward`].
pub fn backward(
    act: Activation,
    x: &[f32],
    layers: &[(Vec<f32>, Vec<f32>)],
    dy_last: &[f32],
    shape: FusedShape,
) -> Result<FusedGrads, Error> {
    act.validate()?;
    check(shape, x, layers)?;
    if dy_last.len() != shape.batch * shape.width {
        return Err(Error::shape(
            "fused_mlp: dy_last",
            format!("{} floats", shape.batch * shape.width),
            format!("{} floats", dy_last.len()),
        ));
    }
    let values = layer_values(act, x, layers, shape);
    let (rows, width) = (shape.batch, shape.width);
    let mut dz = vec![Vec::new(); shape.layers];
    let mut dy: Vec<f32> = dy_last.to_vec();
    for l in (0..shape.layers).rev() {
        let z = &values[l].0;
        let d: Vec<f32> = dy
            .iter()
            .zip(z)
            .map(|(&g, &z)| (g as f64 * derivative_f64(act, z as f64)) as f32)
            .collect();
        if l > 0 {
            let w = &layers[l].0;
            let mut next = vec![0.0f64; rows * width];
            for r in 0..rows {
                for o in 0..width {
                    let g = d[r * width + o] as f64;
                    if g == 0.0 {
                        continue;
                    }
                    for k in 0..width {
                        next[r * width + k] += g * w[o * width + k] as f64;
                    }
                }
            }
            dy = next.into_iter().map(|v| v as f32).collect();
        }
        dz[l] = d;
    }
    let mut grads = Vec::with_capacity(shape.layers);
    for (l, d) in dz.iter().enumerate() {
        let input: &[f32] = if l == 0 { x } else { &values[l - 1].1 };
        let n_in = shape.fan_in(l);
        let mut dw = vec![0.0f64; width * n_in];
        let mut db = vec![0.0f64; width];
        for r in 0..rows {
            for o in 0..width {
                let g = d[r * width + o] as f64;
                db[o] += g;
                if g == 0.0 {
                    continue;
                }
                for k in 0..n_in {
                    dw[o * n_in + k] += g * input[r * n_in + k] as f64;
                }
            }
        }
        grads.push((
            dw.into_iter().map(|v| v as f32).collect(),
            db.into_iter().map(|v| v as f32).collect(),
        ));
    }
    Ok(FusedGrads { dz, grads })
}
