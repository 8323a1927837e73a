//! One optimizer step, recorded and submitted.

use super::*;
use crate::gpu::fused::SgdFold;
use crate::gpu::linear::{BackwardGemms, DzChain};

impl Trainer {
    /// Records and submits one optimizer step on the batch starting at
    /// `offset` of the current epoch's order. No readback.
    pub(super) async fn submit_step(&mut self, epoch: usize, offset: usize) -> Result<(), Error> {
        let gpu = self.gpu.clone();
        let log = self.step.is_multiple_of(self.config.log_every);
        let lr = self.config.schedule.rate(
            self.config.lr(),
            self.step,
            self.total_steps(),
            self.config.warmup_steps,
        );
        let t = (self.step + 1) as i32;
        let (bc1, bc2) = match self.config.optimizer {
            Optimizer::Adam { beta1, beta2, .. } | Optimizer::AdamW { beta1, beta2, .. } => (
                (1.0 - (beta1 as f64).powi(t)) as f32,
                (1.0 - (beta2 as f64).powi(t)) as f32,
            ),
            _ => (1.0, 1.0),
        };
        // A logged step's staging buffer, waited for before recording.
        let slot = if log {
            Some(self.free_log_slot().await?)
        } else {
            None
        };
        // The step's values in one write, the plan of this kind of step
        // replayed (recorded and kept the first time), and the submission:
        // under one error scope.
        let kind = (log, slot);
        let mut bind_groups = std::mem::take(&mut self.bind_groups);
        let recorded = gpu.scoped("a training step", || {
            gpu.queue().write_buffer(
                &self.step_state,
                0,
                bytemuck::cast_slice(&StepState::new(
                    lr,
                    bc1,
                    bc2,
                    self.step,
                    offset,
                    self.train_rows.saturating_sub(1),
                )),
            );
            let start = web_time::Instant::now();
            let (commands, plan) = match self.plans.iter().find(|(k, _)| *k == kind) {
                Some((_, plan)) => {
                    let mut encoder = gpu.device().create_command_encoder(&Default::default());
                    plan.record(&gpu, &mut encoder);
                    (encoder.finish(), None)
                }
                None => {
                    let (commands, plan) =
                        StepPlan::capture(|| bind_groups.install(|| self.record_step(log, slot)));
                    (commands?, Some(plan))
                }
            };
            let seconds = start.elapsed().as_secs_f64();
            gpu.queue().submit([commands]);
            Ok::<_, Error>((seconds, plan))
        });
        self.bind_groups = bind_groups;
        let (seconds, plan) = recorded??;
        self.last_record_seconds = seconds;
        if let Some(plan) = plan.filter(|_| self.replay) {
            self.plans.push((kind, plan));
        }
        if let Some(slot) = slot {
            let mapping = gpu.map_read(&self.log_slots[slot]);
            self.pending.push(PendingLog {
                slot,
                mapping,
                step: self.step,
                epoch,
                learning_rate: lr,
            });
        }
        self.step += 1;
        Ok(())
    }

    /// For each layer `l` of the layered backward (`first..until`), whether
    /// its dX GEMM leaves layer `l - 1`'s dz in place (the k-by-n path,
    /// `DzChain`), so that dX never goes through memory and layer `l - 1`
    /// makes no dz of its own: both layers run the k-by-n GEMMs, layer `l`
    /// has no residual connection (whose backward adds to `l - 1`'s dy),
    /// and layer `l - 1` has nothing between its linear part and its dy
    /// (no dropout, normalisation, learned slopes or residual connection).
    fn linked_backward(&self, first: usize, until: usize) -> Result<Vec<bool>, Error> {
        let b = self.config.batch_size;
        // Whether each layer's backward runs the k-by-n GEMMs (the first
        // has no dX).
        let k_by_n = (first..until)
            .map(|l| {
                let w = &self.model.layers[l].weight;
                let shape = crate::LinearShape::new(b, w.cols(), w.rows());
                self.gpu.backward_is_k_by_n(shape, l > 0)
            })
            .collect::<Result<Vec<bool>, Error>>()?;
        let mut linked = vec![false; self.layers.len() + 1];
        for (l, link) in linked.iter_mut().enumerate().take(until).skip(first + 1) {
            let (above, below) = (&self.layers[l], &self.layers[l - 1]);
            let plain_below =
                !below.dropout && !below.residual && below.norm.is_none() && below.slopes.is_none();
            *link = !above.residual && plain_below && k_by_n[l - first] && k_by_n[l - 1 - first];
        }
        Ok(linked)
    }

