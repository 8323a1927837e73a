//! Checkpoint state: saving a run and resuming it.

use super::*;

/// A fingerprint of a data set's contents.
pub fn data_fingerprint(d: &Dataset) -> u64 {
    let mut bytes = Vec::with_capacity(16 + d.features.len() * 4 + d.labels.len() * 4);
    bytes.extend_from_slice(&(d.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&(d.n_features as u64).to_le_bytes());
    bytes.extend_from_slice(bytemuck::cast_slice(&d.features));
    bytes.extend_from_slice(bytemuck::cast_slice(&d.labels));
    crate::train::checkpoint::fnv1a64(&bytes)
}

impl Trainer {
    /// Saves a checkpoint every `every` steps (and at the end) to `path`.
    pub fn set_checkpointing(&mut self, path: impl Into<PathBuf>, every: u64) {
        self.checkpointing = Some((path.into(), every.max(1)));
    }

    /// The model and the full training state, read back from the device.
    pub fn checkpoint(&mut self) -> Result<crate::train::checkpoint::Checkpoint, Error> {
        pollster::block_on(self.checkpoint_async())
    }

    /// [`Trainer::checkpoint`] without blocking.
    pub async fn checkpoint_async(
        &mut self,
    ) -> Result<crate::train::checkpoint::Checkpoint, Error> {
        let params = self.model.parameters_async().await?;
        let slopes = self.model.slope_values_async().await?;
        let norms = self.model.norm_values_async().await?;
        let running = self.model.running_stat_values_async().await?;
        let mut optimizer_state = Vec::new();
        for (a, b) in self.optimizer_tensors()? {
            optimizer_state.push((
                self.gpu.download_async(&a).await?,
                self.gpu.download_async(&b).await?,
            ));
        }
        let totals = self.gpu.download_async(&self.train_totals).await?;
        self.readbacks += 2 + 2 * optimizer_state.len() as u64 + 1;
        Ok(crate::train::checkpoint::Checkpoint {
            model: self.model.config.clone(),
            params,
            training: Some(crate::train::checkpoint::TrainingState {
                step: self.step,
                epoch: self.epoch,
                step_in_epoch: self.step_in_epoch,
                train_config: self.config.clone(),
                data_fingerprint: self.data_fingerprint,
                epoch_totals: [totals[0], totals[1], totals[2]],
                optimizer_state,
            }),
            standardizer: self.model.standardizer().cloned(),
            slopes,
            norms,
            running,
        })
    }

    /// Saves a checkpoint to `path` now.
    pub fn save_checkpoint(&mut self, path: &Path) -> Result<(), Error> {
        pollster::block_on(self.save_checkpoint_async(path))
    }

    /// [`Trainer::save_checkpoint`] without blocking on the GPU (the file
    /// is written with blocking I/O).
    pub async fn save_checkpoint_async(&mut self, path: &Path) -> Result<(), Error> {
        let c = self.checkpoint_async().await?;
        c.save(path)?;
        self.last_checkpoint = Some((path.to_path_buf(), self.step));
        Ok(())
    }

    /// Rebuilds a run from a checkpoint written by [`Trainer::save_checkpoint`]:
    /// the same parameters, optimizer state, step and place in the data
    /// order, so training on continues exactly as if never interrupted.
    /// `epochs` (if given) replaces the saved epoch count.
    pub fn resume(
        gpu: &Gpu,
        checkpoint: &crate::train::checkpoint::Checkpoint,
        train: &Dataset,
        validation: &Dataset,
        epochs: Option<usize>,
    ) -> Result<Trainer, Error> {
        let state = checkpoint.training.as_ref().ok_or_else(|| {
            Error::Config("this checkpoint holds only a model, no training state to resume".into())
        })?;
        if data_fingerprint(train) != state.data_fingerprint {
            return Err(Error::Config(
                "the training data differs from the data the checkpoint was trained on; \
                 resume with the same data, split and seed"
                    .into(),
            ));
        }
        let mut config = state.train_config.clone();
        if let Some(e) = epochs {
            config.epochs = e;
        }
        let model = Mlp::from_checkpoint(gpu, checkpoint)?;
        let mut t = Trainer::new(model, config, train, validation)?;
        let tensors = t.optimizer_tensors()?;
        if tensors.len() != state.optimizer_state.len() {
            return Err(Error::Config(
                "the checkpoint's optimizer state does not match the model".into(),
            ));
        }
        for ((a, b), (sa, sb)) in tensors.into_iter().zip(&state.optimizer_state) {
            gpu.write(&a, sa)?;
            gpu.write(&b, sb)?;
        }
        gpu.write(&t.train_totals, &state.epoch_totals)?;
        t.step = state.step;
        t.epoch = state.epoch;
        t.step_in_epoch = state.step_in_epoch;
        Ok(t)
    }
}
