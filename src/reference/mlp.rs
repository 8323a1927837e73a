//! CPU twin of a GPU training step: forward through the fused layers,
//! the head's loss and gradient, backward, clipping and the optimizer, in
//! f64 with the same f32 storage between ops as the GPU.

use super::activation::{derivative_f64, forward_f64};
use super::linear::{linear_backward, linear_forward};
use crate::activation::Activation;
use crate::error::Error;
use crate::nn::{MlpConfig, NormKind, Optimizer};
use crate::train::TrainConfig;
use crate::LinearShape;

pub use crate::nn::loss::loss_and_grad;

/// An MLP with its optimizer state on the CPU.
#[derive(Debug, Clone)]
pub struct ReferenceMlp {
    /// The architecture.
    pub config: MlpConfig,
    /// (weight `[out, in]`, bias `[out]`) per layer.
    pub params: Vec<(Vec<f32>, Vec<f32>)>,
    /// Learned PReLU slopes per layer (empty where none).
    pub slopes: Vec<Vec<f32>>,
    /// LayerNorm or BatchNorm1d (scale, shift) per layer (empty where none).
    pub norms: Vec<(Vec<f32>, Vec<f32>)>,
    /// BatchNorm1d's running (mean, variance) per layer (empty where none).
    pub running: Vec<(Vec<f32>, Vec<f32>)>,
    /// Optimizer state: (first, second) buffers for each parameter tensor,
    /// in the order weight 0, bias 0, weight 1, ..., then the learned slopes.
    state: Vec<(Vec<f32>, Vec<f32>)>,
    /// Steps taken.
    pub step: u64,
}

impl ReferenceMlp {
    /// The same initial parameters as [`crate::Mlp::new`].
    pub fn new(config: MlpConfig) -> Result<Self, Error> {
        config.validate()?;
        let params = config.initial_parameters();
        let slopes = config.initial_slopes();
        let mut state: Vec<(Vec<f32>, Vec<f32>)> = params
            .iter()
            .flat_map(|(w, b)| {
                [
                    (vec![0.0; w.len()], vec![0.0; w.len()]),
                    (vec![0.0; b.len()], vec![0.0; b.len()]),
                ]
            })
            .collect();
        state.extend(
            slopes
                .iter()
                .filter(|a| !a.is_empty())
                .map(|a| (vec![0.0; a.len()], vec![0.0; a.len()])),
        );
        // Scale 1 and shift 0; running mean 0 and variance 1 (as PyTorch).
        let constant_pairs = |has: &dyn Fn(usize) -> bool, (a, b): (f32, f32)| {
            config
                .layer_shapes()
                .iter()
                .enumerate()
                .map(|(l, &(_, o))| {
                    if has(l) {
                        (vec![a; o], vec![b; o])
                    } else {
                        (Vec::new(), Vec::new())
                    }
                })
                .collect::<Vec<(Vec<f32>, Vec<f32>)>>()
        };
        let norms = constant_pairs(&|l| config.has_norm(l), (1.0, 0.0));
        for (g, _) in norms.iter().filter(|(g, _)| !g.is_empty()) {
            state.push((vec![0.0; g.len()], vec![0.0; g.len()]));
            state.push((vec![0.0; g.len()], vec![0.0; g.len()]));
        }
        let running = constant_pairs(&|l| config.has_batch_norm(l), (0.0, 1.0));
        Ok(ReferenceMlp {
            config,
            params,
            slopes,
            norms,
            running,
            state,
            step: 0,
        })
    }

    /// The logits of `x` `[rows, input]` (evaluation mode: no dropout).
    pub fn forward(&self, x: &[f32], rows: usize) -> Result<Vec<f32>, Error> {
        let (outs, _) = self.forward_all(x, rows)?;
        Ok(outs.last().cloned().unwrap_or_default())
    }

