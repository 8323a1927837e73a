//! The embedded 8×8 handwritten digits.

use super::csv::{parse_csv, CsvOptions, Header, LabelColumn};
use super::dataset::Dataset;
use super::io::gunzip;
use crate::error::Error;

/// The digits CSV, gzip-compressed: 1797 rows of 64 pixels (0..=16) and a
/// label (0..=9).
static DIGITS_CSV_GZ: &[u8] = include_bytes!("../../data/digits.csv.gz");

/// The embedded handwritten digits (the UCI optical-recognition test set as
/// shipped with scikit-learn): 1797 rows, 64 features (8×8 pixels scaled to
/// `[0, 1]` by dividing by 16), 10 classes, named `"digits"`.
pub fn digits() -> Result<Dataset, Error> {
    let bytes = gunzip("digits (embedded)", DIGITS_CSV_GZ, 1 << 24)?;
    let text = std::str::from_utf8(&bytes).map_err(|e| Error::Data {
        path: "digits (embedded)".to_string(),
        message: format!("invalid UTF-8 at byte offset {}", e.valid_up_to()),
    })?;
    let options = CsvOptions {
        label_column: LabelColumn::Last,
        header: Header::No,
    };
    let mut d = parse_csv("digits", text, options)?;
    if d.n_features != 64 || d.n_classes != 10 {
        return Err(Error::Data {
            path: "digits (embedded)".to_string(),
            message: format!(
                "expected 64 features and 10 classes, found {} and {}",
                d.n_features, d.n_classes
            ),
        });
    }
    for v in &mut d.features {
        *v /= 16.0;
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_shape_and_range() {
        let d = digits().unwrap();
        assert_eq!(d.name, "digits");
        assert_eq!((d.len(), d.n_features, d.n_classes), (1797, 64, 10));
        assert!(d.features.iter().all(|&v| (0.0..=1.0).contains(&v)));
        assert!(d.features.contains(&1.0));
        assert!(d.class_counts().iter().all(|&c| (170..=190).contains(&c)));
    }
}
