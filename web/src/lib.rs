//! The fusedmlp playground's WebAssembly half: the crate itself, compiled
//! for `wasm32-unknown-unknown`, training on the browser's WebGPU device
//! with the same WGSL kernels as natively, and the CPU reference compiled
//! into the same module for the self-test and the step check.
//!
//! Every call that waits for the GPU is `async` (a JavaScript `Promise`);
//! nothing here blocks the page. Results cross to JavaScript as JSON text
//! (or `Float32Array`s for the bulk values).

use fusedmlp::data::{self, Dataset, Standardizer};
use fusedmlp::nn::NormPlacement;
use fusedmlp::reference::mlp::ReferenceMlp;
use fusedmlp::selftest::{self, Agreement};
use fusedmlp::train::{shuffle_order, StepLog, TrainConfig};
use fusedmlp::{Activation, Gpu, Init, LinearShape, Mlp, MlpConfig, Optimizer, Trainer};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

mod settings;

/// Turns any error into the message JavaScript shows.
fn js_err(e: impl std::fmt::Display) -> JsValue {
    JsValue::from_str(&e.to_string())
}

fn to_json(value: &impl Serialize) -> Result<String, JsValue> {
    serde_json::to_string(value).map_err(js_err)
}

/// Panics go to the browser console with their message, not as
/// "unreachable executed".
#[wasm_bindgen(start)]
pub fn start() {
    std::panic::set_hook(Box::new(|info| {
        web_sys::console::error_1(&JsValue::from_str(&format!("fusedmlp panicked: {info}")));
    }));
}

/// The adapter the page trains on, as JSON: `{name, backend, description,
/// max_workgroup_storage, max_storage_buffers}`. Fails with a message
/// when the browser has no WebGPU or no adapter.
#[wasm_bindgen(js_name = gpuInfo)]
pub async fn gpu_info() -> Result<String, JsValue> {
    let gpu = Gpu::new_async().await.map_err(js_err)?;
    let info = gpu.adapter_info();
    let limits = gpu.limits();
    to_json(&serde_json::json!({
        "name": info.name,
        "backend": format!("{:?}", info.backend),
        "description": gpu.describe(),
        "max_workgroup_storage": limits.max_compute_workgroup_storage_size,
        "max_storage_buffers": limits.max_storage_buffers_per_shader_stage,
        "subgroup_min_size": info.subgroup_min_size,
        "fused_kernel": format!("{:?}", gpu.fused_kernel()),
    }))
}

/// Reads the page's settings from their text (JSON of field → text, as
/// the URL or the form holds them; a missing field keeps its default) and
/// checks each against its range: returns JSON `{config, problems}`, the
/// settings to use (every bad value replaced) and one sentence per field
/// that was replaced, naming the field, its range and the value used.
#[wasm_bindgen(js_name = readSettings)]
pub fn read_settings(texts_json: String) -> Result<String, JsValue> {
    let texts: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&texts_json).map_err(js_err)?;
    let checked = settings::check_texts(&texts, &PlayConfig::default());
    to_json(&serde_json::json!({
        "config": checked.config,
        "problems": checked.problems,
    }))
}

/// Destroys the shared WebGPU device, as a driver reset or a lost GPU
/// would: the page's test uses it to check that a lost device gives a
/// message and a working restart (the next run gets a new device).
#[wasm_bindgen(js_name = loseDevice)]
pub async fn lose_device() -> Result<(), JsValue> {
    let gpu = Gpu::new_async().await.map_err(js_err)?;
    gpu.device().destroy();
    Ok(())
}

/// One activation's self-test: the elementwise kernels and the fused
/// linear layer, forward and backward, against the CPU reference.
#[derive(Serialize)]
struct SelfTestEntry {
    activation: String,
    /// Worst error of the elementwise forward, as a fraction of the tolerance.
    forward: f64,
    /// Same for the elementwise backward.
    backward: f64,
    /// Same for the fused linear layer's forward (`act(X·Wᵀ + b)`).
    linear_forward: f64,
    /// Same for its backward (the worst of dX, dW and db).
    linear_backward: f64,
    /// NaN and ±infinity give the reference's values.
    special_values: bool,
    passes: bool,
}

/// The relative and absolute tolerances the native linear-layer tests hold
/// the GPU to.
const LINEAR_REL_TOL: f64 = 1e-4;
const LINEAR_ABS_TOL: f64 = 1e-5;

