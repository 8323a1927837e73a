//! Recording the passes of a step: gathering the batch, the forward, the loss, regularisation, norms, finite checks, the optimizer and the diagnostics.

use super::*;

impl Trainer {
    /// Records gathering `rows` rows of a resident split into the batch
    /// buffers, in the order `perm` gives from `offset` on; `None` takes
    /// the offset the step state holds (a training step's), so the
    /// parameter block is the same every step.
    pub(super) fn record_gather(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        (x, y): (&GpuTensor, &GpuTensor),
        perm: &wgpu::Buffer,
        offset: Option<usize>,
        rows: usize,
    ) -> Result<(), Error> {
        let gpu = &self.gpu;
        let pipeline = gpu.pipeline(
            "gather",
            "gather",
            || shader::GATHER_WGSL.to_string(),
            false,
        )?;
        let cols = x.cols();
        // Evaluation's chunk offsets recur every epoch: shared blocks too.
        let params = gpu.params(&U4 {
            a: rows as u32,
            b: cols as u32,
            c: offset.unwrap_or(0) as u32,
            d: offset.is_none() as u32,
        })?;
        gpu.scoped("recording gather", || {
            record_pass(
                gpu,
                encoder,
                "gather",
                &pipeline,
                &[
                    (0, &params),
                    (1, x),
                    (2, y),
                    (3, perm),
                    (4, &self.x_batch),
                    (5, &self.y_batch),
                    (6, &self.step_state),
                ],
                ((cols as u32).div_ceil(64), rows as u32, 1),
            )
        })
    }

    /// Records the forward pass of `rows` batch rows (training buffers),
    /// keeping z for every layer when `keep_all_z`; dropout only when `training`.
    pub(super) fn record_forward(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        rows: usize,
        keep_all_z: bool,
        training: bool,
    ) -> Result<(), Error> {
        self.record_forward_from(encoder, 0, rows, keep_all_z, training)
    }

    /// [`Trainer::record_forward`] from layer `from` on, its input being
    /// what layer `from - 1` left for it (the batch for layer 0).
    pub(super) fn record_forward_from(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        from: usize,
        rows: usize,
        keep_all_z: bool,
        training: bool,
    ) -> Result<(), Error> {
        let mut input = match from {
            0 => self.x_batch.prefix_rows(rows)?,
            l => self.layer_output(l - 1).prefix_rows(rows)?,
        };
        for (l, layer) in self.layers.iter().enumerate().skip(from) {
            let keep = keep_all_z || layer.act.saved() == Saved::PreActivation;
            let y = layer.y.prefix_rows(rows)?;
            let z = layer.z.prefix_rows(rows)?;
            let bufs = match &layer.norm {
                Some(st) => Some(st.buffers.prefix_rows(rows)?),
                None => None,
            };
            let y = self.model.record_layer_forward(
                encoder,
                l,
                &input,
                (&y, &z, keep),
                bufs.as_ref(),
                training,
            )?;
            let dropout = layer.dropout && training;
            input = match &layer.out {
                Some(out) if dropout || layer.residual => {
                    let out = out.prefix_rows(rows)?;
                    self.record_regularize(
                        encoder,
                        "regularize_forward",
                        layer,
                        dropout,
                        &[(1, &y), (2, &input), (3, &out)],
                        y.len(),
                    )?;
                    out
                }
                _ => y,
            };
        }
        Ok(())
    }

    /// Records one of the dropout/residual kernels over `len` elements.
    pub(super) fn record_regularize(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        entry: &str,
        layer: &LayerState,
        dropout: bool,
        buffers: &[(u32, &dyn crate::gpu::tensor::Bind)],
        len: usize,
    ) -> Result<(), Error> {
        let gpu = &self.gpu;
        let mc = &self.model.config;
        let pipeline = gpu.pipeline(
            "regularize",
            entry,
            || shader::REGULARIZE_WGSL.to_string(),
            false,
        )?;
        let (x, y, row_stride) = grid_1d(gpu, len as u64, 256)?;
        let (scale, alpha_prime, a, b) = mc.dropout_constants();
        let params = gpu.params(&RegParams {
            len: len as u32,
            row_stride,
            seed: layer.mask_seed,
            pad0: 0,
            drop_threshold: if dropout {
                mc.drop_threshold().max(1)
            } else {
                0
            },
            residual: layer.residual as u32,
            alpha: mc.alpha_dropout as u32,
            pad: 0,
            scale: scale as f32,
            alpha_prime: alpha_prime as f32,
            affine_a: a as f32,
            affine_b: b as f32,
        })?;
        // The dropout masks hash the step number from the step state.
        let mut bindings: Vec<(u32, &dyn crate::gpu::tensor::Bind)> = vec![(0, &params)];
        if entry != "residual_backward" {
            bindings.push((17, &self.step_state));
        }
        bindings.extend_from_slice(buffers);
        gpu.scoped("recording dropout or a residual", || {
            record_pass(gpu, encoder, entry, &pipeline, &bindings, (x, y, 1))
        })
    }

