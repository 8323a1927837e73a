//! CPU twin of a GPU training step: forward through the fused layers,
//! the head's loss and gradient, backward, clipping and the optimizer, in
//! f64 with the same f32 storage between ops as the GPU.

use super::linear::{linear_backward, linear_forward};
use crate::error::Error;
use crate::nn::{Head, MlpConfig, Optimizer};
use crate::train::TrainConfig;
use crate::LinearShape;

/// The mean loss, the number of correct predictions and dL/dlogits for a
/// batch (PyTorch's mean reductions), in f64.
pub fn loss_and_grad(
    head: Head,
    logits: &[f32],
    labels: &[u32],
    classes: usize,
) -> (f64, usize, Vec<f64>) {
    let rows = labels.len();
    let mut loss = 0.0;
    let mut correct = 0;
    let mut grad = vec![0.0f64; rows * classes];
    for (r, &label) in labels.iter().enumerate() {
        let l = &logits[r * classes..(r + 1) * classes];
        let target = |j: usize| -> f64 {
            if classes == 1 {
                label as f64
            } else if j == label as usize {
                1.0
            } else {
                0.0
            }
        };
        let best = (0..classes).fold(0, |b, j| if l[j] > l[b] { j } else { b });
        let mut ok = best == label as usize;
        match head {
            Head::Softmax => {
                let m = l[best] as f64;
                let sum: f64 = l.iter().map(|&v| (v as f64 - m).exp()).sum();
                loss += m + sum.ln() - l[label as usize] as f64;
                for j in 0..classes {
                    let p = (l[j] as f64 - m).exp() / sum;
                    grad[r * classes + j] = (p - target(j)) / rows as f64;
                }
            }
            Head::Sigmoid => {
                for j in 0..classes {
                    let (x, t) = (l[j] as f64, target(j));
                    loss += (x.max(0.0) - x * t + (-x.abs()).exp().ln_1p()) / classes as f64;
                    let s = 1.0 / (1.0 + (-x).exp());
                    grad[r * classes + j] = (s - t) / (rows * classes) as f64;
                }
                if classes == 1 {
                    ok = (l[0] > 0.0) == (label == 1);
                }
            }
            Head::Mse => {
                for j in 0..classes {
                    let d = l[j] as f64 - target(j);
                    loss += d * d / classes as f64;
                    grad[r * classes + j] = 2.0 * d / (rows * classes) as f64;
                }
                if classes == 1 {
                    ok = (l[0] as f64 - label as f64).abs() < 0.5;
                }
            }
        }
        correct += ok as usize;
    }
    (loss / rows.max(1) as f64, correct, grad)
}

/// An MLP with its optimizer state on the CPU.
#[derive(Debug, Clone)]
pub struct ReferenceMlp {
    /// The architecture.
    pub config: MlpConfig,
    /// (weight `[out, in]`, bias `[out]`) per layer.
    pub params: Vec<(Vec<f32>, Vec<f32>)>,
    /// Optimizer state: (first, second) buffers for each parameter tensor,
    /// in the order weight 0, bias 0, weight 1, ...
    state: Vec<(Vec<f32>, Vec<f32>)>,
    /// Steps taken.
    pub step: u64,
}

impl ReferenceMlp {
    /// The same initial parameters as [`crate::Mlp::new`].
    pub fn new(config: MlpConfig) -> Result<Self, Error> {
        config.validate()?;
        let params = config.initial_parameters();
        let state = params
            .iter()
            .flat_map(|(w, b)| {
                [
                    (vec![0.0; w.len()], vec![0.0; w.len()]),
                    (vec![0.0; b.len()], vec![0.0; b.len()]),
                ]
            })
            .collect();
        Ok(ReferenceMlp {
            config,
            params,
            state,
            step: 0,
        })
    }

    /// The logits of `x` `[rows, input]`.
    pub fn forward(&self, x: &[f32], rows: usize) -> Result<Vec<f32>, Error> {
        Ok(self.forward_all(x, rows)?.pop().unwrap_or_default())
    }

    /// The input and every layer's output for `x` `[rows, input]`.
    pub fn forward_all(&self, x: &[f32], rows: usize) -> Result<Vec<Vec<f32>>, Error> {
        let mut outs = vec![x.to_vec()];
        for (l, ((w, b), &(fan_in, fan_out))) in self
            .params
            .iter()
            .zip(&self.config.layer_shapes())
            .enumerate()
        {
            let shape = LinearShape::new(rows, fan_in, fan_out);
            let input = outs.last().expect("input");
            outs.push(linear_forward(
                self.config.layer_activation(l),
                input,
                w,
                b,
                shape,
            )?);
        }
        Ok(outs)
    }