/// Worst |gpu − ref| / (ABS + REL·|ref|) over a pair of slices (a
/// non-finite mismatch counts as infinitely bad).
fn linear_ratio(gpu: &[f32], reference: &[f32]) -> f64 {
    if gpu.len() != reference.len() {
        return f64::INFINITY;
    }
    gpu.iter()
        .zip(reference)
        .map(|(&g, &r)| {
            if !g.is_finite() || !r.is_finite() {
                if (g.is_nan() && r.is_nan()) || g == r {
                    0.0
                } else {
                    f64::INFINITY
                }
            } else {
                (g as f64 - r as f64).abs() / (LINEAR_ABS_TOL + LINEAR_REL_TOL * (r as f64).abs())
            }
        })
        .fold(0.0, f64::max)
}

/// JSON has no infinity or NaN: a non-finite error ratio (a non-finite
/// mismatch) is reported as 1e30, which the page shows as "mismatch".
fn json_number(ratio: f64) -> f64 {
    if ratio.is_finite() {
        ratio
    } else {
        1e30
    }
}

/// Deterministic values in `[-scale, scale]` (a small LCG, so the page and
/// a native run draw the same numbers).
fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

/// Runs every activation's GPU forward and backward against the CPU
/// reference compiled into this module; returns JSON rows
/// ([`SelfTestEntry`]), the worst error of each as a fraction of the
/// native tests' tolerance (at most 1 passes).
#[wasm_bindgen(js_name = selfTest)]
pub async fn self_test() -> Result<String, JsValue> {
    let gpu = Gpu::new_async().await.map_err(js_err)?;
    let rows = selftest::run_async(&gpu, 4096).await.map_err(js_err)?;
    // A ragged shape: no dimension a multiple of a tile or of 4.
    let shape = LinearShape::new(7, 13, 5);
    let x = values(7 * 13, 1, 1.5);
    let w = values(5 * 13, 2, 0.6);
    let b = values(5, 3, 0.3);
    let dy = values(7 * 5, 4, 1.0);
    let mut out = Vec::new();
    for (row, act) in rows.into_iter().zip(Activation::ALL) {
        let yf = gpu
            .linear_forward_async(act, &x, &w, &b, shape)
            .await
            .map_err(js_err)?;
        let rf = fusedmlp::reference::linear_forward(act, &x, &w, &b, shape).map_err(js_err)?;
        let gb = gpu
            .linear_backward_async(act, &x, &w, &b, &dy, shape)
            .await
            .map_err(js_err)?;
        let rb =
            fusedmlp::reference::linear_backward(act, &x, &w, &b, &dy, shape).map_err(js_err)?;
        let linear_forward = linear_ratio(&yf, &rf);
        let linear_backward = linear_ratio(&gb.dx, &rb.dx)
            .max(linear_ratio(&gb.dw, &rb.dw))
            .max(linear_ratio(&gb.db, &rb.db));
        let ratio = |a: &Agreement| {
            if a.non_finite_mismatches > 0 {
                f64::INFINITY
            } else {
                a.worst_tolerance_ratio
            }
        };
        let entry = SelfTestEntry {
            passes: row.passes() && linear_forward <= 1.0 && linear_backward <= 1.0,
            activation: row.activation,
            forward: json_number(ratio(&row.forward)),
            backward: json_number(ratio(&row.backward)),
            linear_forward: json_number(linear_forward),
            linear_backward: json_number(linear_backward),
            special_values: row.special_values_ok,
        };
        out.push(entry);
    }
    to_json(&out)
}

/// A playground run's settings, as the page's URL holds them.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct PlayConfig {
    /// spirals, moons, blobs, checkerboard or digits.
    pub dataset: String,
    /// Hidden layers.
    pub depth: usize,
    /// Units per hidden layer.
    pub width: usize,
    /// The hidden activation (any of the 20).
    pub activation: String,
    /// The initialiser, or "default" for the activation's own.
    pub init: String,
    /// sgd, adam, adamw or rmsprop.
    pub optimizer: String,
    /// Learning rate.
    pub lr: f32,
    /// Examples per step.
    pub batch: usize,
    /// none, layer or batch.
    pub norm: String,
    /// Residual connections.
    pub residual: bool,
    /// Dropout probability (0: none).
    pub dropout: f32,
    /// Clip gradients to this global norm (0: no clipping).
    pub clip: f32,
    /// Seed of the data, the weights and the shuffling.
    pub seed: u64,
    /// Points in a 2-D data set.
    pub points: usize,
    /// Diagnostics every this many steps.
    pub log_every: u64,
    /// The label column of a CSV file (0-based; `None`: the last).
    pub label_column: Option<usize>,
}