    /// Evaluation-mode forward: the input and every layer's output as the
    /// next layer sees it, and every layer's activation output y.
    #[allow(clippy::type_complexity)]
    pub fn forward_all(
        &self,
        x: &[f32],
        rows: usize,
    ) -> Result<(Vec<Vec<f32>>, Vec<Vec<f32>>), Error> {
        let f = self.forward_impl(x, rows, None)?;
        Ok((f.outs, f.ys))
    }

    /// How layer `l` normalises: batch statistics in training, the running
    /// estimates in evaluation (BatchNorm1d); per row (LayerNorm).
    fn normalise(&self, l: usize, a: &[f32], training: bool) -> Normalised {
        let (g, b) = &self.norms[l];
        let cols = g.len();
        match self.config.norm() {
            Some((NormKind::Batch, _)) => {
                let (m, v) = &self.running[l];
                batch_norm(a, g, b, cols, (!training).then_some((m, v)))
            }
            _ => {
                let (n, xhat, rstd) = layer_norm(a, g, b, cols);
                Normalised {
                    n,
                    xhat,
                    rstd,
                    batch: None,
                }
            }
        }
    }

    /// `dropout_step`: training mode (dropout masks of that step, batch
    /// statistics); `None`: evaluation.
    fn forward_impl(
        &self,
        x: &[f32],
        rows: usize,
        dropout_step: Option<u64>,
    ) -> Result<Forward, Error> {
        let c = &self.config;
        let training = dropout_step.is_some();
        let mut outs = vec![x.to_vec()];
        let mut ys = Vec::new();
        let mut batch_stats = vec![None; c.layer_shapes().len()];
        for (l, ((w, b), &(fan_in, fan_out))) in
            self.params.iter().zip(&c.layer_shapes()).enumerate()
        {
            let shape = LinearShape::new(rows, fan_in, fan_out);
            let input = outs.last().expect("input");
            let before = c.norm_before();
            let y = if c.has_norm(l) {
                let act = c.layer_activation(l);
                if before {
                    let z = linear_forward(Activation::Identity, input, w, b, shape)?;
                    let norm = self.normalise(l, &z, training);
                    batch_stats[l] = norm.batch;
                    norm.n
                        .iter()
                        .map(|&v| forward_f64(act, v as f64) as f32)
                        .collect()
                } else {
                    let y = linear_forward(act, input, w, b, shape)?;
                    let norm = self.normalise(l, &y, training);
                    batch_stats[l] = norm.batch;
                    norm.n
                }
            } else if self.slopes[l].is_empty() {
                linear_forward(c.layer_activation(l), input, w, b, shape)?
            } else {
                let z = linear_forward(Activation::Identity, input, w, b, shape)?;
                prelu(&z, &self.slopes[l], fan_out)
            };
            let drop = dropout_step.filter(|_| c.has_dropout(l));
            let out = if drop.is_some() || c.is_residual(l) {
                let (scale, alpha_prime, a, bb) = c.dropout_constants();
                y.iter()
                    .enumerate()
                    .map(|(i, &v)| {
                        let mut v = v as f64;
                        if let Some(step) = drop {
                            let keep = dropout_keep(
                                c.mask_seed(l),
                                step as u32,
                                i as u32,
                                c.drop_threshold().max(1),
                            );
                            v = if c.alpha_dropout {
                                a * if keep { v } else { alpha_prime } + bb
                            } else if keep {
                                v * scale
                            } else {
                                0.0
                            };
                        }
                        if c.is_residual(l) {
                            v += input[i] as f64;
                        }
                        v as f32
                    })
                    .collect()
            } else {
                y.clone()
            };
            ys.push(y);
            outs.push(out);
        }
        Ok(Forward {
            outs,
            ys,
            batch_stats,
        })
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
        let c = self.config.clone();
        let Forward {
            outs, batch_stats, ..
        } = self.forward_impl(x, rows, Some(self.step))?;
        // BatchNorm1d's running estimates move in the forward pass (f32, as the GPU).
        let m = crate::gpu::norm::BATCH_NORM_MOMENTUM;
        for ((rm, rv), stats) in self.running.iter_mut().zip(&batch_stats) {
            if let Some((mean, var)) = stats {
                let unbiased = rows as f32 / (rows.max(2) - 1) as f32;
                for (j, (a, v)) in rm.iter_mut().zip(rv.iter_mut()).enumerate() {
                    *a = (1.0 - m) * *a + m * mean[j];
                    *v = (1.0 - m) * *v + m * (var[j] * unbiased);
                }
            }
        }
        let logits = outs.last().expect("logits");
        let (loss, correct, dlogits) = loss_and_grad(c.head, logits, labels, c.output);
        // d_out: the gradient of each layer's output as the next layer sees it.
        let mut d_out: Vec<f32> = dlogits.iter().map(|&v| v as f32).collect();
        let shapes = c.layer_shapes();
        let mut grads = vec![(Vec::new(), Vec::new()); shapes.len()];
        let mut slope_grads: Vec<Vec<f32>> = vec![Vec::new(); shapes.len()];
        let mut norm_grads: Vec<(Vec<f32>, Vec<f32>)> =
            vec![(Vec::new(), Vec::new()); shapes.len()];
        for l in (0..shapes.len()).rev() {
            let (fan_in, fan_out) = shapes[l];
            let (w, b) = &self.params[l];
            let mut dy: Vec<f32> = if c.has_dropout(l) {
                let (scale, _, a, _) = c.dropout_constants();
                let factor = if c.alpha_dropout { a } else { scale };
                d_out
                    .iter()
                    .enumerate()
                    .map(|(i, &g)| {
                        let keep = dropout_keep(
                            c.mask_seed(l),
                            self.step as u32,
                            i as u32,
                            c.drop_threshold().max(1),
                        );
                        if keep {
                            (g as f64 * factor) as f32
                        } else {
                            0.0
                        }
                    })
                    .collect()
            } else {
                d_out.clone()
            };
            let mut act = c.layer_activation(l);
            if c.has_norm(l) {
                // Recompute the layer's normalisation input and statistics.
                let shape = LinearShape::new(rows, fan_in, fan_out);
                let before = c.norm_before();
                let (g, _) = &self.norms[l];
                let a = if before {
                    linear_forward(Activation::Identity, &outs[l], w, b, shape)?
                } else {
                    linear_forward(act, &outs[l], w, b, shape)?
                };
                let Normalised { n, xhat, rstd, .. } = self.normalise(l, &a, true);
                let mut dg = vec![0.0f64; fan_out];
                let mut dbeta = vec![0.0f64; fan_out];
                let mut d_in = vec![0.0f32; dy.len()];
                let dn: Vec<f64> = dy
                    .iter()
                    .zip(&n)
                    .map(|(&d, &nv)| {
                        if before {
                            d as f64 * derivative_f64(act, nv as f64)
                        } else {
                            d as f64
                        }
                    })
                    .collect();
                if c.has_batch_norm(l) {
                    // Per feature: dx = γ/σ·(dn − mean(dn) − x̂·mean(dn·x̂)).
                    for j in 0..fan_out {
                        let col = (0..rows).map(|r| r * fan_out + j);
                        let sb: f64 = col.clone().map(|i| dn[i]).sum();
                        let sg: f64 = col.clone().map(|i| dn[i] * xhat[i]).sum();
                        dg[j] = sg;
                        dbeta[j] = sb;
                        let k = g[j] as f64 * rstd[j];
                        for i in col {
                            d_in[i] = (k * (dn[i] - sb / rows as f64 - xhat[i] * sg / rows as f64))
                                as f32;
                        }
                    }
                } else {
                    for (r, &s) in rstd.iter().enumerate().take(rows) {
                        let row = r * fan_out..(r + 1) * fan_out;
                        let k = fan_out as f64;
                        let (mut mg, mut mgx) = (0.0, 0.0);
                        for (j, i) in row.clone().enumerate() {
                            let gv = dn[i] * g[j] as f64;
                            mg += gv;
                            mgx += gv * xhat[i];
                            dg[j] += dn[i] * xhat[i];
                            dbeta[j] += dn[i];
                        }
                        mg /= k;
                        mgx /= k;
                        for (j, i) in row.enumerate() {
                            let gv = dn[i] * g[j] as f64;
                            d_in[i] = (s * (gv - mg - xhat[i] * mgx)) as f32;
                        }
                    }
                }
                norm_grads[l] = (
                    dg.into_iter().map(|v| v as f32).collect(),
                    dbeta.into_iter().map(|v| v as f32).collect(),
                );
                dy = d_in;
                if before {
                    act = Activation::Identity;
                }
            }
            if !self.slopes[l].is_empty() {
                // Learned PReLU: dz = dy (z > 0) or a·dy; da = Σ dy·z where z <= 0.
                let a = &self.slopes[l];
                let z = linear_forward(
                    Activation::Identity,
                    &outs[l],
                    w,
                    b,
                    LinearShape::new(rows, fan_in, fan_out),
                )?;
                let mut da = vec![0.0f64; a.len()];
                for (i, (g, &zv)) in dy.iter_mut().zip(&z).enumerate() {
                    let k = if a.len() > 1 { i % fan_out } else { 0 };
                    if zv <= 0.0 {
                        da[k] += *g as f64 * zv as f64;
                        *g = (*g as f64 * a[k] as f64) as f32;
                    }
                }
                slope_grads[l] = da.into_iter().map(|v| v as f32).collect();
                act = Activation::Identity;
            }
            let g = linear_backward(
                act,
                &outs[l],
                w,
                b,
                &dy,
                LinearShape::new(rows, fan_in, fan_out),
            )?;
            let mut dx = g.dx;
            if c.is_residual(l) {
                for (a, &d) in dx.iter_mut().zip(&d_out) {
                    *a = (*a as f64 + d as f64) as f32;
                }
            }
            d_out = dx;
            grads[l] = (g.dw, g.db);
        }
        let mut scale = 1.0f64;
        if let Some(max_norm) = train.clip_norm {
            let total: f64 = grads
                .iter()
                .flat_map(|(w, b)| w.iter().chain(b))
                .chain(slope_grads.iter().flatten())
                .chain(norm_grads.iter().flat_map(|(g, b)| g.iter().chain(b)))
                .map(|&g| (g as f64) * (g as f64))
                .sum();
            scale = (max_norm as f64 / (total.sqrt() + 1e-6)).min(1.0);
        }
        let lr = train
            .schedule
            .rate(train.lr(), self.step, total_steps, train.warmup_steps) as f64;
        let t = (self.step + 1) as i32;
        for (l, (gw, gb)) in grads.iter().enumerate() {
            let (w, b) = &mut self.params[l];
            for (k, (p, g)) in [(w, gw), (b, gb)].into_iter().enumerate() {
                let state = &mut self.state[2 * l + k];
                update(train.optimizer, p, g, state, lr, t, scale);
            }
        }
        let mut k = 2 * shapes.len();
        for (a, g) in self.slopes.iter_mut().zip(&slope_grads) {
            if !a.is_empty() {
                update(train.optimizer, a, g, &mut self.state[k], lr, t, scale);
                k += 1;
            }
        }
        for ((g, b), (dg, db)) in self.norms.iter_mut().zip(&norm_grads) {
            if !g.is_empty() {
                update(train.optimizer, g, dg, &mut self.state[k], lr, t, scale);
                update(train.optimizer, b, db, &mut self.state[k + 1], lr, t, scale);
                k += 2;
            }
        }
        self.step += 1;
        Ok((loss, correct as f64 / rows.max(1) as f64))
    }
}

