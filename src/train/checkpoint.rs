//! Checkpoints in safetensors: the model in one file whose tensors load
//! straight into PyTorch (`layers.{i}.weight` `[out, in]`, `layers.{i}.bias`),
//! and, for resuming, the optimizer state in a sidecar file named by the
//! main file's metadata together with the configuration, the step and the
//! position in the data order.
//!
//! Writes are atomic: each file is written to a temporary file in the same
//! folder, flushed to disk and renamed over the old one; the sidecar (named
//! after its step) is written before the main file that points to it, and
//! older sidecars are removed only after. A crash at any moment leaves the
//! old checkpoint or the new one, never a torn file.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use super::trainer::TrainConfig;
use crate::error::Error;
use crate::nn::mlp::LayerValues;
use crate::nn::MlpConfig;

/// The format tag in every checkpoint's metadata.
pub const FORMAT: &str = "fusedmlp-checkpoint-1";

/// Where a run stood when it was saved, for an exact resume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingState {
    /// Optimizer steps taken.
    pub step: u64,
    /// The epoch in progress.
    pub epoch: usize,
    /// Steps already taken in that epoch.
    pub step_in_epoch: usize,
    /// The training configuration.
    pub train_config: TrainConfig,
    /// A fingerprint of the training data (rows, features and labels), so a
    /// resume on other data is refused.
    pub data_fingerprint: u64,
    /// The epoch's running [loss sum, correct, rows] so far.
    pub epoch_totals: [f32; 3],
    /// Optimizer state per parameter tensor (weight 0, bias 0, weight 1, ...):
    /// (first buffer, second buffer). Stored in the sidecar file.
    #[serde(skip)]
    pub optimizer_state: Vec<(Vec<f32>, Vec<f32>)>,
}

/// A saved model, with the training state when it was saved mid-run.
/// [`crate::Mlp::save`] and [`crate::Mlp::load`] cover a model alone;
/// a checkpoint is also how [`crate::Trainer::save_checkpoint`] and
/// [`crate::Trainer::resume`] carry a run.
///
/// ```no_run
/// use fusedmlp::train::Checkpoint;
///
/// let ckpt = Checkpoint::load("run.safetensors".as_ref())?;
/// println!("{} layers, {} parameters", ckpt.params.len(), ckpt.model.parameter_count());
/// if let Some(t) = &ckpt.training {
///     println!("saved at step {} (epoch {})", t.step, t.epoch);
/// }
/// # Ok::<(), fusedmlp::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// The architecture.
    pub model: MlpConfig,
    /// (weight `[out, in]`, bias `[out]`) per layer.
    pub params: Vec<LayerValues>,
    /// Present in checkpoints written during training.
    pub training: Option<TrainingState>,
    /// The feature standardisation the model was trained with, if any:
    /// evaluation and prediction apply it to their inputs.
    pub standardizer: Option<crate::data::Standardizer>,
    /// Learned PReLU slopes per layer (empty where none), saved as
    /// `activations.{i}.weight` (`nn.PReLU`'s parameter name).
    pub slopes: Vec<Vec<f32>>,
    /// LayerNorm or BatchNorm1d (scale, shift) per layer (empty where
    /// none), saved as `norms.{i}.weight` and `norms.{i}.bias` (PyTorch's
    /// names).
    pub norms: Vec<(Vec<f32>, Vec<f32>)>,
    /// BatchNorm1d's running (mean, variance) per layer (empty where none),
    /// saved as `norms.{i}.running_mean` and `norms.{i}.running_var`
    /// (`nn.BatchNorm1d`'s buffer names; its `num_batches_tracked` is not
    /// kept, the momentum being fixed).
    pub running: Vec<(Vec<f32>, Vec<f32>)>,
}

/// FNV-1a, 64-bit: a checksum of the sidecar and a fingerprint of data sets.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

pub(super) fn io_err(context: String) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { context, source }
}

fn data_err(path: &str, message: impl Into<String>) -> Error {
    Error::Data {
        path: path.to_string(),
        message: message.into(),
    }
}

fn f32_bytes(v: &[f32]) -> &[u8] {
    bytemuck::cast_slice(v)
}