    /// Records one step's passes (the step state already written): the
    /// batch, the forward, the loss, the backward, clipping, the update,
    /// the checks (the update and the checks inside the gradient kernels
    /// where [`Trainer::folds_sgd`]) and, on logged steps, the diagnostics
    /// and their copy into log slot `slot`.
    fn record_step(&self, log: bool, slot: Option<usize>) -> Result<wgpu::CommandBuffer, Error> {
        let gpu = &self.gpu;
        let b = self.config.batch_size;
        let mut encoder = gpu.device().create_command_encoder(&Default::default());
        // Plain SGD folded into the kernels that make the gradients, with
        // the finite checks: no optimizer or check dispatch.
        let settings = if self.folds_sgd() {
            Some(gpu.params(&self.optimizer_settings().1)?)
        } else {
            None
        };
        let fold = settings.as_ref().map(|settings| SgdFold {
            arena: self.model.arena(),
            momentum: &self.state.0,
            step: &self.step_state,
            first_bad: &self.first_bad,
            settings,
            keep_grads: log,
        });
        if log && fold.is_some() {
            // The parameters before the update, for the weight and update
            // norms: the update starts in the output layer's kernel.
            self.record_save_params(&mut encoder)?;
        }
        // The fused stack runs the hidden layers where the net allows it;
        // on logged steps it also keeps every pre-activation for the
        // diagnostics. Where its forward gathers the batch, nothing else
        // does.
        let fused = self.fused.as_ref();
        if !fused.is_some_and(|f| f.bufs.gathers()) {
            self.record_gather(
                &mut encoder,
                (&self.train_x, &self.train_y),
                &self.perm,
                None,
                b,
            )?;
        }
        let first_layered = match fused {
            Some(f) => {
                self.record_fused_forward(&mut encoder, f, log)?;
                f.shape.layers
            }
            None => 0,
        };
        // The output layer: on the fused path one kernel runs its forward,
        // the loss and its backward; else a layered pass each.
        let layered_until = match &self.head {
            Some(params) if fused.is_some() => {
                self.record_head(&mut encoder, params, log, fold.as_ref())?;
                first_layered
            }
            _ => {
                self.record_forward_from(&mut encoder, first_layered, b, log, true)?;
                self.record_loss(&mut encoder, b, &self.train_totals)?;
                self.layers.len()
            }
        };
        // Backward, last layer first. Each layer's `dy` holds dL/d(its
        // output as the next layer sees it), except where the layer above
        // leaves its dz directly (`linked`).
        let linked = self.linked_backward(first_layered, layered_until)?;
        for l in (first_layered..layered_until).rev() {
            let layer = &self.layers[l];
            let params = &self.model.layers[l];
            let input = if l == 0 {
                &self.x_batch
            } else {
                self.layer_output(l - 1)
            };
            let saved = layer.saved();
            let dy = match &layer.d_dropped {
                Some(dd) if layer.dropout => {
                    self.record_regularize(
                        &mut encoder,
                        "dropout_backward",
                        layer,
                        true,
                        &[(4, &layer.dy), (5, &dd)],
                        layer.dy.len(),
                    )?;
                    dd
                }
                _ => &layer.dy,
            };
            let dx = if l == 0 {
                None
            } else {
                Some(&self.layers[l - 1].dy)
            };
            // LayerNorm: its backward gives dL/d(its input) and the scale and
            // shift gradients; before the activation, the linear part then
            // runs as identity.
            let (act, dy) = match (&layer.norm, self.model.norms[l].as_ref()) {
                (Some(st), Some((g, _))) => {
                    gpu.record_norm_backward(
                        &mut encoder,
                        layer.act,
                        st.before,
                        g,
                        dy,
                        &st.buffers,
                        (&st.dgamma, &st.dbeta),
                    )?;
                    let act = if st.before {
                        Activation::Identity
                    } else {
                        layer.act
                    };
                    (act, &st.buffers.d_in)
                }
                _ => (layer.act, dy),
            };
            // Learned PReLU: its backward gives dz and the slopes' gradient;
            // the linear part then runs as identity.
            let (act, dy) = match (&layer.slopes, self.model.slopes[l].as_ref()) {
                (Some(st), Some(slopes)) => {
                    gpu.record_prelu_backward(
                        &mut encoder,
                        slopes,
                        &layer.z,
                        dy,
                        &st.dz,
                        &st.units,
                        &st.grad,
                    )?;
                    (Activation::Identity, &st.dz)
                }
                _ => (act, dy),
            };
            gpu.record_linear_backward(
                &mut encoder,
                act,
                input,
                &params.weight,
                saved,
                dy,
                &layer.scratch,
                dx,
                &layer.dw,
                &layer.db,
                BackwardGemms::Auto,
                DzChain {
                    ready: linked.get(l + 1).copied().unwrap_or(false),
                    parity: (l % 2) as u8,
                    below: linked[l].then(|| {
                        let below = &self.layers[l - 1];
                        (below.act, below.saved())
                    }),
                },
            )?;
            if layer.residual {
                let prev = &self.layers[l - 1];
                self.record_regularize(
                    &mut encoder,
                    "residual_backward",
                    layer,
                    false,
                    &[(6, &layer.dy), (7, &prev.dy)],
                    layer.dy.len(),
                )?;
            }
        }
        if let Some(f) = fused {
            self.record_fused_backward(&mut encoder, f, fold.as_ref())?;
        }
        if self.config.clip_norm.is_some() {
            // The global norm: every gradient tensor's Σ g², summed in slot
            // order by clip_scale.
            self.record_norms(&mut encoder, &self.clip_norms)?;
            let pipeline = gpu.pipeline(
                "stats",
                "clip_scale",
                || shader::STATS_WGSL.to_string(),
                false,
            )?;
            let params = gpu.params(&ClipParams {
                first: self.slots.grads().0,
                count: self.slots.grads().1,
                out_slot: self.slots.global(),
                max_norm: self.config.clip_norm.unwrap_or(0.0),
            })?;
            gpu.scoped("recording clipping", || {
                record_pass(
                    gpu,
                    &mut encoder,
                    "clip_scale",
                    &pipeline,
                    &[(4, &params), (5, &self.norms), (6, &self.step_state)],
                    (1, 1, 1),
                )
            })?;
        }
        if fold.is_none() {
            if log {
                self.record_save_params(&mut encoder)?;
            }
            // Every tensor updated in one dispatch over the arenas.
            self.record_optimizer(&mut encoder, self.model.arena(), &self.grads, &self.state)?;
            // Divergence detection: where a NaN or infinity first appears.
            self.record_check_finite(&mut encoder)?;
        }
        if let Some(slot) = slot {
            // Every tensor's gradient norm, every weight's norm before the
            // update and every update's norm: one dispatch.
            self.record_norms(&mut encoder, &self.logged_norms)?;
            self.record_diagnostics(&mut encoder)?;
            self.record_log_copy(&mut encoder, &self.log_slots[slot])?;
        }
        Ok(encoder.finish())
    }

