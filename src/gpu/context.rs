//! The device context: one adapter and device per process, shared by every
//! caller, with every wgpu error turned into an [`Error`] value.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::Error;

/// Environment variable: a substring of the adapter name to use.
pub const ADAPTER_ENV: &str = "FUSEDMLP_ADAPTER";
/// Environment variable: seconds to wait for the GPU before giving up (default 600).
pub const TIMEOUT_ENV: &str = "FUSEDMLP_GPU_TIMEOUT_SECS";

/// A handle to the GPU: cheap to clone, `Send + Sync`, and shared. Every
/// [`Gpu::new`] in a process returns a handle to the same device, because
/// creating devices repeatedly leaks on some drivers (lavapipe among them).
///
/// ```no_run
/// use fusedmlp::{Activation, Gpu};
/// let gpu = Gpu::new()?;
/// println!("running on {}", gpu.adapter_info().name);
/// let y = gpu.activation_forward(Activation::Gelu, &[-1.0, 0.0, 1.0])?;
/// # Ok::<(), fusedmlp::Error>(())
/// ```
#[derive(Clone)]
pub struct Gpu {
    pub(crate) inner: Arc<GpuInner>,
}

pub(crate) struct GpuInner {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) info: wgpu::AdapterInfo,
    pub(crate) limits: wgpu::Limits,
    pub(crate) features: wgpu::Features,
    /// Compiled kernels by shader key, then entry point and trust: looked
    /// up by `&str` without formatting a key (a step looks up a pipeline
    /// for each of its passes).
    pipelines: Mutex<PipelineCache>,
    lost: Arc<Mutex<Option<String>>>,
    uncaptured: Arc<Mutex<Vec<String>>>,
    readbacks: AtomicU64,
    /// Kernel parameter blocks by content (see `Gpu::params`).
    pub(crate) param_cache: Mutex<super::cache::ParamCache>,
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    pub(crate) timeout: Duration,
    pub(crate) tuning: Mutex<super::cache::TuningState>,
    /// Whether `rgba32float` storage textures can be written and read back
    /// in compute shaders (the texture GEMM kinds).
    pub(crate) texture_operands: bool,
    /// Whether kernels may use WGSL's subgroup operations: natively the
    /// device's `SUBGROUP` feature; in the browser its `subgroups` feature,
    /// which wgpu 30's WebGPU backend neither requests nor reports, so the
    /// page asks for it (`web/app.js`) and the device is asked directly.
    pub(crate) shader_subgroups: bool,
    /// Textures the texture GEMM kinds pack their operands into, by
    /// (operand, width, height); reused by every GEMM of that size (each
    /// command buffer packs before it reads, and the queue runs command
    /// buffers in order).
    pub(crate) staging: Mutex<HashMap<(u8, u32, u32), wgpu::Texture>>,
}

type PipelineCache = HashMap<String, HashMap<(String, bool), Arc<wgpu::ComputePipeline>>>;

static SHARED: Mutex<Option<Gpu>> = Mutex::new(None);

thread_local! {
    /// Compute dispatches recorded on this thread (see [`Gpu::dispatch_count`]).
    pub(crate) static DISPATCHES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    /// Buffers and bind groups the host layer created on this thread (see
    /// [`Gpu::objects_created`]).
    pub(crate) static CREATED: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
    /// While profiling (see [`Gpu::profile_passes`]): each recorded pass's
    /// label and wall-clock seconds, the pass submitted and waited on alone.
    pub(crate) static PROFILE: std::cell::RefCell<Option<Vec<(String, f64)>>> =
        const { std::cell::RefCell::new(None) };
    /// Error scopes pushed by [`Gpu::scoped`] on this thread and not popped.
    #[cfg(not(target_arch = "wasm32"))]
    static SCOPE_DEPTH: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    /// Guarded calls that pushed and popped error scopes on this thread
    /// (see [`Gpu::error_scopes`]).
    static SCOPES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// The Vulkan loader complains on stderr when XDG_RUNTIME_DIR is unset;
/// harmless, so point it at a private temporary folder. Called under the
/// SHARED lock, before any device (and so any GPU thread) exists.
#[cfg(not(target_arch = "wasm32"))]
fn quiet_vulkan_loader() {
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        let dir = std::env::temp_dir().join("fusedmlp-runtime");
        if std::fs::create_dir_all(&dir).is_ok() {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
            }
            // SAFETY: set once before any GPU thread exists, under the SHARED lock.
            unsafe { std::env::set_var("XDG_RUNTIME_DIR", &dir) };
        }
    }
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu")
            .field("adapter", &self.inner.info.name)
            .field("backend", &self.inner.info.backend)
            .finish()
    }
}

