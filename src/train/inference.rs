//! A trained net as a model to keep and use: saved to one safetensors file
//! with everything prediction needs (weights, learned slopes, norms,
//! BatchNorm's running statistics, the feature standardizer), loaded in one
//! call, and evaluated on a labelled data set.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::checkpoint::{io_err, Checkpoint};
use crate::data::Dataset;
use crate::error::Error;
use crate::gpu::Gpu;
use crate::nn::loss::loss_and_grad;
use crate::nn::{Head, Mlp};

/// How a model does on a labelled data set ([`Mlp::evaluate`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Metrics {
    /// Rows evaluated.
    pub rows: usize,
    /// The mean loss of the model's head (cross-entropy for softmax and
    /// sigmoid heads, squared error for mse), as training reports it.
    pub loss: f64,
    /// Rows predicted right, counted as training counts them.
    pub correct: usize,
    /// `correct / rows`.
    pub accuracy: f64,
}

impl std::fmt::Display for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} rows, loss {:.4}, accuracy {:.4} ({} correct)",
            self.rows, self.loss, self.accuracy, self.correct
        )
    }
}

impl Mlp {
    /// The model's loss and accuracy on `data` (evaluation mode: no
    /// dropout, BatchNorm's running statistics). Rows are taken as the data
    /// set holds them, standardised by the model's own standardizer if it
    /// carries one (as [`Mlp::load`] restores it); give data that is
    /// already standardised only to a model without one.
    ///
    /// Errors: [`Error::Shape`] if the data's feature count is not the
    /// model's input; [`Error::Data`] if a label is out of the head's range.
    pub fn evaluate(&self, data: &Dataset) -> Result<Metrics, Error> {
        pollster::block_on(self.evaluate_async(data))
    }

    /// [`Mlp::evaluate`] without blocking.
    pub async fn evaluate_async(&self, data: &Dataset) -> Result<Metrics, Error> {
        let c = &self.config;
        if data.n_features != c.input {
            return Err(Error::shape(
                format!("Mlp::evaluate on '{}'", data.name),
                format!("{} features (the model's input)", c.input),
                format!("{} features", data.n_features),
            ));
        }
        // Labels the head can score: a class index below the output count,
        // or 0/1 for a single sigmoid output (mse takes any value).
        let bound = match (c.head, c.output) {
            (Head::Mse, _) => None,
            (Head::Sigmoid, 1) => Some(2),
            (_, k) => Some(k),
        };
        if let Some(k) = bound {
            if let Some((row, &label)) = data
                .labels
                .iter()
                .enumerate()
                .find(|(_, &l)| l as usize >= k)
            {
                return Err(Error::Data {
                    path: data.name.clone(),
                    message: format!(
                        "row {row} has label {label}, but the model's {} head with {} output{} \
                         scores labels 0 to {}",
                        c.head,
                        c.output,
                        if c.output == 1 { "" } else { "s" },
                        k - 1
                    ),
                });
            }
        }
        let rows = data.len();
        if rows == 0 {
            return Ok(Metrics {
                rows: 0,
                loss: 0.0,
                correct: 0,
                accuracy: 0.0,
            });
        }
        let logits = self.predict_logits_async(&data.features, rows).await?;
        let (loss, correct, _) = loss_and_grad(c.head, &logits, &data.labels, c.output);
        Ok(Metrics {
            rows,
            loss,
            correct,
            accuracy: correct as f64 / rows as f64,
        })
    }

    /// Everything prediction needs, read back from the device: the
    /// configuration, weights, learned slopes, norms, BatchNorm's running
    /// statistics and the standardizer (no training state).
    pub fn to_checkpoint(&self) -> Result<Checkpoint, Error> {
        pollster::block_on(self.to_checkpoint_async())
    }

    /// [`Mlp::to_checkpoint`] without blocking.
    pub async fn to_checkpoint_async(&self) -> Result<Checkpoint, Error> {
        Ok(Checkpoint {
            model: self.config.clone(),
            params: self.parameters_async().await?,
            training: None,
            standardizer: self.standardizer().cloned(),
            slopes: self.slope_values_async().await?,
            norms: self.norm_values_async().await?,
            running: self.running_stat_values_async().await?,
        })
    }

    /// The model as it was saved: parameters, slopes, norms, running
    /// statistics and standardizer (any training state is ignored).
    pub fn from_checkpoint(gpu: &Gpu, checkpoint: &Checkpoint) -> Result<Mlp, Error> {
        let mut model = Mlp::from_parameters_and_slopes(
            gpu,
            checkpoint.model.clone(),
            &checkpoint.params,
            &checkpoint.slopes,
        )?;
        model.set_norms(&checkpoint.norms)?;
        model.set_running_stats(&checkpoint.running)?;
        model.set_standardizer(checkpoint.standardizer.clone())?;
        Ok(model)
    }

    /// Saves the model to one safetensors file, atomically (see
    /// [`Mlp::to_checkpoint`] for what it holds). The tensors load
    /// straight into PyTorch (`layers.{i}.weight` `[out, in]`,
    /// `layers.{i}.bias`); [`Mlp::load`] and `fusedmlp predict` read it.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), Error> {
        self.to_checkpoint()?.save(path.as_ref())
    }

    /// Loads a model saved by [`Mlp::save`] (or a training checkpoint from
    /// [`crate::Trainer::save_checkpoint`], whose training state is not
    /// needed here) onto `gpu`, ready to predict rows as they come.
    pub fn load(gpu: &Gpu, path: impl AsRef<Path>) -> Result<Mlp, Error> {
        let path = path.as_ref();
        let bytes =
            std::fs::read(path).map_err(io_err(format!("reading the model {}", path.display())))?;
        Self::from_bytes(gpu, &path.display().to_string(), &bytes)
    }

    /// [`Mlp::load`] from the bytes of a saved file (`name` is used in
    /// messages): where there is no file system, as in the browser.
    pub fn from_bytes(gpu: &Gpu, name: &str, bytes: &[u8]) -> Result<Mlp, Error> {
        let checkpoint = Checkpoint::from_bytes_without_training(name, bytes)?;
        Self::from_checkpoint(gpu, &checkpoint)
    }

    /// The bytes [`Mlp::save`] writes: where there is no file system, as
    /// in the browser (the playground's model download).
    pub async fn to_bytes_async(&self) -> Result<Vec<u8>, Error> {
        self.to_checkpoint_async().await?.to_bytes()
    }
}