    /// Records the copy of the parameters before the update (one copy of
    /// the arena), for the weight and update norms of a logged step.
    fn record_save_params(&self, encoder: &mut wgpu::CommandEncoder) -> Result<(), Error> {
        let arena = self.model.arena();
        self.gpu.scoped("saving the parameters", || {
            arena.record_copy_to(encoder, 0, &self.prev_params, 0, arena.len())
        })
    }

    /// Copies step stats, norms, summaries and histograms into one staging buffer.
    pub(super) fn record_log_copy(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        staging: &wgpu::Buffer,
    ) -> Result<(), Error> {
        let n = self.layers.len();
        let sizes = [
            (self.step_stats.raw(), 8u64),
            (self.norms.raw(), (self.slots.count() * 4) as u64),
            (self.summary.raw(), (n * 16) as u64),
            ((&self.hist, 0), (n * (HIST_BINS + 2) * 4) as u64),
        ];
        debug_assert_eq!(
            sizes.iter().map(|s| s.1).sum::<u64>(),
            log_bytes(&self.slots, n)
        );
        let mut offset = 0;
        self.gpu.scoped("copying diagnostics", || {
            for ((buf, from), size) in sizes {
                crate::gpu::plan::copy_buffer(encoder, (buf, from), (staging, offset), size);
                offset += size;
            }
        })
    }
}
