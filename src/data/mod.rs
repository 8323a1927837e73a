//! Data sets: the embedded digits, seeded synthetic sets, CSV and IDX loaders.
//!
//! Everything here produces a [`Dataset`]: a classification set held in
//! memory as a row-major `f32` feature matrix with one `u32` class index per
//! row.
//!
//! * [`digits`]: the 8×8 handwritten digits (1797 rows, 64 features, 10
//!   classes), embedded in the crate.
//! * [`two_spirals`], [`moons`], [`blobs`], [`checkerboard`]: seeded
//!   synthetic sets.
//! * [`load_csv`] / [`parse_csv`]: comma-separated numbers, one label column.
//! * [`load_idx`] / [`parse_idx`]: the MNIST IDX format.
//! * [`by_name`]: any of the above from a short spec string such as
//!   `"moons:500"` or `"csv:train.csv"`.
//!
//! [`Dataset::split`] makes a seeded train/validation split and
//! [`Standardizer`] z-scores features with statistics fitted on the
//! training split.
//!
//! Every loader validates its input: malformed content is reported as
//! [`Error::Data`] naming the file and the line, column or byte offset,
//! and no loader allocates more than a small multiple of its input size.
//!
//! ```
//! use fusedmlp::data::{self, Standardizer};
//!
//! let set = data::moons(200, 0.1, 7)?;
//! let (mut train, mut val) = set.split(0.2, 7)?;
//! let scaler = Standardizer::fit(&train);
//! scaler.apply(&mut train)?;
//! scaler.apply(&mut val)?;
//! assert_eq!(train.len() + val.len(), 200);
//! # Ok::<(), fusedmlp::Error>(())
//! ```

mod csv;
mod dataset;
mod digits;
mod idx;
mod io;
mod synthetic;

pub use csv::{
    load_csv, load_features_csv, parse_csv, parse_features_csv, CsvOptions, Header, LabelColumn,
    MAX_CSV_LABEL,
};
pub use dataset::{Dataset, Standardizer};
pub use digits::digits;
pub use idx::{load_idx, parse_idx};
pub use io::MAX_DECOMPRESSED_BYTES;
pub use synthetic::{blobs, checkerboard, moons, two_spirals, MAX_SYNTHETIC_VALUES};

use crate::error::Error;
use std::path::Path;

/// The spec strings [`by_name`] accepts, as shown in its error messages.
pub const VALID_SPECS: &str = "\"digits\", \"spirals[:N]\", \"moons[:N]\", \"blobs[:N]\", \
     \"checkerboard[:N]\", \"csv:PATH\", \"idx:IMAGES,LABELS\"";

/// Default number of points for synthetic sets built by [`by_name`].
pub const DEFAULT_SYNTHETIC_POINTS: usize = 1000;

