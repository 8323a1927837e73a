//! The in-memory [`Dataset`], its seeded split, and [`Standardizer`].

use crate::error::Error;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

/// A classification data set held in memory.
///
/// Build one with [`Dataset::new`], which validates it; read it through its
/// accessors, so that every data set the library sees is one `new` accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// A short name for messages and reports (`"digits"`, a file path, ...).
    pub(crate) name: String,
    /// The feature matrix, row-major `[len, n_features]`.
    pub(crate) features: Vec<f32>,
    /// The class index of each row, each `< n_classes`.
    pub(crate) labels: Vec<u32>,
    /// Features per row.
    pub(crate) n_features: usize,
    /// Number of classes (labels are `0..n_classes`).
    pub(crate) n_classes: usize,
}

impl Dataset {
    /// Builds a validated data set.
    ///
    /// Errors: [`Error::Shape`] if `features.len() != labels.len() * n_features`;
    /// [`Error::Config`] if `n_features` or `n_classes` is 0; [`Error::Data`]
    /// if there are no rows, a label is `>= n_classes`, or a feature is NaN
    /// or infinite (the message names the 0-based row and column).
    pub fn new(
        name: impl Into<String>,
        features: Vec<f32>,
        labels: Vec<u32>,
        n_features: usize,
        n_classes: usize,
    ) -> Result<Dataset, Error> {
        let name = name.into();
        if n_features == 0 {
            return Err(Error::Config(format!(
                "data set '{name}': n_features must be at least 1"
            )));
        }
        if n_classes == 0 {
            return Err(Error::Config(format!(
                "data set '{name}': n_classes must be at least 1"
            )));
        }
        let expected = labels.len().checked_mul(n_features);
        if expected != Some(features.len()) {
            return Err(Error::shape(
                format!("Dataset::new('{name}') features"),
                format!(
                    "{} values ({} labels × {n_features} features)",
                    expected.map_or_else(|| "overflowing".to_string(), |e| e.to_string()),
                    labels.len()
                ),
                format!("{} values", features.len()),
            ));
        }
        if labels.is_empty() {
            return Err(Error::Data {
                path: name,
                message: "the data set has no rows".to_string(),
            });
        }
        if let Some((row, &label)) = labels
            .iter()
            .enumerate()
            .find(|(_, &l)| l as usize >= n_classes)
        {
            return Err(Error::Data {
                path: name,
                message: format!(
                    "row {row} (0-based) has label {label} but there are only {n_classes} \
                     classes (labels must be 0..={})",
                    n_classes - 1
                ),
            });
        }
        if let Some((i, &v)) = features.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(Error::Data {
                path: name,
                message: format!(
                    "row {} column {} (0-based) is {v}; features must be finite numbers",
                    i / n_features,
                    i % n_features
                ),
            });
        }
        Ok(Dataset {
            name,
            features,
            labels,
            n_features,
            n_classes,
        })
    }

    /// A short name for messages and reports (`"digits"`, a file path, ...).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The same rows under another name.
    pub fn with_name(mut self, name: impl Into<String>) -> Dataset {
        self.name = name.into();
        self
    }

    /// The feature matrix, row-major `[len, n_features]`.
    pub fn features(&self) -> &[f32] {
        &self.features
    }

    /// The class index of each row, each `< n_classes`.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// Features per row.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Number of classes (labels are `0..n_classes`).
    pub fn n_classes(&self) -> usize {
        self.n_classes
    }

    /// The data set taken apart: (name, features, labels, features per
    /// row, classes).
    pub fn into_parts(self) -> (String, Vec<f32>, Vec<u32>, usize, usize) {
        (
            self.name,
            self.features,
            self.labels,
            self.n_features,
            self.n_classes,
        )
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no rows (only possible for the validation half of
    /// a [`split`](Dataset::split) with `val_fraction == 0`).
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The features of row `i`.
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.features[i * self.n_features..(i + 1) * self.n_features]
    }

    /// The rows at `indices`, in that order (repeats allowed), keeping the
    /// name, `n_features` and `n_classes`.
    ///
    /// # Panics
    /// If an index is `>= self.len()`.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        let mut features = Vec::with_capacity(indices.len() * self.n_features);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            features.extend_from_slice(self.row(i));
            labels.push(self.labels[i]);
        }
        Dataset {
            name: self.name.clone(),
            features,
            labels,
            n_features: self.n_features,
            n_classes: self.n_classes,
        }
    }

    /// A seeded, shuffled split into `(train, validation)`.
    ///
    /// Validation gets `round(len * val_fraction)` rows, at least 1 when
    /// `val_fraction > 0` and `len >= 2`; train always keeps at least 1 row.
    /// With `val_fraction == 0` the validation set is empty. Both halves
    /// are in shuffled order. `val_fraction` must be in `[0, 1)`, else
    /// [`Error::Config`].
    pub fn split(&self, val_fraction: f64, seed: u64) -> Result<(Dataset, Dataset), Error> {
        if !(0.0..1.0).contains(&val_fraction) {
            return Err(Error::Config(format!(
                "val_fraction must be in [0, 1), got {val_fraction}"
            )));
        }
        let n = self.len();
        let mut n_val = (n as f64 * val_fraction).round() as usize;
        if val_fraction > 0.0 && n >= 2 {
            n_val = n_val.max(1);
        }
        n_val = n_val.min(n.saturating_sub(1));
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut StdRng::seed_from_u64(seed));
        let (val, train) = order.split_at(n_val);
        Ok((self.subset(train), self.subset(val)))
    }

    /// Rows per class, indexed by label (length `n_classes`).
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.n_classes];
        for &l in &self.labels {
            if let Some(c) = counts.get_mut(l as usize) {
                *c += 1;
            }
        }
        counts
    }
}