fn device_type_rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

impl Gpu {
    /// Returns the process's shared GPU, creating it on first use (blocking).
    ///
    /// The best adapter is picked (discrete, then integrated, then virtual,
    /// then CPU); set `FUSEDMLP_ADAPTER` to a substring of an adapter's name
    /// to pick another. Every limit the adapter offers is requested, not
    /// wgpu's conservative defaults.
    pub fn new() -> Result<Gpu, Error> {
        pollster::block_on(Self::new_async())
    }

    /// [`Gpu::new`] without blocking: the adapter and device requests are
    /// awaited (the way a browser, or an async application, needs them).
    ///
    /// ```no_run
    /// # async fn f() -> Result<(), fusedmlp::Error> {
    /// let gpu = fusedmlp::Gpu::new_async().await?;
    /// println!("running on {}", gpu.describe());
    /// # Ok(()) }
    /// ```
    pub async fn new_async() -> Result<Gpu, Error> {
        {
            let shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(gpu) = shared.as_ref().filter(|g| g.is_alive()) {
                return Ok(gpu.clone());
            }
            #[cfg(not(target_arch = "wasm32"))]
            quiet_vulkan_loader();
        }
        let gpu = Self::create().await?;
        let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        // Two callers may have raced to create the device: keep the first.
        if let Some(first) = shared.as_ref().filter(|g| g.is_alive()) {
            return Ok(first.clone());
        }
        *shared = Some(gpu.clone());
        Ok(gpu)
    }

    /// Whether the device has not been lost.
    fn is_alive(&self) -> bool {
        self.inner.lost.lock().map(|l| l.is_none()).unwrap_or(false)
    }

    /// Whether the device has been lost (a driver reset, the GPU removed,
    /// or the device destroyed): every later call on this `Gpu` fails, and
    /// the next [`Gpu::new`] makes a new device. In the browser the loss is
    /// reported asynchronously, so a call that failed for it may return
    /// before this turns true.
    pub fn is_lost(&self) -> bool {
        !self.is_alive()
    }