/// Builds a data set from a spec string: `"digits"`, `"spirals[:N]"`,
/// `"moons[:N]"`, `"blobs[:N]"`, `"checkerboard[:N]"`, `"csv:PATH"` or
/// `"idx:IMAGES,LABELS"`.
///
/// Synthetic sets use `seed` and default to N = 1000 points: spirals with
/// noise 0.2, moons with noise 0.1, blobs with 4 classes, 2 features and
/// spread 1.0, a checkerboard of 4×4 cells. `csv:` uses
/// [`CsvOptions::default`] (header auto-detected, label in the last column).
/// `idx:` takes the image file and the label file separated by a comma.
/// The keyword is case-insensitive (`two_spirals` is accepted for `spirals`).
///
/// An unknown or malformed spec gives [`Error::Config`] listing the valid
/// forms.
pub fn by_name(spec: &str, seed: u64) -> Result<Dataset, Error> {
    let trimmed = spec.trim();
    let (kind, arg) = match trimmed.split_once(':') {
        Some((kind, arg)) => (kind, Some(arg)),
        None => (trimmed, None),
    };
    let kind = kind.trim().to_ascii_lowercase();
    let count = |arg: Option<&str>| -> Result<usize, Error> {
        match arg {
            None => Ok(DEFAULT_SYNTHETIC_POINTS),
            Some(a) => a.trim().parse::<usize>().map_err(|_| {
                Error::Config(format!(
                    "data set '{spec}': '{a}' is not a point count; write e.g. '{kind}:500' \
                     or just '{kind}' for {DEFAULT_SYNTHETIC_POINTS} points"
                ))
            }),
        }
    };
    match kind.as_str() {
        "digits" => match arg {
            None => digits(),
            Some(_) => Err(Error::Config(format!(
                "data set '{spec}': 'digits' takes no argument; write just 'digits'"
            ))),
        },
        "spirals" | "two_spirals" => two_spirals(count(arg)?, 0.2, seed),
        "moons" => moons(count(arg)?, 0.1, seed),
        "blobs" => blobs(count(arg)?, 4, 2, 1.0, seed),
        "checkerboard" => checkerboard(count(arg)?, 4, seed),
        "csv" => match arg.map(str::trim) {
            Some(path) if !path.is_empty() => load_csv(Path::new(path), CsvOptions::default()),
            _ => Err(Error::Config(format!(
                "data set '{spec}': 'csv' needs a path, as in 'csv:data/train.csv'"
            ))),
        },
        "idx" => {
            let pair = arg.and_then(|a| a.split_once(','));
            match pair.map(|(i, l)| (i.trim(), l.trim())) {
                Some((images, labels)) if !images.is_empty() && !labels.is_empty() => {
                    load_idx(Path::new(images), Path::new(labels))
                }
                _ => Err(Error::Config(format!(
                    "data set '{spec}': 'idx' needs an image file and a label file separated \
                     by a comma, as in 'idx:train-images-idx3-ubyte.gz,train-labels-idx1-ubyte.gz'"
                ))),
            }
        }
        _ => Err(Error::Config(format!(
            "unknown data set '{spec}'. Valid forms: {VALID_SPECS}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_name_builds_every_synthetic_set() {
        for (spec, n, classes) in [
            ("spirals", 1000, 2),
            ("spirals:40", 40, 2),
            ("two_spirals:10", 10, 2),
            ("moons:30", 30, 2),
            ("blobs:80", 80, 4),
            ("checkerboard:64", 64, 2),
            (" Moons : 12 ", 12, 2),
        ] {
            let d = by_name(spec, 3).unwrap_or_else(|e| panic!("{spec}: {e}"));
            assert_eq!(d.len(), n, "{spec}");
            assert_eq!(d.n_classes, classes, "{spec}");
        }
        assert_eq!(by_name("digits", 0).unwrap().len(), 1797);
    }

    #[test]
    fn by_name_is_seeded() {
        assert_eq!(
            by_name("moons:50", 1).unwrap(),
            by_name("moons:50", 1).unwrap()
        );
        assert_ne!(
            by_name("moons:50", 1).unwrap(),
            by_name("moons:50", 2).unwrap()
        );
    }

    #[test]
    fn by_name_rejects_bad_specs() {
        for spec in [
            "",
            "mnist",
            "moons:abc",
            "moons:-3",
            "digits:5",
            "csv",
            "csv:",
            "idx:a",
            "idx:,b",
            "spirals:0",
        ] {
            match by_name(spec, 0) {
                Err(Error::Config(msg)) => assert!(!msg.is_empty(), "{spec}"),
                other => panic!("{spec}: expected Error::Config, got {other:?}"),
            }
        }
        let Err(Error::Config(msg)) = by_name("mnist", 0) else {
            panic!("expected Config")
        };
        assert!(
            msg.contains("checkerboard[:N]") && msg.contains("idx:IMAGES,LABELS"),
            "{msg}"
        );
    }

    #[test]
    fn by_name_csv_missing_file_is_io() {
        match by_name("csv:/definitely/not/here.csv", 0) {
            Err(Error::Io { context, .. }) => assert!(context.contains("/definitely/not/here.csv")),
            other => panic!("expected Error::Io, got {other:?}"),
        }
    }
}