/// One training or evaluation forward's results.
struct Forward {
    /// The input and every layer's output as the next layer sees it.
    outs: Vec<Vec<f32>>,
    /// Every layer's activation output (after its normalisation).
    ys: Vec<Vec<f32>>,
    /// BatchNorm1d's batch (mean, biased variance) per layer, in training.
    batch_stats: Vec<Option<(Vec<f32>, Vec<f32>)>>,
}

/// A normalisation's output and what its backward needs.
struct Normalised {
    /// γ·x̂ + β, rounded to f32.
    n: Vec<f32>,
    /// The normalised input.
    xhat: Vec<f64>,
    /// 1/σ per row (LayerNorm) or per feature (BatchNorm1d).
    rstd: Vec<f64>,
    /// BatchNorm1d in training: the batch (mean, biased variance) per feature.
    batch: Option<(Vec<f32>, Vec<f32>)>,
}

/// BatchNorm1d of `a` (`cols` features) with scale `g` and shift `b` (eps
/// 1e-5), in f64: batch statistics, or the given running (mean, variance).
fn batch_norm(
    a: &[f32],
    g: &[f32],
    b: &[f32],
    cols: usize,
    running: Option<(&Vec<f32>, &Vec<f32>)>,
) -> Normalised {
    let rows = a.len() / cols.max(1);
    let eps = crate::gpu::norm::BATCH_NORM_EPS as f64;
    let mut n = vec![0.0f32; a.len()];
    let mut xhat = vec![0.0f64; a.len()];
    let mut rstd = vec![0.0f64; cols];
    let mut stats = (vec![0.0f32; cols], vec![0.0f32; cols]);
    for j in 0..cols {
        let col = (0..rows).map(|r| a[r * cols + j] as f64);
        let (mean, var) = match running {
            Some((m, v)) => (m[j] as f64, v[j] as f64),
            None => {
                let mean = col.clone().sum::<f64>() / rows as f64;
                let var = col.map(|v| (v - mean).powi(2)).sum::<f64>() / rows as f64;
                stats.0[j] = mean as f32;
                stats.1[j] = var as f32;
                (mean, var)
            }
        };
        let s = 1.0 / (var + eps).sqrt();
        rstd[j] = s;
        for r in 0..rows {
            let i = r * cols + j;
            let xh = (a[i] as f64 - mean) * s;
            xhat[i] = xh;
            n[i] = (g[j] as f64 * xh + b[j] as f64) as f32;
        }
    }
    Normalised {
        n,
        xhat,
        rstd,
        batch: running.is_none().then_some(stats),
    }
}

