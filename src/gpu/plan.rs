//! A training step's plan, made once and replayed: the step is recorded
//! the usual way the first time (pipelines looked up, parameter blocks and
//! bind groups made) while [`StepPlan::capture`] keeps every dispatch and
//! copy it records, with the pipeline, bind group and buffers each one
//! uses; every later step of the same kind records the kept operations
//! into a new encoder ([`StepPlan::record`]), looking nothing up and making
//! nothing. A step's per-step values (learning rate, step number, batch
//! offset) live in a buffer the host writes before each step, so the same
//! operations serve every step.
//!
//! While a step is first recorded, a bind-group cache the trainer installs
//! on its thread lets a pass recorded again with the same kernel and the
//! same buffer ranges reuse the bind group made before (the logged and the
//! unlogged plans share most of theirs); [`Gpu::objects_created`](super::Gpu::objects_created)
//! counts the ones made. The cache holds its bind groups (and so their
//! buffers) until its owner drops it; it is bounded, and cleared when full,
//! for callers whose bindings keep changing.

use std::cell::RefCell;
use std::collections::HashMap;

use super::context::Gpu;

/// One operation of a [`StepPlan`], with everything it uses.
enum Op {
    /// A compute pass.
    Dispatch {
        label: String,
        pipeline: wgpu::ComputePipeline,
        bind_group: wgpu::BindGroup,
        groups: (u32, u32, u32),
    },
    /// A buffer-to-buffer copy of `bytes`.
    Copy {
        from: wgpu::Buffer,
        from_at: u64,
        to: wgpu::Buffer,
        to_at: u64,
        bytes: u64,
    },
    /// A buffer-to-texture copy.
    ToTexture {
        from: wgpu::Buffer,
        layout: wgpu::TexelCopyBufferLayout,
        texture: wgpu::Texture,
        origin: wgpu::Origin3d,
        extent: wgpu::Extent3d,
    },
    /// Zeroing a buffer's range (`None`: to its end).
    Clear {
        buffer: wgpu::Buffer,
        offset: u64,
        bytes: Option<u64>,
    },
}

/// The operations of one kind of training step (unlogged, or logged into
/// one staging slot), recorded once and replayed every step of that kind;
/// see the module's doc. Its `Debug` output lists the step: each dispatch
/// by kernel and grid, each copy by size.
pub struct StepPlan {
    ops: Vec<Op>,
}

thread_local! {
    /// The operations recorded on this thread while a plan is captured.
    static CAPTURE: RefCell<Option<Vec<Op>>> = const { RefCell::new(None) };
}

impl StepPlan {
    /// Runs `f` (which records one step into an encoder of its own) and
    /// returns its result with the plan of what it recorded.
    pub(crate) fn capture<T>(f: impl FnOnce() -> T) -> (T, StepPlan) {
        let restore = Restore::capture(Some(Vec::new()));
        let value = f();
        let ops = CAPTURE.with(|c| c.borrow_mut().take());
        drop(restore);
        (
            value,
            StepPlan {
                ops: ops.unwrap_or_default(),
            },
        )
    }