    /// One training step on a batch; returns (mean loss, accuracy).
    pub fn train_step(
        &mut self,
        x: &[f32],
        labels: &[u32],
        train: &TrainConfig,
        total_steps: u64,
    ) -> Result<(f64, f64), Error> {
        let rows = labels.len();
        let outs = self.forward_all(x, rows)?;
        let logits = outs.last().expect("logits");
        let (loss, correct, dlogits) =
            loss_and_grad(self.config.head, logits, labels, self.config.output);
        let mut dy: Vec<f32> = dlogits.iter().map(|&v| v as f32).collect();
        let shapes = self.config.layer_shapes();
        let mut grads = vec![(Vec::new(), Vec::new()); shapes.len()];
        for l in (0..shapes.len()).rev() {
            let (fan_in, fan_out) = shapes[l];
            let (w, b) = &self.params[l];
            let g = linear_backward(
                self.config.layer_activation(l),
                &outs[l],
                w,
                b,
                &dy,
                LinearShape::new(rows, fan_in, fan_out),
            )?;
            dy = g.dx;
            grads[l] = (g.dw, g.db);
        }
        let mut scale = 1.0f64;
        if let Some(max_norm) = train.clip_norm {
            let total: f64 = grads
                .iter()
                .flat_map(|(w, b)| w.iter().chain(b))
                .map(|&g| (g as f64) * (g as f64))
                .sum();
            scale = (max_norm as f64 / (total.sqrt() + 1e-6)).min(1.0);
        }
        let lr = train.schedule.rate(
            train.learning_rate,
            self.step,
            total_steps,
            train.warmup_steps,
        ) as f64;
        let t = (self.step + 1) as i32;
        for (l, (gw, gb)) in grads.iter().enumerate() {
            let (w, b) = &mut self.params[l];
            for (k, (p, g)) in [(w, gw), (b, gb)].into_iter().enumerate() {
                let state = &mut self.state[2 * l + k];
                update(train.optimizer, p, g, state, lr, t, scale);
            }
        }
        self.step += 1;
        Ok((loss, correct as f64 / rows.max(1) as f64))
    }
}

/// One optimizer update of a parameter tensor, PyTorch's formulas.
fn update(
    opt: Optimizer,
    param: &mut [f32],
    grad: &[f32],
    (s1, s2): &mut (Vec<f32>, Vec<f32>),
    lr: f64,
    t: i32,
    scale: f64,
) {
    for i in 0..param.len() {
        let w = param[i] as f64;
        let g0 = grad[i] as f64 * scale;
        let new_w = match opt {
            Optimizer::Sgd {
                momentum,
                nesterov,
                weight_decay,
            } => {
                let mut g = g0 + weight_decay as f64 * w;
                if momentum != 0.0 {
                    let buf = momentum as f64 * s1[i] as f64 + g;
                    s1[i] = buf as f32;
                    g = if nesterov {
                        g + momentum as f64 * buf
                    } else {
                        buf
                    };
                }
                w - lr * g
            }
            Optimizer::Adam {
                beta1,
                beta2,
                eps,
                weight_decay,
            }
            | Optimizer::AdamW {
                beta1,
                beta2,
                eps,
                weight_decay,
            } => {
                let decoupled = matches!(opt, Optimizer::AdamW { .. });
                let (mut w, mut g) = (w, g0);
                if decoupled {
                    w *= 1.0 - lr * weight_decay as f64;
                } else {
                    g += weight_decay as f64 * w;
                }
                let (b1, b2) = (beta1 as f64, beta2 as f64);
                let m = b1 * s1[i] as f64 + (1.0 - b1) * g;
                let v = b2 * s2[i] as f64 + (1.0 - b2) * g * g;
                s1[i] = m as f32;
                s2[i] = v as f32;
                let m_hat = m / (1.0 - b1.powi(t));
                let v_hat = v / (1.0 - b2.powi(t));
                w - lr * m_hat / (v_hat.sqrt() + eps as f64)
            }
            Optimizer::RmsProp {
                alpha,
                eps,
                momentum,
                weight_decay,
            } => {
                let g = g0 + weight_decay as f64 * w;
                let v = alpha as f64 * s2[i] as f64 + (1.0 - alpha as f64) * g * g;
                s2[i] = v as f32;
                let mut step = g / (v.sqrt() + eps as f64);
                if momentum != 0.0 {
                    let buf = momentum as f64 * s1[i] as f64 + step;
                    s1[i] = buf as f32;
                    step = buf;
                }
                w - lr * step
            }
        };
        param[i] = new_w as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The heads' gradients against finite differences of their losses.
    #[test]
    fn loss_gradients_match_finite_differences() {
        let logits = [0.3f32, -1.2, 2.0, 0.7, 0.1, -0.4];
        for (head, classes, labels) in [
            (Head::Softmax, 3, vec![2u32, 0]),
            (Head::Sigmoid, 3, vec![1, 2]),
            (Head::Sigmoid, 1, vec![1, 0, 1, 1, 0, 0]),
            (Head::Mse, 3, vec![0, 1]),
            (Head::Mse, 1, vec![1, 0, 2, 1, 0, 3]),
        ] {
            let (_, _, g) = loss_and_grad(head, &logits, &labels, classes);
            for i in 0..logits.len() {
                let h = 1e-3f32;
                let mut p = logits;
                let mut m = logits;
                p[i] += h;
                m[i] -= h;
                let fd = (loss_and_grad(head, &p, &labels, classes).0
                    - loss_and_grad(head, &m, &labels, classes).0)
                    / (p[i] as f64 - m[i] as f64);
                assert!(
                    (fd - g[i]).abs() < 1e-4,
                    "{head} classes {classes}: d/dlogit[{i}] {} vs {fd}",
                    g[i]
                );
            }
        }
    }
}
