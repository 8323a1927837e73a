//! The embedded 8×8 handwritten digits.

use super::dataset::Dataset;
use crate::error::Error;

/// Rows of the embedded digits.
const ROWS: usize = 1797;
/// Pixels per row (8×8).
const PIXELS: usize = 64;

/// The digits as raw bytes, one 65-byte record per row: 64 pixel
/// intensities (`0..=16`, row-major 8×8) then the label (`0..=9`). Stored
/// uncompressed so the core crate needs no decompressor (117 KB).
static DIGITS: &[u8] = include_bytes!("../../data/digits.u8");

/// The embedded handwritten digits (the UCI optical-recognition test set as
/// shipped with scikit-learn): 1797 rows, 64 features (8×8 pixels scaled to
/// `[0, 1]` by dividing by 16), 10 classes, named `"digits"`.
pub fn digits() -> Result<Dataset, Error> {
    let record = PIXELS + 1;
    if DIGITS.len() != ROWS * record {
        return Err(Error::Data {
            path: "digits (embedded)".to_string(),
            message: format!(
                "expected {} bytes ({ROWS} rows of {record}), found {}",
                ROWS * record,
                DIGITS.len()
            ),
        });
    }
    let mut features = Vec::with_capacity(ROWS * PIXELS);
    let mut labels = Vec::with_capacity(ROWS);
    for row in DIGITS.chunks_exact(record) {
        features.extend(row[..PIXELS].iter().map(|&p| f32::from(p) / 16.0));
        labels.push(u32::from(row[PIXELS]));
    }
    Dataset::new("digits", features, labels, PIXELS, 10)
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
        // scikit-learn's `load_digits()` class counts, in order.
        assert_eq!(
            d.class_counts(),
            vec![178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
        );
    }

    #[test]
    fn digits_first_rows_are_sklearns() {
        let d = digits().unwrap();
        let first: Vec<u32> = d.features[..16].iter().map(|v| (v * 16.0) as u32).collect();
        assert_eq!(first, [0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0]);
        assert_eq!(&d.labels[..5], &[0, 1, 2, 3, 4]);
    }
}