/// Z-score standardisation fitted on one data set (the training split) and
/// applied to others: `x' = (x - mean) / std` per feature.
///
/// Features with zero variance (constant within float precision) get std 1,
/// so they become 0 rather than NaN.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Standardizer {
    mean: Vec<f32>,
    std: Vec<f32>,
}

impl Standardizer {
    /// A standardizer of known per-feature means and standard deviations
    /// (as [`Standardizer::fit`] would give): an error unless both have the
    /// same length, every mean is finite and every deviation
    /// finite and above 0.
    pub fn new(mean: Vec<f32>, std: Vec<f32>) -> Result<Standardizer, Error> {
        let s = Standardizer { mean, std };
        s.check()?;
        Ok(s)
    }

    /// Per-feature mean.
    pub fn mean(&self) -> &[f32] {
        &self.mean
    }

    /// Per-feature population standard deviation (1 for constant features).
    pub fn std(&self) -> &[f32] {
        &self.std
    }

    /// Fits per-feature mean and standard deviation on `data` (accumulated
    /// in `f64`). An empty data set gives mean 0 and std 1.
    pub fn fit(data: &Dataset) -> Standardizer {
        let nf = data.n_features;
        let n = data.len();
        let mut sum = vec![0f64; nf];
        let mut max_abs = vec![0f64; nf];
        for i in 0..n {
            for (j, &v) in data.row(i).iter().enumerate() {
                sum[j] += v as f64;
                max_abs[j] = max_abs[j].max((v as f64).abs());
            }
        }
        let mean: Vec<f64> = sum
            .iter()
            .map(|s| if n > 0 { s / n as f64 } else { 0.0 })
            .collect();
        let mut sq = vec![0f64; nf];
        for i in 0..n {
            for (j, &v) in data.row(i).iter().enumerate() {
                let d = v as f64 - mean[j];
                sq[j] += d * d;
            }
        }
        let std = sq
            .iter()
            .zip(&max_abs)
            .map(|(&s, &m)| {
                let sd = if n > 0 { (s / n as f64).sqrt() } else { 0.0 };
                // Below f32 resolution of the values: treat as constant.
                if sd > 0.0 && sd > m * 1e-6 && sd.is_finite() {
                    sd as f32
                } else {
                    1.0
                }
            })
            .collect();
        Standardizer {
            mean: mean.iter().map(|&m| m as f32).collect(),
            std,
        }
    }