    /// Records the plan's operations into `encoder`, in order: each run of
    /// dispatches between copies in one compute pass (WebGPU orders the
    /// dispatches of a pass as it orders passes: each sees what the one
    /// before wrote), one pass each while passes are profiled.
    pub(crate) fn record(&self, gpu: &Gpu, encoder: &mut wgpu::CommandEncoder) {
        let profiling = profiling();
        let mut ops = self.ops.as_slice();
        while let Some(op) = ops.first() {
            let run = ops
                .iter()
                .take_while(|op| matches!(op, Op::Dispatch { .. }))
                .count();
            if run > 0 && !profiling {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("a training step"),
                    timestamp_writes: None,
                });
                for op in &ops[..run] {
                    if let Op::Dispatch {
                        pipeline,
                        bind_group,
                        groups,
                        ..
                    } = op
                    {
                        encode(&mut pass, pipeline, bind_group, *groups);
                    }
                }
                super::context::DISPATCHES.with(|d| d.set(d.get() + run as u64));
                ops = &ops[run..];
                continue;
            }
            match op {
                Op::Dispatch {
                    label,
                    pipeline,
                    bind_group,
                    groups,
                } => dispatch(gpu, encoder, label, pipeline, bind_group, *groups),
                Op::Copy {
                    from,
                    from_at,
                    to,
                    to_at,
                    bytes,
                } => copy_buffer(encoder, (from, *from_at), (to, *to_at), *bytes),
                Op::ToTexture {
                    from,
                    layout,
                    texture,
                    origin,
                    extent,
                } => copy_to_texture(encoder, (from, *layout), (texture, *origin), *extent),
                Op::Clear {
                    buffer,
                    offset,
                    bytes,
                } => clear_buffer(encoder, buffer, *offset, *bytes),
            }
            ops = &ops[1..];
        }
    }

    /// The compute dispatches a replay records.
    pub fn dispatches(&self) -> usize {
        self.ops
            .iter()
            .filter(|op| matches!(op, Op::Dispatch { .. }))
            .count()
    }

    /// The copies and clears a replay records.
    pub fn copies(&self) -> usize {
        self.ops.len() - self.dispatches()
    }
}

impl std::fmt::Debug for StepPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "StepPlan: {} dispatches, {} copies",
            self.dispatches(),
            self.copies()
        )?;
        for (i, op) in self.ops.iter().enumerate() {
            write!(f, "{:>4}  ", i + 1)?;
            match op {
                Op::Dispatch { label, groups, .. } => writeln!(
                    f,
                    "dispatch {label} over {} x {} x {} workgroups",
                    groups.0, groups.1, groups.2
                )?,
                Op::Copy { bytes, .. } => writeln!(f, "copy {bytes} bytes, buffer to buffer")?,
                Op::ToTexture { extent, .. } => writeln!(
                    f,
                    "copy {} x {} texels, buffer to texture",
                    extent.width, extent.height
                )?,
                Op::Clear { bytes, .. } => match bytes {
                    Some(b) => writeln!(f, "clear {b} bytes")?,
                    None => writeln!(f, "clear a buffer")?,
                },
            }
        }
        Ok(())
    }
}

/// Whether the passes recorded on this thread are being profiled (see
/// [`Gpu::profile_passes`](super::Gpu::profile_passes)).
fn profiling() -> bool {
    #[cfg(not(target_arch = "wasm32"))]
    return super::context::PROFILE.with(|p| p.borrow().is_some());
    #[cfg(target_arch = "wasm32")]
    false
}

/// Runs `f` with no plan being captured and no bind-group cache installed
/// on this thread, both restored after: for work recorded on encoders of
/// its own in the middle of a step's first recording (the autotuner's
/// measurements), which the plan must not replay.
pub(crate) fn outside_plan<T>(f: impl FnOnce() -> T) -> T {
    let _capture = Restore::capture(None);
    let _cache = Restore::cache(None);
    f()
}

/// Whether a plan is being captured on this thread.
#[cfg(test)]
pub(crate) fn capturing() -> bool {
    CAPTURE.with(|c| c.borrow().is_some())
}

/// What a thread-local held before a scope set it, put back when the scope
/// ends, by a panic too (so that a panic caught mid-recording leaves no
/// capture or cache installed behind it).
enum Restore {
    Capture(Option<Vec<Op>>),
    Cache(Option<BindGroupCache>),
}

impl Restore {
    /// Sets the capture to `now`, keeping what it was.
    fn capture(now: Option<Vec<Op>>) -> Restore {
        Restore::Capture(CAPTURE.with(|c| std::mem::replace(&mut *c.borrow_mut(), now)))
    }

    /// Sets the installed bind-group cache to `now`, keeping what it was.
    fn cache(now: Option<BindGroupCache>) -> Restore {
        Restore::Cache(INSTALLED.with(|c| std::mem::replace(&mut *c.borrow_mut(), now)))
    }
}

impl Drop for Restore {
    fn drop(&mut self) {
        match self {
            Restore::Capture(previous) => {
                let previous = previous.take();
                CAPTURE.with(|c| *c.borrow_mut() = previous);
            }
            Restore::Cache(previous) => {
                let previous = previous.take();
                INSTALLED.with(|c| *c.borrow_mut() = previous);
            }
        }
    }
}