/// LayerNorm of each row of `a` (`cols` wide) with scale `g` and shift `b`
/// (eps 1e-5), in f64: (n rounded to f32, x̂, 1/σ per row).
fn layer_norm(a: &[f32], g: &[f32], b: &[f32], cols: usize) -> (Vec<f32>, Vec<f64>, Vec<f64>) {
    let mut n = vec![0.0f32; a.len()];
    let mut xhat = vec![0.0f64; a.len()];
    let mut rstd = Vec::with_capacity(a.len() / cols.max(1));
    for (r, row) in a.chunks(cols).enumerate() {
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / cols as f64;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / cols as f64;
        let s = 1.0 / (var + crate::gpu::norm::LAYER_NORM_EPS as f64).sqrt();
        rstd.push(s);
        for (j, &v) in row.iter().enumerate() {
            let xh = (v as f64 - mean) * s;
            xhat[r * cols + j] = xh;
            n[r * cols + j] = (g[j] as f64 * xh + b[j] as f64) as f32;
        }
    }
    (n, xhat, rstd)
}

/// PReLU with slopes `a` (one, or one per unit of `cols`), in f32 as the GPU.
fn prelu(z: &[f32], a: &[f32], cols: usize) -> Vec<f32> {
    z.iter()
        .enumerate()
        .map(|(i, &v)| {
            let k = if a.len() > 1 { i % cols } else { 0 };
            if v > 0.0 {
                v
            } else {
                a[k] * v
            }
        })
        .collect()
}

/// Whether dropout keeps element `i` at `step` in a layer with mask seed
/// `seed`: the bits shaders/regularize.wgsl computes.
pub fn dropout_keep(seed: u32, step: u32, i: u32, threshold: u32) -> bool {
    let mut h = seed ^ i.wrapping_mul(0x9e37_79b9) ^ step.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    (h >> 8) >= threshold
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
