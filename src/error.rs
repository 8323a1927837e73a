//! The crate's one error type.

use thiserror::Error;

/// Everything that can go wrong in fusedmlp, each variant with a message that
/// says what was wrong and what to do about it.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// No GPU adapter was found (or none matched `FUSEDMLP_ADAPTER`).
    #[error(
        "no GPU adapter found{detail}. fusedmlp needs a Vulkan, Metal or DX12 device; \
         on Linux without a GPU install Mesa's software Vulkan driver \
         (`apt-get install mesa-vulkan-drivers`, which provides lavapipe) and try again"
    )]
    NoAdapter {
        /// Extra context, such as the adapters that were seen.
        detail: String,
    },

    /// The adapter refused to create a device.
    #[error("the adapter '{adapter}' could not create a device: {reason}")]
    DeviceRequest {
        /// The adapter name.
        adapter: String,
        /// wgpu's reason.
        reason: String,
    },

    /// A wgpu validation error: a kernel that would not have run correctly.
    #[error("GPU validation error in {context}: {message}")]
    GpuValidation {
        /// What fusedmlp was doing.
        context: String,
        /// wgpu's message.
        message: String,
    },

    /// The device ran out of memory.
    #[error("GPU out of memory in {context}: {message}. Use a smaller batch or narrower layers")]
    OutOfMemory {
        /// What fusedmlp was doing.
        context: String,
        /// wgpu's message.
        message: String,
    },

    /// The device was lost (driver reset, GPU removed, or a kernel that timed out).
    #[error("the GPU device was lost ({reason}); create a new `Gpu` after the driver recovers")]
    DeviceLost {
        /// Why the device was lost, as the driver reported it.
        reason: String,
    },

    /// Waiting on the GPU did not complete.
    #[error("GPU wait failed in {context}: {message}")]
    GpuWait {
        /// What fusedmlp was doing.
        context: String,
        /// wgpu's message.
        message: String,
    },

    /// Slices or tensors whose lengths or shapes do not match.
    #[error("shape mismatch in {context}: expected {expected}, got {actual}")]
    Shape {
        /// Which argument, in which call.
        context: String,
        /// What was expected.
        expected: String,
        /// What was given.
        actual: String,
    },

    /// A request larger than one of the device's limits.
    #[error(
        "{what} needs {needed} but the device limit `{limit}` is {available} ({} over); \
         reduce the batch size or layer width",
        needed.saturating_sub(*available)
    )]
    DeviceLimit {
        /// What was being allocated or dispatched.
        what: String,
        /// The wgpu limit's name.
        limit: String,
        /// What was needed.
        needed: u64,
        /// What the device allows.
        available: u64,
    },

    /// A string that does not name an activation, or bad parameters for one.
    #[error("invalid activation '{input}': {reason}. Valid names: {valid}")]
    InvalidActivation {
        /// The string given.
        input: String,
        /// What was wrong with it.
        reason: String,
        /// Every valid name with its parameter syntax.
        valid: String,
    },

    /// A setting outside its range, named as the library names it
    /// (`TrainConfig::batch_size`, `MlpConfig::dropout`, ...), with the
    /// value given and what it must be. The command line maps the field
    /// to its flag ([`Error::field`]).
    #[error("{field} is {value}; it must be {expected}")]
    InvalidSetting {
        /// The setting, as `Type::field`.
        field: String,
        /// The value given.
        value: String,
        /// Its valid range, or what it needs.
        expected: String,
    },

    /// An invalid configuration value.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// A shader that failed to parse or validate (a bug in fusedmlp: please report it).
    #[error("shader '{name}' is invalid: {message}")]
    Shader {
        /// The kernel name.
        name: String,
        /// naga's message.
        message: String,
    },

    /// An I/O error with the path involved.
    #[error("{context}: {source}")]
    Io {
        /// The file and operation.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A data file whose content is malformed.
    #[error("{path}: {message}")]
    Data {
        /// The file (or data set name).
        path: String,
        /// What is wrong and where.
        message: String,
    },
}

/// `Result` with fusedmlp's [`Error`](enum@Error).
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An [`Error::InvalidSetting`].
    pub(crate) fn setting(
        field: impl Into<String>,
        value: impl std::fmt::Display,
        expected: impl Into<String>,
    ) -> Error {
        Error::InvalidSetting {
            field: field.into(),
            value: value.to_string(),
            expected: expected.into(),
        }
    }

    /// The setting an [`Error::InvalidSetting`] is about (`None` for
    /// every other error).
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::InvalidSetting { field, .. } => Some(field),
            _ => None,
        }
    }

    pub(crate) fn shape(
        context: impl Into<String>,
        expected: impl ToString,
        actual: impl ToString,
    ) -> Self {
        Error::Shape {
            context: context.into(),
            expected: expected.to_string(),
            actual: actual.to_string(),
        }
    }
}