/// Keeps `op` in the plan being captured on this thread, if any.
fn keep(op: impl FnOnce() -> Op) {
    CAPTURE.with(|c| {
        if let Some(ops) = c.borrow_mut().as_mut() {
            ops.push(op());
        }
    });
}

/// Records one compute pass of `pipeline` over `groups` with `bind_group`
/// (kept in a plan being captured): counted by
/// [`Gpu::dispatch_count`](super::Gpu::dispatch_count), and while passes
/// are profiled submitted and timed on its own instead.
pub(crate) fn dispatch(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    label: &str,
    pipeline: &wgpu::ComputePipeline,
    bind_group: &wgpu::BindGroup,
    groups: (u32, u32, u32),
) {
    keep(|| Op::Dispatch {
        label: label.to_string(),
        pipeline: pipeline.clone(),
        bind_group: bind_group.clone(),
        groups,
    });
    super::context::DISPATCHES.with(|d| d.set(d.get() + 1));
    // The browser has no profiling: `gpu` submits only the passes profiled.
    #[cfg(target_arch = "wasm32")]
    let _ = gpu;
    #[cfg(not(target_arch = "wasm32"))]
    if profiling() {
        // Profiling: this pass alone in a submission, timed to completion.
        let device = gpu.device();
        let mut own = device.create_command_encoder(&Default::default());
        encode(
            &mut own.begin_compute_pass(&Default::default()),
            pipeline,
            bind_group,
            groups,
        );
        let start = web_time::Instant::now();
        gpu.queue().submit([own.finish()]);
        let _ = device.poll(wgpu::PollType::Wait {
            submission_index: None,
            timeout: None,
        });
        let seconds = start.elapsed().as_secs_f64();
        super::context::PROFILE.with(|p| {
            if let Some(v) = p.borrow_mut().as_mut() {
                v.push((label.to_string(), seconds));
            }
        });
        return;
    }
    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
        label: Some(label),
        timestamp_writes: None,
    });
    encode(&mut pass, pipeline, bind_group, groups);
}

/// One dispatch of `pipeline` over `groups` with `bind_group`, in `pass`.
fn encode(
    pass: &mut wgpu::ComputePass,
    pipeline: &wgpu::ComputePipeline,
    bind_group: &wgpu::BindGroup,
    groups: (u32, u32, u32),
) {
    pass.set_pipeline(pipeline);
    pass.set_bind_group(0, bind_group, &[]);
    pass.dispatch_workgroups(groups.0, groups.1, groups.2);
}

/// Records a buffer-to-buffer copy (kept in a plan being captured).
pub(crate) fn copy_buffer(
    encoder: &mut wgpu::CommandEncoder,
    (from, from_at): (&wgpu::Buffer, u64),
    (to, to_at): (&wgpu::Buffer, u64),
    bytes: u64,
) {
    keep(|| Op::Copy {
        from: from.clone(),
        from_at,
        to: to.clone(),
        to_at,
        bytes,
    });
    encoder.copy_buffer_to_buffer(from, from_at, to, to_at, bytes);
}

/// Records a copy from `from` laid out as `layout` into `texture` (mip 0)
/// at `origin` (kept in a plan being captured).
pub(crate) fn copy_to_texture(
    encoder: &mut wgpu::CommandEncoder,
    (from, layout): (&wgpu::Buffer, wgpu::TexelCopyBufferLayout),
    (texture, origin): (&wgpu::Texture, wgpu::Origin3d),
    extent: wgpu::Extent3d,
) {
    keep(|| Op::ToTexture {
        from: from.clone(),
        layout,
        texture: texture.clone(),
        origin,
        extent,
    });
    encoder.copy_buffer_to_texture(
        wgpu::TexelCopyBufferInfo {
            buffer: from,
            layout,
        },
        wgpu::TexelCopyTextureInfo {
            texture,
            mip_level: 0,
            origin,
            aspect: wgpu::TextureAspect::All,
        },
        extent,
    );
}

