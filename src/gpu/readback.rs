//! Waiting for the GPU without blocking: buffer maps and finished work
//! complete through a channel, so async callers await them and blocking
//! callers wrap the same futures with `pollster`.
//!
//! wgpu runs map callbacks while the device is polled. In the browser the
//! event loop does that; natively a helper thread blocks in
//! `Device::poll` until the awaited submission finishes (and reports a
//! timeout or a lost device through the same channel), so the awaiting
//! task never spins and never blocks its executor.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures_channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};
use futures_core::Stream;

use super::context::Gpu;
#[cfg(not(target_arch = "wasm32"))]
use super::context::TIMEOUT_ENV;
use crate::error::Error;

/// What a completion reports: `Ok` when done, otherwise why not.
type Outcome = Result<(), String>;

/// A map request on a buffer: set up by [`Gpu::map_read`], awaited with
/// [`Mapping::wait`] or checked without waiting with [`Mapping::is_ready`].
pub(crate) struct Mapping {
    ready: Arc<AtomicBool>,
    tx: UnboundedSender<Outcome>,
    rx: UnboundedReceiver<Outcome>,
}

impl Mapping {
    /// Whether the buffer is mapped (the callback has run and succeeded).
    pub(crate) fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Resolves once the buffer is mapped, driving the device until
    /// `index` (or all submitted work) is done.
    pub(crate) async fn wait(
        &mut self,
        gpu: &Gpu,
        context: &str,
        index: Option<wgpu::SubmissionIndex>,
    ) -> Result<(), Error> {
        if !self.is_ready() {
            gpu.drive(index, self.tx.clone());
        }
        let outcome = next(&mut self.rx).await;
        outcome.map_err(|message| Error::GpuWait {
            context: context.to_string(),
            message,
        })?;
        // In the browser, errors in the work just finished arrive through
        // the uncaptured-error handler.
        #[cfg(target_arch = "wasm32")]
        gpu.check_uncaptured(context)?;
        gpu.check_lost()
    }
}

/// The next outcome from `rx` (a dropped channel reads as an error).
async fn next(rx: &mut UnboundedReceiver<Outcome>) -> Outcome {
    std::future::poll_fn(|cx| Pin::new(&mut *rx).poll_next(cx))
        .await
        .unwrap_or_else(|| Err("the GPU dropped the request before completing it".into()))
}

/// Polls `device` until `index` (or all submitted work) has finished,
/// reporting a timeout or a lost device through `tx`: the body of the
/// native helper threads.
#[cfg(not(target_arch = "wasm32"))]
fn poll_until_done(
    device: &wgpu::Device,
    index: Option<wgpu::SubmissionIndex>,
    timeout: std::time::Duration,
    tx: &UnboundedSender<Outcome>,
) {
    if let Err(e) = device.poll(wgpu::PollType::Wait {
        submission_index: index,
        timeout: Some(timeout),
    }) {
        let _ = tx.unbounded_send(Err(format!(
            "{e} (waited up to {} s; set {TIMEOUT_ENV} to wait longer)",
            timeout.as_secs()
        )));
    }
}