/// Writes `bytes` to `path` atomically: temporary file, fsync, rename, and
/// an fsync of the folder so the rename itself is durable. Each call has a
/// temporary file of its own (process and call number), so threads writing
/// the same path at once each leave a whole file, the last rename winning.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| Error::Config(format!("'{}' is not a file path", path.display())))?;
    let tmp = dir.join(format!(".{name}.tmp-{}-{call}", std::process::id()));
    let result = (|| {
        let mut f =
            std::fs::File::create(&tmp).map_err(io_err(format!("creating {}", tmp.display())))?;
        f.write_all(bytes)
            .map_err(io_err(format!("writing {}", tmp.display())))?;
        f.sync_all()
            .map_err(io_err(format!("flushing {}", tmp.display())))?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(io_err(format!(
            "renaming {} to {}",
            tmp.display(),
            path.display()
        )))?;
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

impl Checkpoint {
    fn sidecar_name(main: &Path, step: u64) -> String {
        let base = main
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "checkpoint".into());
        format!("{base}.optim-{step}.safetensors")
    }

    /// The sidecar's bytes (optimizer state), if there is training state.
    fn sidecar_bytes(&self) -> Result<Option<Vec<u8>>, Error> {
        let Some(t) = &self.training else {
            return Ok(None);
        };
        let mut views = Vec::new();
        for (k, (s1, s2)) in t.optimizer_state.iter().enumerate() {
            for (which, v) in [("state1", s1), ("state2", s2)] {
                let view = TensorView::new(Dtype::F32, vec![v.len()], f32_bytes(v))
                    .map_err(|e| Error::Config(format!("optimizer state {k}: {e}")))?;
                views.push((format!("optimizer.{k}.{which}"), view));
            }
        }
        let meta = HashMap::from([
            ("format".to_string(), FORMAT.to_string()),
            ("step".to_string(), t.step.to_string()),
        ]);
        safetensors::serialize(views, &Some(meta))
            .map(Some)
            .map_err(|e| Error::Config(format!("serialising the optimizer state: {e}")))
    }

    /// The main file's bytes; `sidecar` names the optimizer file and its checksum.
    fn main_bytes(&self, sidecar: Option<(&str, u64)>) -> Result<Vec<u8>, Error> {
        let mut views = Vec::new();
        for (l, (w, b)) in self.params.iter().enumerate() {
            let (fan_in, fan_out) = self.model.layer_shapes()[l];
            let wv = TensorView::new(Dtype::F32, vec![fan_out, fan_in], f32_bytes(w))
                .map_err(|e| Error::Config(format!("layers.{l}.weight: {e}")))?;
            let bv = TensorView::new(Dtype::F32, vec![fan_out], f32_bytes(b))
                .map_err(|e| Error::Config(format!("layers.{l}.bias: {e}")))?;
            views.push((format!("layers.{l}.weight"), wv));
            views.push((format!("layers.{l}.bias"), bv));
        }
        for (l, a) in self
            .slopes
            .iter()
            .enumerate()
            .filter(|(_, a)| !a.is_empty())
        {
            let av = TensorView::new(Dtype::F32, vec![a.len()], f32_bytes(a))
                .map_err(|e| Error::Config(format!("activations.{l}.weight: {e}")))?;
            views.push((format!("activations.{l}.weight"), av));
        }
        let named = [("weight", "bias"), ("running_mean", "running_var")];
        for (pairs, (first, second)) in [&self.norms, &self.running].into_iter().zip(named) {
            for (l, (g, b)) in pairs.iter().enumerate() {
                if g.is_empty() {
                    continue;
                }
                for (which, v) in [(first, g), (second, b)] {
                    let view = TensorView::new(Dtype::F32, vec![v.len()], f32_bytes(v))
                        .map_err(|e| Error::Config(format!("norms.{l}.{which}: {e}")))?;
                    views.push((format!("norms.{l}.{which}"), view));
                }
            }
        }
        let mut meta = HashMap::from([
            ("format".to_string(), FORMAT.to_string()),
            ("model".to_string(), to_json(&self.model)?),
        ]);
        if let Some(t) = &self.training {
            meta.insert("training".to_string(), to_json(t)?);
        }
        if let Some(st) = &self.standardizer {
            meta.insert("standardizer".to_string(), to_json(st)?);
        }
        if let Some((name, sum)) = sidecar {
            meta.insert("optimizer_file".to_string(), name.to_string());
            meta.insert("optimizer_checksum".to_string(), format!("{sum:016x}"));
        }
        safetensors::serialize(views, &Some(meta))
            .map_err(|e| Error::Config(format!("serialising the checkpoint: {e}")))
    }

    /// Saves to `path` (and, with training state, a sidecar beside it),
    /// atomically; removes sidecars of older saves of the same path.
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        let sidecar = self.sidecar_bytes()?;
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        if let Some(d) = dir {
            std::fs::create_dir_all(d).map_err(io_err(format!("creating {}", d.display())))?;
        }
        let mut keep = None;
        let main = match (&sidecar, &self.training) {
            (Some(bytes), Some(t)) => {
                let name = Self::sidecar_name(path, t.step);
                let side_path = path.with_file_name(&name);
                write_atomic(&side_path, bytes)?;
                keep = Some(name.clone());
                self.main_bytes(Some((&name, fnv1a64(bytes))))?
            }
            _ => self.main_bytes(None)?,
        };
        write_atomic(path, &main)?;
        // Only now are older sidecars unreferenced.
        let prefix = format!(
            "{}.optim-",
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        );
        let folder = dir
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        if let Ok(entries) = std::fs::read_dir(&folder) {
            for e in entries.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.starts_with(&prefix)
                    && n.ends_with(".safetensors")
                    && Some(&n) != keep.as_ref()
                {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        Ok(())
    }

    /// Loads a checkpoint (and its optimizer sidecar, when it names one).
    pub fn load(path: &Path) -> Result<Checkpoint, Error> {
        let main = std::fs::read(path)
            .map_err(io_err(format!("reading checkpoint {}", path.display())))?;
        let name = path.display().to_string();
        let sidecar_name = Self::sidecar_name_in(&main, &name)?;
        let sidecar = match sidecar_name {
            Some(n) => {
                let p = path.with_file_name(&n);
                Some(std::fs::read(&p).map_err(io_err(format!(
                    "reading the optimizer state {} named by {}",
                    p.display(),
                    path.display()
                )))?)
            }
            None => None,
        };
        Self::from_bytes(&name, &main, sidecar.as_deref())
    }

    fn sidecar_name_in(main: &[u8], name: &str) -> Result<Option<String>, Error> {
        check_is_safetensors(name, main)?;
        let (_, meta) = SafeTensors::read_metadata(main).map_err(|e| corrupt(name, e))?;
        let file = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get("optimizer_file").cloned());
        if let Some(f) = &file {
            if f.contains('/') || f.contains('\\') || f.starts_with('.') {
                return Err(data_err(
                    name,
                    format!("the optimizer file name '{f}' is not a plain file name"),
                ));
            }
        }
        Ok(file)
    }

    /// Parses a checkpoint from bytes, validating every name, shape and value.
    /// `name` is used in error messages.
    pub fn from_bytes(
        name: &str,
        main: &[u8],
        sidecar: Option<&[u8]>,
    ) -> Result<Checkpoint, Error> {
        Self::parse(name, main, sidecar, true)
    }

    /// Parses the model part of a checkpoint (what prediction needs),
    /// ignoring any training state and its optimizer file: a model saved
    /// by [`crate::Mlp::save`] or a training checkpoint alike.
    pub fn from_bytes_without_training(name: &str, main: &[u8]) -> Result<Checkpoint, Error> {
        Self::parse(name, main, None, false)
    }

    /// The checkpoint as the bytes of one safetensors file. A checkpoint
    /// with training state is two files (see [`Checkpoint::save`]): that is
    /// an error here.
    pub fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        if self.training.is_some() {
            return Err(Error::Config(
                "a checkpoint with training state is saved as two files (the model and its \
                 optimizer state): use Checkpoint::save, or drop the training state"
                    .into(),
            ));
        }
        self.main_bytes(None)
    }

    fn parse(
        name: &str,
        main: &[u8],
        sidecar: Option<&[u8]>,
        with_training: bool,
    ) -> Result<Checkpoint, Error> {
        check_is_safetensors(name, main)?;
        let st = SafeTensors::deserialize(main).map_err(|e| corrupt(name, e))?;
        let (_, meta) = SafeTensors::read_metadata(main).map_err(|e| corrupt(name, e))?;
        let meta = meta.metadata().clone().unwrap_or_default();
        match meta.get("format") {
            Some(f) if f == FORMAT => {}
            Some(f) => {
                return Err(data_err(name, format!("checkpoint format '{f}' is not the supported '{FORMAT}'")))
            }
            None => {
                return Err(data_err(
                    name,
                    "this safetensors file has no fusedmlp metadata (format); it was not written by fusedmlp",
                ))
            }
        }
        let model: MlpConfig = serde_json::from_str(
            meta.get("model").map(String::as_str).unwrap_or(""),
        )
        .map_err(|e| {
            data_err(
                name,
                format!("the model configuration in the metadata is invalid: {e}"),
            )
        })?;
        model.validate().map_err(|e| {
            data_err(
                name,
                format!("the saved model configuration is invalid: {e}"),
            )
        })?;
        // Bound the work before allocating: the shapes must fit the file.
        let expected: usize = model.parameter_count();
        if expected.saturating_mul(4) > main.len() {
            return Err(data_err(
                name,
                format!(
                    "the saved configuration needs {expected} parameters but the file holds {} bytes: \
                     truncated, or a configuration that does not match its tensors",
                    main.len()
                ),
            ));
        }
        let shapes = model.layer_shapes();
        let read = |tensor: &str, shape: Vec<usize>| -> Result<Vec<f32>, Error> {
            let view = st.tensor(tensor).map_err(|_| {
                data_err(
                    name,
                    format!("tensor '{tensor}' is missing (expected shape {shape:?})"),
                )
            })?;
            if view.dtype() != Dtype::F32 {
                return Err(data_err(
                    name,
                    format!("tensor '{tensor}' is {:?}, expected F32", view.dtype()),
                ));
            }
            if view.shape() != shape.as_slice() {
                return Err(data_err(
                    name,
                    format!(
                        "tensor '{tensor}' has shape {:?} but the configuration needs {shape:?}",
                        view.shape()
                    ),
                ));
            }
            let values: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                return Err(data_err(
                    name,
                    format!("tensor '{tensor}' holds a non-finite value at index {i}"),
                ));
            }
            Ok(values)
        };
        let mut params = Vec::with_capacity(shapes.len());
        for (l, &(fan_in, fan_out)) in shapes.iter().enumerate() {
            let w = read(&format!("layers.{l}.weight"), vec![fan_out, fan_in])?;
            let b = read(&format!("layers.{l}.bias"), vec![fan_out])?;
            params.push((w, b));
        }
        let mut slopes = Vec::with_capacity(shapes.len());
        for l in 0..shapes.len() {
            let k = model.slope_count(l);
            slopes.push(if k > 0 {
                read(&format!("activations.{l}.weight"), vec![k])?
            } else {
                Vec::new()
            });
        }
        let mut norms = Vec::with_capacity(shapes.len());
        for (l, &(_, fan_out)) in shapes.iter().enumerate() {
            norms.push(if model.has_norm(l) {
                (
                    read(&format!("norms.{l}.weight"), vec![fan_out])?,
                    read(&format!("norms.{l}.bias"), vec![fan_out])?,
                )
            } else {
                (Vec::new(), Vec::new())
            });
        }
        let mut running = Vec::with_capacity(shapes.len());
        for (l, &(_, fan_out)) in shapes.iter().enumerate() {
            running.push(if model.has_batch_norm(l) {
                (
                    read(&format!("norms.{l}.running_mean"), vec![fan_out])?,
                    read(&format!("norms.{l}.running_var"), vec![fan_out])?,
                )
            } else {
                (Vec::new(), Vec::new())
            });
        }
        let known = 2 * shapes.len()
            + slopes.iter().filter(|a| !a.is_empty()).count()
            + 2 * norms.iter().filter(|(g, _)| !g.is_empty()).count()
            + 2 * running.iter().filter(|(m, _)| !m.is_empty()).count();
        if st.len() != known {
            let extra: Vec<String> = st
                .names()
                .into_iter()
                .filter(|n| !n.starts_with("layers."))
                .take(5)
                .cloned()
                .collect();
            return Err(data_err(
                name,
                format!(
                    "the file holds {} tensors but the configuration has {known} (unexpected: {extra:?})",
                    st.len()
                ),
            ));
        }
        let training = match meta.get("training").filter(|_| with_training) {
            None => None,
            Some(text) => {
                let mut t: TrainingState = serde_json::from_str(text).map_err(|e| {
                    data_err(
                        name,
                        format!("the training state in the metadata is invalid: {e}"),
                    )
                })?;
                let side = sidecar.ok_or_else(|| {
                    data_err(
                        name,
                        "the checkpoint has training state but its optimizer file was not given",
                    )
                })?;
                let want = meta.get("optimizer_checksum").cloned().unwrap_or_default();
                let got = format!("{:016x}", fnv1a64(side));
                if want != got {
                    return Err(data_err(
                        name,
                        format!(
                            "the optimizer file's checksum is {got} but the checkpoint expects {want}: \
                             it is corrupted or from another save"
                        ),
                    ));
                }
                let sname = format!("{name} (optimizer state)");
                let sst = SafeTensors::deserialize(side).map_err(|e| corrupt(&sname, e))?;
                let mut state = Vec::new();
                let mut lens: Vec<usize> = params
                    .iter()
                    .flat_map(|(w, b)| [w.len(), b.len()])
                    .collect();
                lens.extend(slopes.iter().filter(|a| !a.is_empty()).map(|a| a.len()));
                for (g, b) in norms.iter().filter(|(g, _)| !g.is_empty()) {
                    lens.push(g.len());
                    lens.push(b.len());
                }
                for (k, &n) in lens.iter().enumerate() {
                    let get = |which: &str| -> Result<Vec<f32>, Error> {
                        let t = format!("optimizer.{k}.{which}");
                        let view = sst
                            .tensor(&t)
                            .map_err(|_| data_err(&sname, format!("tensor '{t}' is missing")))?;
                        if view.dtype() != Dtype::F32 || view.shape() != [n] {
                            return Err(data_err(
                                &sname,
                                format!(
                                    "tensor '{t}' is {:?} {:?}, expected F32 [{n}]",
                                    view.dtype(),
                                    view.shape()
                                ),
                            ));
                        }
                        Ok(view
                            .data()
                            .chunks_exact(4)
                            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                            .collect())
                    };
                    state.push((get("state1")?, get("state2")?));
                }
                t.optimizer_state = state;
                // The data size is checked on resume, against the real data.
                t.train_config.validate(usize::MAX).map_err(|e| {
                    data_err(
                        name,
                        format!("the saved training configuration is invalid: {e}"),
                    )
                })?;
                Some(t)
            }
        };
        let standardizer = match meta.get("standardizer") {
            None => None,
            Some(text) => {
                let st: crate::data::Standardizer = serde_json::from_str(text).map_err(|e| {
                    data_err(
                        name,
                        format!("the standardisation in the metadata is invalid: {e}"),
                    )
                })?;
                if st.mean().len() != model.input || st.std().len() != model.input {
                    return Err(data_err(
                        name,
                        "the standardisation does not match the model's input size",
                    ));
                }
                Some(st)
            }
        };
        Ok(Checkpoint {
            model,
            params,
            training,
            standardizer,
            slopes,
            norms,
            running,
        })
    }
}