    async fn create() -> Result<Gpu, Error> {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapters = instance.enumerate_adapters(wgpu::Backends::all()).await;
        let wanted = std::env::var(ADAPTER_ENV).ok().filter(|s| !s.is_empty());
        let names: Vec<String> = adapters
            .iter()
            .map(|a| {
                let i = a.get_info();
                format!("{} ({:?})", i.name, i.backend)
            })
            .collect();
        let mut candidates: Vec<wgpu::Adapter> = adapters
            .into_iter()
            .filter(|a| {
                let info = a.get_info();
                // Compute needs storage buffers in compute shaders: skip GL-only
                // downlevel adapters that lack them.
                let downlevel = a.get_downlevel_capabilities();
                downlevel
                    .flags
                    .contains(wgpu::DownlevelFlags::COMPUTE_SHADERS)
                    && wanted
                        .as_ref()
                        .is_none_or(|w| info.name.to_lowercase().contains(&w.to_lowercase()))
            })
            .collect();
        candidates.sort_by_key(|a| device_type_rank(a.get_info().device_type));
        let Some(adapter) = candidates.into_iter().next() else {
            let seen = if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            };
            let detail = match &wanted {
                Some(w) => format!(" matching {ADAPTER_ENV}='{w}' (adapters seen: {seen})"),
                None => format!(" (adapters seen: {seen})"),
            };
            return Err(Error::NoAdapter { detail });
        };
        let info = adapter.get_info();
        let limits = adapter.limits();
        let wanted_features = wgpu::Features::TIMESTAMP_QUERY
            | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS
            | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES
            | wgpu::Features::SUBGROUP;
        let features = adapter.features() & wanted_features;
        let rgba = adapter.get_texture_format_features(wgpu::TextureFormat::Rgba32Float);
        let texture_operands = rgba
            .allowed_usages
            .contains(wgpu::TextureUsages::STORAGE_BINDING)
            && rgba.flags.contains(
                wgpu::TextureFormatFeatureFlags::STORAGE_READ_ONLY
                    | wgpu::TextureFormatFeatureFlags::STORAGE_WRITE_ONLY,
            );
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("fusedmlp"),
                required_features: features,
                required_limits: limits.clone(),
                experimental_features: wgpu::ExperimentalFeatures::disabled(),
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            })
            .await
            .map_err(|e| Error::DeviceRequest {
                adapter: info.name.clone(),
                reason: e.to_string(),
            })?;
        let lost = Arc::new(Mutex::new(None));
        let lost_flag = lost.clone();
        device.set_device_lost_callback(move |reason, message| {
            if let Ok(mut l) = lost_flag.lock() {
                *l = Some(format!("{reason:?}: {message}"));
            }
        });
        // wgpu's default for an error outside any scope is to panic; keep it
        // instead, so the next scoped call reports it as an Error.
        let uncaptured = Arc::new(Mutex::new(Vec::new()));
        let sink = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            log::error!("uncaptured GPU error: {e}");
            if let Ok(mut v) = sink.lock() {
                v.push(e.to_string());
            }
        }));
        #[cfg(not(target_arch = "wasm32"))]
        let shader_subgroups = features.contains(wgpu::Features::SUBGROUP);
        #[cfg(target_arch = "wasm32")]
        let shader_subgroups = device
            .as_webgpu()
            .is_some_and(|d| d.features().has("subgroups"));
        let timeout = std::env::var(TIMEOUT_ENV)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(600);
        Ok(Gpu {
            inner: Arc::new(GpuInner {
                device,
                queue,
                info,
                limits,
                features,
                pipelines: Mutex::new(HashMap::new()),
                lost,
                uncaptured,
                readbacks: AtomicU64::new(0),
                param_cache: Mutex::new(Default::default()),
                timeout: Duration::from_secs(timeout),
                tuning: Mutex::new(Default::default()),
                texture_operands,
                shader_subgroups,
                staging: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The adapter in use: name, backend, driver.
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.inner.info
    }

    /// The limits the device was created with (the adapter's own).
    pub fn limits(&self) -> &wgpu::Limits {
        &self.inner.limits
    }

    /// The optional features enabled on the device.
    pub fn features(&self) -> wgpu::Features {
        self.inner.features
    }

    /// One line naming the adapter, its backend and driver.
    pub fn describe(&self) -> String {
        let i = &self.inner.info;
        let mut parts = vec![format!("{:?}", i.backend), format!("{:?}", i.device_type)];
        let driver = format!("{} {}", i.driver, i.driver_info);
        if !driver.trim().is_empty() {
            parts.push(format!("driver {}", driver.trim()));
        }
        // Browsers do not always name the adapter to the page.
        let name = if i.name.trim().is_empty() {
            "unnamed adapter"
        } else {
            i.name.trim()
        };
        format!("{name} ({})", parts.join(", "))
    }

    /// The raw wgpu device, for users who record their own work.
    pub fn device(&self) -> &wgpu::Device {
        &self.inner.device
    }

    /// The raw wgpu queue.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.inner.queue
    }

    /// How many GPU-to-host readbacks this process has made so far.
    pub fn readback_count(&self) -> u64 {
        self.inner.readbacks.load(Ordering::Relaxed)
    }

    /// Compute dispatches recorded so far on the calling thread (every
    /// kernel fusedmlp records goes through one place that counts): the
    /// figure the benchmarks report per step, counted, not estimated. Per
    /// thread, so other threads' work never shows in a difference.
    pub fn dispatch_count(&self) -> u64 {
        DISPATCHES.with(|d| d.get())
    }

    /// (buffers, bind groups) the host layer has created so far on the
    /// calling thread: tensors, parameter blocks, tables and readback
    /// buffers, and one bind group per recorded pass. A steady training
    /// step should create no buffer; `fusedmlp bench --train` reports both
    /// per step.
    pub fn objects_created(&self) -> (u64, u64) {
        CREATED.with(|c| c.get())
    }

    /// Runs `f` with every compute pass it records submitted on its own and
    /// waited on (not recorded into the caller's encoder), and returns `f`'s
    /// result with each pass's label and wall-clock seconds in order. For
    /// finding where a step's time goes: copies and clears the caller records
    /// run later than they would, so only for steps made of passes alone.
    #[cfg(all(feature = "cli", not(target_arch = "wasm32")))]
    pub(crate) fn profile_passes<T>(
        &self,
        f: impl FnOnce() -> Result<T, Error>,
    ) -> Result<Vec<(String, f64)>, Error> {
        PROFILE.with(|p| *p.borrow_mut() = Some(Vec::new()));
        let result = f();
        let passes = PROFILE.with(|p| p.borrow_mut().take()).unwrap_or_default();
        result.map(|_| passes)
    }

    /// Guarded calls the host layer has made on the calling thread, each
    /// pushing validation, out-of-memory and internal error scopes and
    /// waiting for them (natively; the browser reports errors without
    /// scopes). A training step makes one.
    pub fn error_scopes(&self) -> u64 {
        SCOPES.with(|n| n.get())
    }

    /// Counts a buffer the host layer created.
    pub(crate) fn count_buffer(&self) {
        CREATED.with(|c| c.set((c.get().0 + 1, c.get().1)));
    }

    /// Counts a readback made outside `read_bytes` (asynchronous maps).
    pub(crate) fn count_readback(&self) {
        self.inner.readbacks.fetch_add(1, Ordering::Relaxed);
    }

    /// Fails if the device has been lost.
    pub(crate) fn check_lost(&self) -> Result<(), Error> {
        if let Some(reason) = self.inner.lost.lock().ok().and_then(|l| l.clone()) {
            return Err(Error::DeviceLost { reason });
        }
        Ok(())
    }

    /// Runs `f` inside validation, out-of-memory and internal error scopes
    /// and turns anything they catch into an [`Error`].
    ///
    /// In the browser a scope can only be awaited, and nothing may block
    /// there: errors arrive through the device's uncaptured-error handler
    /// instead and are reported by the next call that checks (the same
    /// "reported by an earlier operation" path as natively).
    #[cfg(target_arch = "wasm32")]
    pub(crate) fn scoped<T>(&self, context: &str, f: impl FnOnce() -> T) -> Result<T, Error> {
        self.check_lost()?;
        let value = f();
        self.check_uncaptured(context)?;
        self.check_lost()?;
        Ok(value)
    }

    /// Fails with the oldest GPU error reported outside any scope.
    pub(crate) fn check_uncaptured(&self, context: &str) -> Result<(), Error> {
        let message = self.inner.uncaptured.lock().ok().and_then(|mut v| {
            if v.is_empty() {
                None
            } else {
                Some(v.remove(0))
            }
        });
        match message {
            Some(message) => Err(Error::GpuValidation {
                context: format!("{context} (reported by an earlier operation)"),
                message,
            }),
            None => Ok(()),
        }
    }

    /// Runs `f` inside validation, out-of-memory and internal error scopes
    /// and turns anything they catch into an [`Error`].
    ///
    /// Scopes nest: inside another `scoped` call on the same thread, `f`
    /// runs in the outer call's scopes (a training step records all its
    /// passes under one scope, and what they catch names the step).
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn scoped<T>(&self, context: &str, f: impl FnOnce() -> T) -> Result<T, Error> {
        if SCOPE_DEPTH.with(|d| d.get()) > 0 {
            return Ok(f());
        }
        struct Depth;
        impl Drop for Depth {
            fn drop(&mut self) {
                SCOPE_DEPTH.with(|d| d.set(d.get() - 1));
            }
        }
        self.check_lost()?;
        SCOPES.with(|n| n.set(n.get() + 1));
        SCOPE_DEPTH.with(|d| d.set(d.get() + 1));
        let depth = Depth;
        let device = &self.inner.device;
        let internal = device.push_error_scope(wgpu::ErrorFilter::Internal);
        let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let value = f();
        drop(depth);
        let errors = [
            pollster::block_on(validation.pop()),
            pollster::block_on(oom.pop()),
            pollster::block_on(internal.pop()),
        ];
        if let Some(e) = errors.into_iter().flatten().next() {
            return Err(match e {
                wgpu::Error::OutOfMemory { .. } => Error::OutOfMemory {
                    context: context.to_string(),
                    message: e.to_string(),
                },
                other => Error::GpuValidation {
                    context: context.to_string(),
                    message: other.to_string(),
                },
            });
        }
        self.check_uncaptured(context)?;
        self.check_lost()?;
        Ok(value)
    }

    /// Returns the cached pipeline for `key`, compiling `source` on first use.
    /// `trusted` drops wgpu's runtime bounds checks: only for kernels whose
    /// indexing the tests cover at ragged shapes.
    pub(crate) fn pipeline(
        &self,
        key: &str,
        entry: &str,
        source: impl FnOnce() -> String,
        trusted: bool,
    ) -> Result<Arc<wgpu::ComputePipeline>, Error> {
        if let Some(p) = self.inner.pipelines.lock().ok().and_then(|m| {
            m.get(key)?
                .iter()
                .find(|((e, t), _)| e == entry && *t == trusted)
                .map(|(_, p)| p.clone())
        }) {
            return Ok(p);
        }
        let source = source();
        // Catch shader errors with naga's full report before wgpu sees them.
        super::shader::validate(key, &source)?;
        // A browser's compiler wants subgroup operations declared, where
        // naga rejects the declaration (it takes them undeclared).
        #[cfg(target_arch = "wasm32")]
        let source = if self.inner.shader_subgroups {
            format!("enable subgroups;\n{source}")
        } else {
            source
        };
        let device = &self.inner.device;
        let pipeline = self.scoped(&format!("compiling kernel {key}::{entry}"), || {
            let desc = wgpu::ShaderModuleDescriptor {
                label: Some(key),
                source: wgpu::ShaderSource::Wgsl(Cow::Owned(source)),
            };
            let module = if trusted {
                // SAFETY: callers pass only kernels whose every index is kept in
                // bounds by construction and covered by ragged-shape tests.
                unsafe {
                    device
                        .create_shader_module_trusted(desc, wgpu::ShaderRuntimeChecks::unchecked())
                }
            } else {
                device.create_shader_module(desc)
            };
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(key),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            })
        })?;
        let pipeline = Arc::new(pipeline);
        if let Ok(mut m) = self.inner.pipelines.lock() {
            m.entry(key.to_string())
                .or_default()
                .insert((entry.to_string(), trusted), pipeline.clone());
        }
        Ok(pipeline)
    }

    /// Submits command buffers (inside error scopes) and returns the index.
    pub(crate) fn submit(
        &self,
        context: &str,
        commands: Vec<wgpu::CommandBuffer>,
    ) -> Result<wgpu::SubmissionIndex, Error> {
        self.scoped(context, || self.inner.queue.submit(commands))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn assert_send_sync_clone<T: Send + Sync + Clone>() {}

    #[test]
    fn gpu_is_send_sync_clone() {
        assert_send_sync_clone::<Gpu>();
    }

    pub(crate) fn gpu_for_test() -> Option<Gpu> {
        match Gpu::new() {
            Ok(g) => Some(g),
            Err(e) if std::env::var("FUSEDMLP_REQUIRE_GPU").as_deref() == Ok("0") => {
                eprintln!("SKIPPED (NOT PASSED): {e}");
                None
            }
            Err(e) => panic!("GPU test needs an adapter (run scripts/test.sh): {e}"),
        }
    }

    #[test]
    fn a_shader_that_does_not_compile_is_an_error() {
        let Some(gpu) = gpu_for_test() else { return };
        let err = gpu
            .pipeline(
                "broken",
                "main",
                || "@compute @workgroup_size(1) fn main() { let x: f32 = nope; }".into(),
                false,
            )
            .unwrap_err();
        assert!(matches!(err, Error::Shader { .. }), "{err}");
    }
}
