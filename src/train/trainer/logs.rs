//! Logged steps: the staging ring, collecting diagnostics, the divergence flags.

use super::*;

/// Bytes one logged step copies back: the step's loss and accuracy, the
/// norms, the per-layer summaries and the histograms.
pub(super) fn log_bytes(slots: &Slots, layers: usize) -> u64 {
    ((2 + slots.count() + 4 * layers + layers * (HIST_BINS + 2)) * 4) as u64
}

/// Staging buffers for logged steps' diagnostics, made once and reused: a
/// logged step waits (for every copy in flight) only when all are in use.
pub(super) const LOG_SLOTS: usize = 4;

pub(super) struct PendingLog {
    /// Index into the trainer's `log_slots`.
    pub(super) slot: usize,
    /// The map request on the slot, completed when the copy has arrived.
    pub(super) mapping: crate::gpu::readback::Mapping,
    pub(super) step: u64,
    pub(super) epoch: usize,
    pub(super) learning_rate: f32,
}

impl Trainer {
    /// A log staging buffer no logged step is using; when all are in
    /// flight, waits for them (a logged step never allocates its own).
    pub(super) async fn free_log_slot(&mut self) -> Result<usize, Error> {
        if self.pending.len() >= self.log_slots.len() {
            self.collect_logs(true).await?;
        }
        (0..self.log_slots.len())
            .find(|i| self.pending.iter().all(|p| p.slot != *i))
            .ok_or_else(|| Error::GpuWait {
                context: "collecting diagnostics".into(),
                message: "every log buffer is still in flight after waiting".into(),
            })
    }

    /// Collects logged steps whose copies have arrived; with `wait`, all of them.
    pub(super) async fn collect_logs(&mut self, wait: bool) -> Result<(), Error> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if !wait {
            let _ = self.gpu.device().poll(wgpu::PollType::Poll);
        }
        let n = self.layers.len();
        let mut still = Vec::new();
        for mut p in std::mem::take(&mut self.pending) {
            if !p.mapping.is_ready() {
                if wait {
                    p.mapping
                        .wait(&self.gpu, "collecting diagnostics", None)
                        .await?;
                } else {
                    still.push(p);
                    continue;
                }
            }
            let buffer = &self.log_slots[p.slot];
            let bytes = buffer
                .slice(..)
                .get_mapped_range()
                .map_err(|e| Error::GpuWait {
                    context: "reading diagnostics".into(),
                    message: e.to_string(),
                })?
                .to_vec();
            buffer.unmap();
            self.readbacks += 1;
            self.gpu.count_readback();
            let floats: Vec<f32> =
                bytemuck::pod_collect_to_vec(&bytes[..(2 + self.slots.count() + 4 * n) * 4]);
            let hist: Vec<u32> =
                bytemuck::pod_collect_to_vec(&bytes[(2 + self.slots.count() + 4 * n) * 4..]);
            let norms = &floats[2..2 + self.slots.count()];
            let summary = &floats[2 + self.slots.count()..];
            let layers = (0..n)
                .map(|l| {
                    let wn = norms[self.slots.weight(l) as usize].sqrt();
                    LayerDiagnostics {
                        layer: l,
                        weight_grad_norm: norms[self.slots.grad_w(l) as usize].sqrt(),
                        bias_grad_norm: norms[self.slots.grad_b(l) as usize].sqrt(),
                        weight_norm: wn,
                        update_ratio: norms[self.slots.update(l) as usize].sqrt()
                            / wn.max(f32::MIN_POSITIVE),
                        activation_mean: summary[4 * l],
                        activation_std: summary[4 * l + 1],
                        dead_fraction: summary[4 * l + 2],
                        saturated_fraction: summary[4 * l + 3],
                        histogram: hist[l * (HIST_BINS + 2)..(l + 1) * (HIST_BINS + 2)].to_vec(),
                    }
                })
                .collect();
            self.logs.push(StepLog {
                step: p.step,
                epoch: p.epoch,
                loss: floats[0],
                accuracy: floats[1],
                learning_rate: p.learning_rate,
                // Every gradient tensor's Σ g², added as clipping adds them.
                grad_global_norm: global_norm(norms, self.slots.grads()),
                layers,
            });
        }
        self.pending = still;
        self.logs.sort_by_key(|l| l.step);
        self.logs_dropped += thin_logged_steps(&mut self.logs, self.config.max_logged_steps) as u64;
        Ok(())
    }

    /// Reads the divergence flags (one readback): the earliest non-finite
    /// value, if any.
    pub fn divergence(&mut self) -> Result<Option<Divergence>, Error> {
        pollster::block_on(self.divergence_async())
    }

    /// [`Trainer::divergence`] without blocking.
    pub async fn divergence_async(&mut self) -> Result<Option<Divergence>, Error> {
        let n = self.layers.len();
        let bytes = self
            .gpu
            .read_bytes_async(&self.first_bad, 0, ((3 * n + 1) * 4) as u64)
            .await?;
        self.readbacks += 1;
        let flags: Vec<u32> = bytemuck::pod_collect_to_vec(&bytes);
        // Within one step, order the slots as the step computes them:
        // activations first to last layer, the loss, gradients last to
        // first layer, then the updated weights.
        let causal = |slot: usize| -> usize {
            if slot == 3 * n {
                return n;
            }
            let (l, kind) = (slot / 3, slot % 3);
            match kind {
                0 => l,
                1 => n + 1 + (n - 1 - l),
                _ => 2 * n + 1 + l,
            }
        };
        let Some((slot, &step)) = flags
            .iter()
            .enumerate()
            .filter(|(_, &s)| s != u32::MAX)
            .min_by_key(|(slot, &s)| (s, causal(*slot)))
        else {
            return Ok(None);
        };
        let (layer, tensor) = if slot == 3 * n {
            (None, "loss".to_string())
        } else {
            (Some(slot / 3), FINITE_KINDS[slot % 3].to_string())
        };
        Ok(Some(Divergence {
            step: step as u64,
            layer,
            tensor,
            last_good_checkpoint: self
                .last_checkpoint
                .as_ref()
                .filter(|(_, s)| *s <= step as u64)
                .map(|(p, _)| p.clone()),
        }))
    }

    /// The logged steps collected so far.
    pub fn logs(&self) -> &[StepLog] {
        &self.logs
    }

    /// Readbacks made by this trainer.
    pub fn readbacks(&self) -> u64 {
        self.readbacks
    }
}

/// The global gradient norm from the per-tensor sums of squares in slots
/// `(first, count)`, summed in slot order as `clip_scale` sums them.
fn global_norm(norms: &[f32], (first, count): (u32, u32)) -> f32 {
    let slots = &norms[first as usize..(first + count) as usize];
    slots.iter().fold(0.0f32, |total, v| total + v).sqrt()
}