    /// Standardises `data` in place.
    ///
    /// Errors: [`Error::Shape`] if `data.n_features` differs from the fitted
    /// feature count; [`Error::Config`] if the standardizer itself is
    /// inconsistent (mean and std of different lengths, or a std that is
    /// not a finite positive number, e.g. from a hand-edited JSON file).
    pub fn apply(&self, data: &mut Dataset) -> Result<(), Error> {
        self.check()?;
        if data.n_features != self.mean.len() {
            return Err(Error::shape(
                format!("Standardizer::apply to '{}'", data.name),
                format!("{} features (as fitted)", self.mean.len()),
                format!("{} features", data.n_features),
            ));
        }
        self.scale(&mut data.features);
        Ok(())
    }

    /// Standardises raw rows in place: `rows` holds whole rows of the
    /// fitted feature count, one after another (what
    /// [`crate::Mlp::predict_logits`] does with rows as they come, for a
    /// net that carries a standardizer).
    ///
    /// ```
    /// use fusedmlp::data::Standardizer;
    /// let s = Standardizer::new(vec![1.0, 10.0], vec![2.0, 5.0])?;
    /// let mut rows = vec![3.0, 20.0, 1.0, 5.0];
    /// s.apply_rows(&mut rows)?;
    /// assert_eq!(rows, [1.0, 2.0, 0.0, -1.0]);
    /// # Ok::<(), fusedmlp::Error>(())
    /// ```
    ///
    /// Errors as [`Standardizer::apply`], and [`Error::Shape`] if `rows` is
    /// not a whole number of rows.
    pub fn apply_rows(&self, rows: &mut [f32]) -> Result<(), Error> {
        self.check()?;
        let cols = self.mean.len();
        if cols == 0 || !rows.len().is_multiple_of(cols) {
            return Err(Error::shape(
                "Standardizer::apply_rows",
                format!("whole rows of {cols} features"),
                format!("{} values", rows.len()),
            ));
        }
        self.scale(rows);
        Ok(())
    }

    /// The feature count it was fitted on.
    pub fn features(&self) -> usize {
        self.mean.len()
    }

    /// Fails where the standardizer cannot be applied: means and standard
    /// deviations of different lengths, or a std that is not finite and
    /// positive (a hand-edited file).
    pub fn check(&self) -> Result<(), Error> {
        if self.mean.len() != self.std.len() {
            return Err(Error::Config(format!(
                "standardizer has {} means but {} standard deviations",
                self.mean.len(),
                self.std.len()
            )));
        }
        if let Some((j, s)) = self
            .std
            .iter()
            .zip(&self.mean)
            .enumerate()
            .find(|(_, (&s, &m))| !(s.is_finite() && s > 0.0 && m.is_finite()))
            .map(|(j, (s, _))| (j, s))
        {
            return Err(Error::Config(format!(
                "standardizer feature {j} has std {s} (or a non-finite mean); \
                 std must be finite and positive: refit it with Standardizer::fit"
            )));
        }
        Ok(())
    }