/// Fails, saying so, where `bytes` do not even begin as a safetensors file
/// (an 8-byte little-endian header length, then a JSON header that fits):
/// a CSV or another file given where a checkpoint was expected.
fn check_is_safetensors(name: &str, bytes: &[u8]) -> Result<(), Error> {
    let header = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]));
    let fits = header.is_some_and(|n| n >= 2 && n <= (bytes.len() - 8) as u64);
    if fits && bytes.get(8) == Some(&b'{') {
        return Ok(());
    }
    let what = if bytes.is_empty() {
        "the file is empty".to_string()
    } else if bytes
        .iter()
        .take(512)
        .all(|&b| matches!(b, b'\n' | b'\r' | b'\t') || (0x20..0x7f).contains(&b))
    {
        "it is text (a CSV or JSON file?), not a safetensors file".to_string()
    } else {
        "it does not begin as a safetensors file does (a header length and a JSON header)"
            .to_string()
    };
    Err(data_err(
        name,
        format!(
            "not a fusedmlp model or checkpoint: {what}; give a .safetensors file written by \
             Mlp::save or Trainer::save_checkpoint"
        ),
    ))
}

fn corrupt(name: &str, e: impl std::fmt::Display) -> Error {
    data_err(
        name,
        format!("not a readable safetensors checkpoint ({e}): the file is truncated or corrupted; use an earlier checkpoint"),
    )
}

/// Serialises a value as JSON for the metadata.
fn to_json<T: Serialize>(value: &T) -> Result<String, Error> {
    serde_json::to_string(value).map_err(|e| Error::Config(format!("serialising metadata: {e}")))
}

#[cfg(test)]
mod tests {
    use super::write_atomic;

    /// Threads of one process writing the same path at once each write a
    /// temporary file of their own: every call succeeds and the file is one
    /// of the writes, whole (they shared one temporary name, and a rename
    /// found it gone).
    #[test]
    fn concurrent_atomic_writes_to_one_path_all_succeed() {
        let dir = std::env::temp_dir().join(format!("fusedmlp-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("same.bin");
        let writes: Vec<Vec<u8>> = (0..8u8).map(|t| vec![t; 64 * 1024]).collect();
        std::thread::scope(|s| {
            for bytes in &writes {
                let path = &path;
                s.spawn(move || {
                    for _ in 0..20 {
                        write_atomic(path, bytes).unwrap();
                    }
                });
            }
        });
        let got = std::fs::read(&path).unwrap();
        assert!(writes.contains(&got), "the file is one whole write");
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file is left behind");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