impl Gpu {
    /// Asks for `buffer` (whole) to be mapped for reading once the work
    /// submitted so far is done.
    pub(crate) fn map_read(&self, buffer: &wgpu::Buffer) -> Mapping {
        let (tx, rx) = unbounded();
        let ready = Arc::new(AtomicBool::new(false));
        let (flag, sender) = (ready.clone(), tx.clone());
        buffer.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            if r.is_ok() {
                flag.store(true, Ordering::Release);
            }
            let _ = sender.unbounded_send(r.map_err(|e| e.to_string()));
        });
        Mapping { ready, tx, rx }
    }

    /// Makes sure callbacks for `index` (or all submitted work) will run:
    /// natively, a helper thread polls the device until the work is done
    /// and reports a timeout through `tx`; in the browser the event loop
    /// runs them.
    fn drive(&self, index: Option<wgpu::SubmissionIndex>, tx: UnboundedSender<Outcome>) {
        #[cfg(not(target_arch = "wasm32"))]
        {
            let device = self.inner.device.clone();
            let timeout = self.inner.timeout;
            let thread_tx = tx.clone();
            let spawned = std::thread::Builder::new()
                .name("fusedmlp-poll".into())
                .spawn(move || poll_until_done(&device, index, timeout, &thread_tx));
            if let Err(e) = spawned {
                // No thread: poll here instead (blocking, but correct).
                log::warn!("could not start a polling thread ({e}); polling on the caller's");
                let polled = self.inner.device.poll(wgpu::PollType::Wait {
                    submission_index: None,
                    timeout: Some(self.inner.timeout),
                });
                if let Err(e) = polled {
                    let _ = tx.unbounded_send(Err(e.to_string()));
                }
            }
        }
        #[cfg(target_arch = "wasm32")]
        {
            let _ = (index, tx);
        }
    }

    /// Resolves when all work submitted so far has finished, with the
    /// timeout of [`Gpu::new`] (`FUSEDMLP_GPU_TIMEOUT_SECS`).
    pub async fn wait_idle_async(&self) -> Result<(), Error> {
        self.wait_async("waiting for the GPU", None).await
    }

    /// Resolves when `index` (or all submitted work) has finished.
    pub(crate) async fn wait_async(
        &self,
        context: &str,
        index: Option<wgpu::SubmissionIndex>,
    ) -> Result<(), Error> {
        let (tx, mut rx) = unbounded();
        let sender = tx.clone();
        self.inner.queue.on_submitted_work_done(move || {
            let _ = sender.unbounded_send(Ok(()));
        });
        self.drive(index, tx);
        next(&mut rx).await.map_err(|message| Error::GpuWait {
            context: context.to_string(),
            message,
        })?;
        self.check_lost()
    }

    /// Blocks until `index` (or all work) has finished, with a timeout.
    pub(crate) fn wait(
        &self,
        context: &str,
        index: Option<wgpu::SubmissionIndex>,
    ) -> Result<(), Error> {
        pollster::block_on(self.wait_async(context, index))
    }

    /// Copies `len` floats starting at float `offset` of `buffer` back to the host.
    pub(crate) async fn read_f32_async(
        &self,
        buffer: &wgpu::Buffer,
        offset: u64,
        len: usize,
    ) -> Result<Vec<f32>, Error> {
        let bytes = self
            .read_bytes_async(buffer, offset * 4, (len * 4) as u64)
            .await?;
        // Not `cast_slice`: a byte vector's storage need not be aligned for
        // f32 (an empty one never is), and that cast panics.
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// Copies `size` bytes from `offset` of `buffer` back to the host.
    pub(crate) async fn read_bytes_async(
        &self,
        buffer: &wgpu::Buffer,
        offset: u64,
        size: u64,
    ) -> Result<Vec<u8>, Error> {
        if size == 0 {
            return Ok(Vec::new());
        }
        let device = &self.inner.device;
        // Copies must be multiples of 4 bytes.
        let padded = size.div_ceil(4) * 4;
        self.count_buffer();
        let staging = self.scoped("allocating a readback buffer", || {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("fusedmlp readback"),
                size: padded,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })?;
        let mut encoder = device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(buffer, offset, &staging, 0, padded);
        self.submit_and_map(encoder.finish(), &staging, "reading results back")
            .await?;
        self.count_readback();
        let view = staging
            .slice(..)
            .get_mapped_range()
            .map_err(|e| Error::GpuWait {
                context: "reading results back".into(),
                message: e.to_string(),
            })?;
        let out = view[..size as usize].to_vec();
        drop(view);
        staging.unmap();
        Ok(out)
    }

    /// Submits `commands` and maps `staging` (which they write) for reading
    /// once they are done. Natively the submission, the map and the wait
    /// all happen on a helper thread: some drivers (lavapipe) block a
    /// submission until the previous one has run, which would hold the
    /// awaiting task's executor for as long as the GPU is behind.
    async fn submit_and_map(
        &self,
        commands: wgpu::CommandBuffer,
        staging: &wgpu::Buffer,
        context: &str,
    ) -> Result<(), Error> {
        #[cfg(not(target_arch = "wasm32"))]
        {
            let (tx, mut rx) = unbounded();
            let (queue, device, buffer) = (
                self.inner.queue.clone(),
                self.inner.device.clone(),
                staging.clone(),
            );
            let timeout = self.inner.timeout;
            let thread_tx = tx.clone();
            let spawned = std::thread::Builder::new()
                .name("fusedmlp-readback".into())
                .spawn(move || {
                    let index = queue.submit([commands]);
                    let sender = thread_tx.clone();
                    buffer.slice(..).map_async(wgpu::MapMode::Read, move |r| {
                        let _ = sender.unbounded_send(r.map_err(|e| e.to_string()));
                    });
                    // The caller holds the buffer; a handle kept here past
                    // the callback would outlive the readback.
                    drop(buffer);
                    poll_until_done(&device, Some(index), timeout, &thread_tx);
                });
            if let Err(e) = spawned {
                return Err(Error::GpuWait {
                    context: context.to_string(),
                    message: format!("could not start a thread to wait on: {e}"),
                });
            }
            drop(tx);
            next(&mut rx).await.map_err(|message| Error::GpuWait {
                context: context.to_string(),
                message,
            })?;
            // Errors in a submission made on the helper thread arrive
            // through the device's uncaptured-error handler.
            self.check_uncaptured(context)?;
            self.check_lost()
        }
        #[cfg(target_arch = "wasm32")]
        {
            let index = self.submit(context, vec![commands])?;
            self.map_read(staging)
                .wait(self, context, Some(index))
                .await
        }
    }

    /// Copies `size` bytes from `offset` of `buffer` back to the host, blocking.
    pub(crate) fn read_bytes(
        &self,
        buffer: &wgpu::Buffer,
        offset: u64,
        size: u64,
    ) -> Result<Vec<u8>, Error> {
        pollster::block_on(self.read_bytes_async(buffer, offset, size))
    }

    /// Copies a tensor back to the host (one readback), without blocking.
    pub async fn download_async(&self, tensor: &super::GpuTensor) -> Result<Vec<f32>, Error> {
        let (buffer, offset) = super::tensor::Bind::raw(tensor);
        self.read_f32_async(buffer, offset / 4, tensor.len()).await
    }
}

impl super::GpuTensor {
    /// Copies this tensor back to the host (one readback), without
    /// blocking: the async twin of [`Gpu::download`].
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), fusedmlp::Error> {
    /// let gpu = fusedmlp::Gpu::new_async().await?;
    /// let t = gpu.upload(&[1.0, 2.0, 3.0], 1, 3)?;
    /// assert_eq!(t.read_async(&gpu).await?, [1.0, 2.0, 3.0]);
    /// # Ok(()) }
    /// ```
    pub async fn read_async(&self, gpu: &Gpu) -> Result<Vec<f32>, Error> {
        gpu.download_async(self).await
    }
}