impl Default for PlayConfig {
    fn default() -> Self {
        PlayConfig {
            dataset: "spirals".into(),
            depth: 20,
            width: 32,
            activation: "relu".into(),
            init: "default".into(),
            optimizer: "adam".into(),
            lr: 0.003,
            batch: 32,
            norm: "none".into(),
            residual: false,
            dropout: 0.0,
            clip: 0.0,
            seed: 0,
            points: 1000,
            log_every: 10,
            label_column: None,
        }
    }
}

impl PlayConfig {
    /// The settings in `json`, every field checked against its range.
    fn from_json(json: &str) -> Result<PlayConfig, JsValue> {
        let config: PlayConfig = serde_json::from_str(json).map_err(js_err)?;
        settings::check_config(&config).map_err(js_err)?;
        Ok(config)
    }

    /// The data set split 80/20 and standardised, with the standardizer.
    /// A built-in set is standardised with statistics of all of it (the
    /// decision surface is drawn in the same coordinates); a CSV file as
    /// the native loader does it (`fusedmlp train --standardize`):
    /// fitted on the training split, applied to both.
    fn data(&self, csv: Option<&str>) -> Result<(Dataset, Dataset, Standardizer), fusedmlp::Error> {
        let n = self.points.clamp(20, 20_000);
        let mut all = match self.dataset.as_str() {
            "spirals" => data::two_spirals(n, 0.15, self.seed)?,
            "moons" => data::moons(n, 0.1, self.seed)?,
            "blobs" => data::blobs(n, 3, 2, 1.2, self.seed)?,
            "checkerboard" => data::checkerboard(n, 4, self.seed)?,
            "digits" => data::digits()?,
            "csv" => {
                let text = csv.ok_or_else(|| {
                    fusedmlp::Error::Config(
                        "the csv data set needs a file: choose one under 'Your data' (or drop it on the page)"
                            .into(),
                    )
                })?;
                let options = data::CsvOptions {
                    label_column: match self.label_column {
                        Some(i) => data::LabelColumn::Index(i),
                        None => data::LabelColumn::Last,
                    },
                    header: data::Header::Auto,
                };
                let (mut train, mut val) =
                    data::parse_csv("your CSV file", text, options)?.split(0.2, self.seed)?;
                let standardizer = Standardizer::fit(&train);
                standardizer.apply(&mut train)?;
                standardizer.apply(&mut val)?;
                return Ok((train, val, standardizer));
            }
            other => {
                return Err(fusedmlp::Error::Config(format!(
                    "unknown data set '{other}'; valid: {}",
                    settings::DATASETS.join(", ")
                )))
            }
        };
        let standardizer = Standardizer::fit(&all);
        standardizer.apply(&mut all)?;
        let (train, val) = all.split(0.2, self.seed)?;
        Ok((train, val, standardizer))
    }

    fn configs(
        &self,
        features: usize,
        classes: usize,
    ) -> Result<(MlpConfig, TrainConfig), fusedmlp::Error> {
        let activation: Activation = self.activation.parse()?;
        let mut model = MlpConfig::deep(features, self.depth, self.width, classes, activation);
        model.seed = self.seed;
        model.init = match self.init.as_str() {
            "" | "default" => None,
            name => Some(name.parse::<Init>()?),
        };
        match self.norm.as_str() {
            "none" | "" => {}
            "layer" => model.layer_norm = Some(NormPlacement::Before),
            "batch" => model.batch_norm = Some(NormPlacement::Before),
            other => {
                return Err(fusedmlp::Error::Config(format!(
                    "unknown normalisation '{other}'; valid: none, layer, batch"
                )))
            }
        }
        model.residual = self.residual;
        model.scale_residual_init = self.residual;
        model.dropout = self.dropout;
        let train = TrainConfig::default()
            // The page stops the trainer where it wants; epochs never run out.
            .with_epochs(1_000_000)
            .with_batch_size(self.batch)
            .with_learning_rate(self.lr)
            .with_optimizer(self.optimizer.parse::<Optimizer>()?)
            .with_clip_norm((self.clip > 0.0).then_some(self.clip))
            .with_log_every(self.log_every.max(1))
            .with_max_logged_steps(100_000)
            .with_seed(self.seed);
        Ok((model, train))
    }
}

/// What one call of [`Session::train`] reports.
#[derive(Serialize)]
struct Progress {
    /// Steps taken so far.
    step: u64,
    /// Epochs finished in this call: (epoch, train loss, train accuracy,
    /// validation loss, validation accuracy).
    epochs: Vec<(usize, f32, f32, f32, f32)>,
    /// Steps logged in this call, with per-layer diagnostics.
    logs: Vec<StepLog>,
    /// Where the run diverged (layer and step named), if it did.
    divergence: Option<String>,
    /// Wall seconds of this call.
    seconds: f64,
}