/// Records zeroing `bytes` of `buffer` from `offset` (`None`: to its end;
/// kept in a plan being captured).
pub(crate) fn clear_buffer(
    encoder: &mut wgpu::CommandEncoder,
    buffer: &wgpu::Buffer,
    offset: u64,
    bytes: Option<u64>,
) {
    keep(|| Op::Clear {
        buffer: buffer.clone(),
        offset,
        bytes,
    });
    encoder.clear_buffer(buffer, offset, bytes);
}

/// The most bind groups a cache keeps before it starts over.
const MAX_ENTRIES: usize = 4096;

/// What a bind group binds, as a key: the pipeline and each entry's
/// resource (a buffer range or a texture view).
#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    pipeline: wgpu::ComputePipeline,
    entries: Vec<(u32, Resource)>,
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum Resource {
    Buffer(wgpu::Buffer, u64, Option<u64>),
    View(wgpu::TextureView),
}

/// A cache of bind groups by what they bind (see the module's doc).
#[derive(Default)]
pub(crate) struct BindGroupCache {
    groups: HashMap<Key, wgpu::BindGroup>,
    /// Bind groups looked up and found, for the `Debug` summary.
    hits: u64,
}

impl std::fmt::Debug for BindGroupCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BindGroupCache")
            .field("bind_groups", &self.groups.len())
            .field("reused", &self.hits)
            .finish()
    }
}

thread_local! {
    /// The cache installed on this thread, if any.
    static INSTALLED: RefCell<Option<BindGroupCache>> = const { RefCell::new(None) };
}

impl BindGroupCache {
    /// Runs `f` with this cache installed on the calling thread: every pass
    /// `f` records looks its bind group up here first.
    /// A panic in `f` drops the cache (its bind groups are made again).
    pub(crate) fn install<T>(&mut self, f: impl FnOnce() -> T) -> T {
        let restore = Restore::cache(Some(std::mem::take(self)));
        let value = f();
        *self = INSTALLED
            .with(|c| c.borrow_mut().take())
            .unwrap_or_default();
        drop(restore);
        value
    }
}

/// The key of a bind group of `pipeline` with `entries`, or `None` where
/// an entry binds something the cache does not key (samplers, arrays).
fn key_of(pipeline: &wgpu::ComputePipeline, entries: &[wgpu::BindGroupEntry]) -> Option<Key> {
    let entries = entries
        .iter()
        .map(|e| {
            let resource = match &e.resource {
                wgpu::BindingResource::Buffer(b) => {
                    Resource::Buffer(b.buffer.clone(), b.offset, b.size.map(|s| s.get()))
                }
                wgpu::BindingResource::TextureView(v) => Resource::View((*v).clone()),
                _ => return None,
            };
            Some((e.binding, resource))
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Key {
        pipeline: pipeline.clone(),
        entries,
    })
}

/// The bind group of `pipeline` with `entries`: the installed cache's where
/// it has one, else made by `make` (and kept, where a cache is installed).
/// Returns whether it was made.
pub(crate) fn bind_group(
    pipeline: &wgpu::ComputePipeline,
    entries: &[wgpu::BindGroupEntry],
    make: impl FnOnce() -> wgpu::BindGroup,
) -> (wgpu::BindGroup, bool) {
    let installed = INSTALLED.with(|c| c.borrow().is_some());
    let key = if installed {
        key_of(pipeline, entries)
    } else {
        None
    };
    let Some(key) = key else {
        return (make(), true);
    };
    if let Some(group) = INSTALLED.with(|c| {
        let mut c = c.borrow_mut();
        let cache = c.as_mut()?;
        let group = cache.groups.get(&key).cloned();
        if group.is_some() {
            cache.hits += 1;
        }
        group
    }) {
        return (group, false);
    }
    let group = make();
    INSTALLED.with(|c| {
        if let Some(cache) = c.borrow_mut().as_mut() {
            if cache.groups.len() >= MAX_ENTRIES {
                cache.groups.clear();
            }
            cache.groups.insert(key, group.clone());
        }
    });
    (group, true)
}