    /// `(v − mean) / std` over whole rows (checked by the caller).
    fn scale(&self, values: &mut [f32]) {
        for row in values.chunks_exact_mut(self.mean.len().max(1)) {
            for ((v, &m), &s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *v = (*v - m) / s;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy(n: usize) -> Dataset {
        let features = (0..n * 2).map(|i| i as f32).collect();
        let labels = (0..n).map(|i| (i % 3) as u32).collect();
        Dataset::new("toy", features, labels, 2, 3).unwrap()
    }

    #[test]
    fn new_validates() {
        assert!(matches!(
            Dataset::new("x", vec![1.0; 5], vec![0, 1], 2, 2),
            Err(Error::Shape { .. })
        ));
        assert!(matches!(
            Dataset::new("x", vec![], vec![], 0, 2),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            Dataset::new("x", vec![1.0; 2], vec![0], 2, 0),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            Dataset::new("x", vec![], vec![], 2, 2),
            Err(Error::Data { .. })
        ));
        let e = Dataset::new("x", vec![1.0; 6], vec![0, 1, 2], 2, 2).unwrap_err();
        assert!(e.to_string().contains("row 2"), "{e}");
        let e = Dataset::new("x", vec![0.0, 1.0, 2.0, f32::NAN], vec![0, 1], 2, 2).unwrap_err();
        assert!(e.to_string().contains("row 1 column 1"), "{e}");
        let e = Dataset::new("x", vec![f32::INFINITY, 1.0], vec![0], 2, 2).unwrap_err();
        assert!(e.to_string().contains("row 0 column 0"), "{e}");
    }

    #[test]
    fn rows_subset_and_counts() {
        let d = toy(5);
        assert_eq!(d.len(), 5);
        assert!(!d.is_empty());
        assert_eq!(d.row(2), &[4.0, 5.0]);
        let s = d.subset(&[4, 0, 4]);
        assert_eq!(s.features, vec![8.0, 9.0, 0.0, 1.0, 8.0, 9.0]);
        assert_eq!(s.labels, vec![1, 0, 1]);
        assert_eq!(s.name, "toy");
        assert_eq!(d.class_counts(), vec![2, 2, 1]);
        assert!(d.subset(&[]).is_empty());
    }

    #[test]
    fn split_sizes() {
        let d = toy(100);
        for (f, nv) in [(0.0, 0), (0.2, 20), (0.25, 25), (0.001, 1), (0.999, 99)] {
            let (t, v) = d.split(f, 1).unwrap();
            assert_eq!((t.len(), v.len()), (100 - nv, nv), "fraction {f}");
        }
        let one = toy(1);
        let (t, v) = one.split(0.5, 1).unwrap();
        assert_eq!((t.len(), v.len()), (1, 0));
        let two = toy(2);
        let (t, v) = two.split(0.1, 1).unwrap();
        assert_eq!((t.len(), v.len()), (1, 1));
        for bad in [-0.1, 1.0, 1.5, f64::NAN] {
            assert!(matches!(d.split(bad, 0), Err(Error::Config(_))), "{bad}");
        }
    }

    #[test]
    fn split_is_seeded_and_a_partition() {
        let d = toy(50);
        let (t1, v1) = d.split(0.3, 9).unwrap();
        let (t2, v2) = d.split(0.3, 9).unwrap();
        assert_eq!((&t1, &v1), (&t2, &v2));
        let (t3, _) = d.split(0.3, 10).unwrap();
        assert_ne!(t1, t3);
        let mut firsts: Vec<i64> = t1
            .features
            .chunks(2)
            .chain(v1.features.chunks(2))
            .map(|r| r[0] as i64)
            .collect();
        firsts.sort();
        assert_eq!(firsts, (0..50).map(|i| i * 2).collect::<Vec<i64>>());
    }

    #[test]
    fn standardizer_fits_and_applies() {
        let features = vec![1.0, 5.0, 10.0, 3.0, 5.0, 20.0, 5.0, 5.0, 30.0];
        let mut d = Dataset::new("s", features, vec![0, 1, 0], 3, 2).unwrap();
        let st = Standardizer::fit(&d);
        assert_eq!(st.mean, vec![3.0, 5.0, 20.0]);
        assert_eq!(st.std[1], 1.0);
        st.apply(&mut d).unwrap();
        for j in 0..3 {
            let col: Vec<f32> = (0..3).map(|i| d.row(i)[j]).collect();
            let mean = col.iter().sum::<f32>() / 3.0;
            let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 3.0;
            assert!(mean.abs() < 1e-6, "feature {j} mean {mean}");
            if j != 1 {
                assert!(
                    (var.sqrt() - 1.0).abs() < 1e-5,
                    "feature {j} std {}",
                    var.sqrt()
                );
            } else {
                assert!(col.iter().all(|&v| v == 0.0));
            }
        }
        let mut other = toy(3);
        assert!(matches!(st.apply(&mut other), Err(Error::Shape { .. })));
        let bad = Standardizer {
            mean: vec![0.0, 0.0],
            std: vec![1.0, 0.0],
        };
        assert!(matches!(bad.apply(&mut other), Err(Error::Config(_))));
    }

    #[test]
    fn standardizer_serde_round_trip() {
        let st = Standardizer::fit(&toy(10));
        let json = serde_json::to_string(&st).unwrap();
        let back: Standardizer = serde_json::from_str(&json).unwrap();
        assert_eq!(st, back);
    }
}