/// One training run in the page: the data, the model and its trainer on
/// the GPU.
#[wasm_bindgen]
pub struct Session {
    trainer: Trainer,
    train: Dataset,
    classes: usize,
    features: usize,
    diverged: bool,
}

#[wasm_bindgen]
impl Session {
    /// Builds a run from the page's settings (JSON of [`PlayConfig`]);
    /// `csv` is the text of the file chosen in the page, for the `csv`
    /// data set.
    pub async fn create(config_json: String, csv: Option<String>) -> Result<Session, JsValue> {
        let config = PlayConfig::from_json(&config_json)?;
        let gpu = Gpu::new_async().await.map_err(js_err)?;
        let (train, val, standardizer) = config.data(csv.as_deref()).map_err(js_err)?;
        let classes = train.n_classes().max(2);
        let features = train.n_features();
        let (model_config, train_config) = config.configs(features, classes).map_err(js_err)?;
        let model = Mlp::new(&gpu, model_config).map_err(js_err)?;
        let mut trainer = Trainer::new(model, train_config, &train, &val).map_err(js_err)?;
        // The model predicts rows as they come, and its download carries
        // the scaling with the weights.
        trainer
            .set_standardizer(Some(standardizer))
            .map_err(js_err)?;
        Ok(Session {
            trainer,
            train,
            classes,
            features,
            diverged: false,
        })
    }

    /// Trains `steps` more steps (crossing epochs as needed: every epoch's
    /// end evaluates on the validation split); returns JSON progress.
    pub async fn train(&mut self, steps: u32) -> Result<String, JsValue> {
        if self.diverged {
            return Err(js_err("this run diverged; press Reset to start again"));
        }
        let start = web_time_now();
        let target = self.trainer.steps_taken() + steps as u64;
        self.trainer.stop_after(target);
        let report = self
            .trainer
            .train_async("playground", |_, _| {}, |_| {})
            .await
            .map_err(js_err)?;
        self.diverged = report.divergence.is_some();
        let progress = Progress {
            step: self.trainer.steps_taken(),
            epochs: report
                .epochs
                .iter()
                .map(|e| {
                    (
                        e.epoch,
                        e.train_loss,
                        e.train_accuracy,
                        e.val_loss,
                        e.val_accuracy,
                    )
                })
                .collect(),
            logs: report.steps,
            divergence: report.divergence.as_ref().map(|d| d.to_string()),
            seconds: web_time_now() - start,
        };
        to_json(&progress)
    }

    /// Whether the GPU device this run trains on has been lost (a new run
    /// gets a new device).
    #[wasm_bindgen(js_name = deviceLost)]
    pub fn device_lost(&self) -> bool {
        self.trainer.model().gpu().is_lost()
    }

    /// The trained model as the crate's safetensors checkpoint (weights,
    /// norms, the standardizer): what `fusedmlp predict` and
    /// `fusedmlp::Mlp::load` read.
    #[wasm_bindgen(js_name = modelBytes)]
    pub async fn model_bytes(&self) -> Result<Vec<u8>, JsValue> {
        self.trainer.model().to_bytes_async().await.map_err(js_err)
    }

    /// Class probabilities for raw rows (as the data file holds them, of
    /// [`Session::features`] values each), `[rows, classes]`.
    #[wasm_bindgen(js_name = predictProba)]
    pub async fn predict_proba(&self, rows: Vec<f32>) -> Result<Vec<f32>, JsValue> {
        let n = rows.len() / self.features.max(1);
        self.trainer
            .model()
            .predict_proba_async(&rows, n)
            .await
            .map_err(js_err)
    }

    /// Optimizer steps per epoch (full batches of the training split).
    #[wasm_bindgen(js_name = stepsPerEpoch)]
    pub fn steps_per_epoch(&self) -> usize {
        self.trainer.steps_per_epoch()
    }

    /// Features per row of the data.
    pub fn features(&self) -> usize {
        self.features
    }

    /// Steps taken so far (a JavaScript number, not a BigInt).
    pub fn steps(&self) -> f64 {
        self.trainer.steps_taken() as f64
    }

    /// Whether the data has two features (a decision surface to draw).
    #[wasm_bindgen(js_name = isPlanar)]
    pub fn is_planar(&self) -> bool {
        self.features() == 2
    }

    /// Classes of the data set.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// The training points as `x, y, label` triples (2-D data only).
    pub fn points(&self) -> Vec<f32> {
        if self.features() != 2 {
            return Vec::new();
        }
        (0..self.train.len())
            .flat_map(|i| {
                let r = self.train.row(i);
                [r[0], r[1], self.train.labels()[i] as f32]
            })
            .collect()
    }