    pub(super) fn record_loss(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        rows: usize,
        totals: &GpuTensor,
    ) -> Result<(), Error> {
        let gpu = &self.gpu;
        let head = self.model.config.head;
        let classes = self.model.config.output;
        let last = self.layers.last().expect("at least one layer");
        let loss_src = shader::loss_source;
        let fwd = gpu.pipeline("loss", "loss_forward_backward", loss_src, false)?;
        let params = gpu.params(&LossParams {
            rows: rows as u32,
            classes: classes as u32,
            kind: head.kind(),
            grad_scale: head.grad_scale(rows, classes),
        })?;
        let reduce = gpu.pipeline("loss", "loss_reduce", loss_src, false)?;
        let rparams = gpu.params(&U4 {
            a: rows as u32,
            b: 0,
            c: 0,
            d: 0,
        })?;
        gpu.scoped("recording the loss", || {
            record_pass(
                gpu,
                encoder,
                "loss",
                &fwd,
                &[
                    (0, &params),
                    (1, &last.y),
                    (2, &self.y_batch),
                    (3, &last.dy),
                    (4, &self.row_stats),
                ],
                ((rows as u32).div_ceil(64), 1, 1),
            );
            record_pass(
                gpu,
                encoder,
                "loss_reduce",
                &reduce,
                &[
                    (8, &rparams),
                    (5, &self.row_stats),
                    (6, &self.step_stats),
                    (7, &totals),
                ],
                (1, 1, 1),
            );
        })
    }

    /// Records sums of squares of the arena segments in `segments` into
    /// their slots of `norms`: each chunk summed by one invocation
    /// (`sumsq_chunks`), then each segment's chunk sums added in order by
    /// one invocation (`sumsq_segments`).
    pub(super) fn record_norms(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        segments: &NormSegments,
    ) -> Result<(), Error> {
        let gpu = &self.gpu;
        let src = || shader::STATS_WGSL.to_string();
        let chunks = gpu.pipeline("stats", "sumsq_chunks", src, false)?;
        let sums = gpu.pipeline("stats", "sumsq_segments", src, false)?;
        gpu.scoped("recording norms", || {
            record_pass(
                gpu,
                encoder,
                "sumsq_chunks",
                &chunks,
                &[
                    (7, &segments.chunks),
                    (8, &segments.chunk_sums),
                    (11, &self.grads),
                    (12, self.model.arena()),
                    (13, &self.prev_params),
                ],
                (segments.chunk_count.div_ceil(64), 1, 1),
            );
            record_pass(
                gpu,
                encoder,
                "sumsq_segments",
                &sums,
                &[
                    (3, &self.norms),
                    (8, &segments.chunk_sums),
                    (10, &segments.segments),
                ],
                (segments.count.div_ceil(64), 1, 1),
            );
        })
    }

    /// Records the step's finite check of every hidden output, the logits
    /// and the losses (`shaders/finite.wgsl`), the step number read from the
    /// step state; the optimizer's dispatch checks both arenas.
    pub(super) fn record_check_finite(
        &self,
        encoder: &mut wgpu::CommandEncoder,
    ) -> Result<(), Error> {
        let gpu = &self.gpu;
        let pipeline = gpu.pipeline(
            "finite",
            "check_all_finite",
            || shader::FINITE_WGSL.to_string(),
            false,
        )?;
        let logits = &self.layers[self.layers.len() - 1].y;
        let (x, y, _) = grid_1d(gpu, self.finite.count as u64, 1)?;
        gpu.scoped("recording the finite check", || {
            record_pass(
                gpu,
                encoder,
                "check_all_finite",
                &pipeline,
                &[
                    (0, &self.finite.chunks),
                    (1, &self.acts[0]),
                    (2, &self.acts[1]),
                    (3, logits),
                    (6, &self.row_stats),
                    (7, &self.step_state),
                    (9, &self.first_bad),
                ],
                (x, y, 1),
            )
        })
    }