    /// The model evaluated on the GPU over a `res` × `res` grid spanning
    /// `[-extent, extent]²` (row 0 at the top): `class, probability` pairs.
    pub async fn surface(&self, res: u32, extent: f32) -> Result<Vec<f32>, JsValue> {
        if self.features() != 2 {
            return Err(js_err("the decision surface needs 2-D data"));
        }
        let res = res.clamp(2, 256) as usize;
        let mut grid = Vec::with_capacity(res * res * 2);
        for row in 0..res {
            let y = extent - 2.0 * extent * row as f32 / (res - 1) as f32;
            for col in 0..res {
                grid.push(-extent + 2.0 * extent * col as f32 / (res - 1) as f32);
                grid.push(y);
            }
        }
        // The grid is in standardised coordinates (as the points are);
        // the model standardises what it is given, so give it raw ones.
        if let Some(s) = self.trainer.model().standardizer() {
            for cell in grid.chunks_mut(2) {
                for ((v, m), sd) in cell.iter_mut().zip(s.mean()).zip(s.std()) {
                    *v = *v * sd + m;
                }
            }
        }
        let logits = self
            .trainer
            .model()
            .predict_logits_async(&grid, res * res)
            .await
            .map_err(js_err)?;
        let k = self.trainer.model().config().output;
        let mut out = Vec::with_capacity(res * res * 2);
        for cell in logits.chunks(k) {
            if k == 1 {
                let p = 1.0 / (1.0 + (-cell[0]).exp());
                out.extend([if p >= 0.5 { 1.0 } else { 0.0 }, p.max(1.0 - p)]);
                continue;
            }
            let max = cell.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let sum: f32 = cell.iter().map(|&v| (v - max).exp()).sum();
            let (best, &top) = cell
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .unwrap_or((0, &0.0));
            out.extend([best as f32, (top - max).exp() / sum]);
        }
        Ok(out)
    }
}

/// Seconds on a monotonic clock (`performance.now()` in the browser).
fn web_time_now() -> f64 {
    thread_local! {
        static ORIGIN: web_time::Instant = web_time::Instant::now();
    }
    ORIGIN.with(|o| o.elapsed().as_secs_f64())
}

/// One GPU training step of a fresh run with these settings against the
/// CPU reference's step on the same batch (both from the same seed): JSON
/// `{worst, tensors, passes}`, the worst error over every weight and bias
/// as a fraction of the native step-equality tolerance (|gpu − ref| ≤
/// 1e-4·|ref| + 1e-6).
#[wasm_bindgen(js_name = checkStep)]
pub async fn check_step(config_json: String) -> Result<String, JsValue> {
    let config = PlayConfig::from_json(&config_json)?;
    let gpu = Gpu::new_async().await.map_err(js_err)?;
    let (train, val, _) = config.data(None).map_err(js_err)?;
    let classes = train.n_classes().max(2);
    let (model_config, train_config) = config
        .configs(train.n_features(), classes)
        .map_err(js_err)?;
    let model = Mlp::new(&gpu, model_config.clone()).map_err(js_err)?;
    let mut trainer = Trainer::new(model, train_config.clone(), &train, &val).map_err(js_err)?;
    trainer.run_steps_async(1).await.map_err(js_err)?;
    let got = trainer.model().parameters_async().await.map_err(js_err)?;
    let mut reference = ReferenceMlp::new(model_config).map_err(js_err)?;
    let order = shuffle_order(train_config.seed, 0, train.len());
    let batch = &order[..train_config.batch_size.min(order.len())];
    let x: Vec<f32> = batch
        .iter()
        .flat_map(|&r| train.row(r as usize).to_vec())
        .collect();
    let y: Vec<u32> = batch.iter().map(|&r| train.labels()[r as usize]).collect();
    reference
        .train_step(&x, &y, &train_config, 1)
        .map_err(js_err)?;
    let mut worst = 0.0f64;
    let mut values = 0usize;
    for ((gw, gb), (rw, rb)) in got.iter().zip(&reference.params) {
        for (g, r) in gw.iter().chain(gb.iter()).zip(rw.iter().chain(rb.iter())) {
            let ratio = (*g as f64 - *r as f64).abs() / (1e-4 * (*r as f64).abs() + 1e-6);
            worst = worst.max(json_number(ratio));
            values += 1;
        }
    }
    to_json(&serde_json::json!({
        "worst": worst,
        "values": values,
        "tensors": 2 * got.len(),
        "passes": worst <= 1.0 && values > 0,
        "kernels": format!("{:?}", train_config.kernels),
    }))
}