    /// The optimizer's entry point in `shaders/optimizer.wgsl` and its
    /// settings (the chunk count left to the dispatch).
    pub(super) fn optimizer_settings(&self) -> (&'static str, OptimParams) {
        match self.config.optimizer {
            Optimizer::Sgd {
                momentum,
                nesterov,
                weight_decay,
            } => (
                "sgd",
                OptimParams {
                    nesterov: nesterov as u32,
                    momentum,
                    weight_decay,
                    ..bytemuck::Zeroable::zeroed()
                },
            ),
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
            } => (
                "adam",
                OptimParams {
                    decoupled: matches!(self.config.optimizer, Optimizer::AdamW { .. }) as u32,
                    beta1,
                    beta2,
                    eps,
                    weight_decay,
                    ..bytemuck::Zeroable::zeroed()
                },
            ),
            Optimizer::RmsProp {
                alpha,
                eps,
                momentum,
                weight_decay,
            } => (
                "rmsprop",
                OptimParams {
                    alpha,
                    eps,
                    momentum,
                    weight_decay,
                    ..bytemuck::Zeroable::zeroed()
                },
            ),
        }
    }

    pub(super) fn record_optimizer(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        param: &GpuTensor,
        grad: &GpuTensor,
        state: &(GpuTensor, GpuTensor),
    ) -> Result<(), Error> {
        let gpu = &self.gpu;
        let (entry, mut p) = self.optimizer_settings();
        // One workgroup per chunk of the arena (shaders/optimizer.wgsl).
        let (x, y, _) = grid_1d(gpu, self.finite.arena_count as u64, 1)?;
        p.chunks = self.finite.arena_count;
        let pipeline = gpu.pipeline("optimizer", entry, shader::optimizer_source, false)?;
        let params = gpu.params(&p)?;
        let mut bindings: Vec<(u32, &dyn crate::gpu::tensor::Bind)> = vec![
            (0, &params),
            (1, &self.step_state),
            (2, &param),
            (3, &grad),
            (4, &state.0),
            (6, &self.finite.arena_chunks),
            (7, &self.first_bad),
        ];
        if entry != "sgd" {
            bindings.push((5, &state.1));
        }
        gpu.scoped("recording an optimizer step", || {
            record_pass(gpu, encoder, entry, &pipeline, &bindings, (x, y, 1))
        })
    }

    pub(super) fn record_diagnostics(
        &self,
        encoder: &mut wgpu::CommandEncoder,
    ) -> Result<(), Error> {
        let gpu = &self.gpu;
        gpu.scoped("clearing histograms", || {
            crate::gpu::plan::clear_buffer(encoder, &self.hist, 0, None)
        })?;
        for group in &self.diag {
            let src = || shader::assemble(shader::DIAGNOSTICS_WGSL, Some(group.act));
            let key = format!("diagnostics[{}]", group.act);
            let columns = gpu.pipeline(&key, "column_stats", src, false)?;
            let summarize = gpu.pipeline(&key, "summarize", src, false)?;
            gpu.scoped("recording diagnostics", || {
                record_pass(
                    gpu,
                    encoder,
                    "column_stats",
                    &columns,
                    &[
                        (0, &group.table),
                        (1, &group.z),
                        (2, &group.y[0]),
                        (7, &group.y[1]),
                        (3, &self.columns),
                        (4, &self.hist),
                    ],
                    (group.widest.div_ceil(64), group.layers, 1),
                );
                record_pass(
                    gpu,
                    encoder,
                    "summarize",
                    &summarize,
                    &[(0, &group.table), (5, &self.columns), (6, &self.summary)],
                    (group.layers, 1, 1),
                );
            })?;
        }
        Ok(())
    }
}
