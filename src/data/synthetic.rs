//! Seeded synthetic classification sets.
//!
//! Every generator assigns labels round-robin (row `i` gets class
//! `i % n_classes`, except [`checkerboard`], whose label follows from the
//! point), so classes are balanced to within one row and interleaved, and
//! the same seed always gives the same set.

use super::dataset::Dataset;
use crate::error::Error;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use std::f64::consts::PI;

/// The most feature values (`n * n_features`) a synthetic set may have
/// (2^28, 1 GiB of `f32`).
pub const MAX_SYNTHETIC_VALUES: usize = 1 << 28;

fn check_size(what: &str, n: usize, min_n: usize, n_features: usize) -> Result<(), Error> {
    if n < min_n {
        return Err(Error::Config(format!(
            "{what}: n must be at least {min_n} (one point per class), got {n}"
        )));
    }
    match n.checked_mul(n_features) {
        Some(total) if total <= MAX_SYNTHETIC_VALUES => Ok(()),
        _ => Err(Error::Config(format!(
            "{what}: {n} points × {n_features} features exceeds the limit of \
             {MAX_SYNTHETIC_VALUES} values; ask for fewer points"
        ))),
    }
}

fn check_scale(what: &str, param: &str, v: f32) -> Result<(), Error> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "{what}: {param} must be a finite number >= 0, got {v}"
        )))
    }
}

fn gauss(rng: &mut StdRng) -> f64 {
    rng.sample::<f64, _>(StandardNormal)
}

/// Two interleaved spirals (2 classes, 2 features, `n` points, `n >= 2`).
///
/// Each arm winds 1.5 turns (angle `θ` in `[0, 3π]`, radius `θ/π`, so
/// points lie within radius ~3); the second arm is the first rotated by π,
/// so neighbouring arms are 1 apart. Gaussian noise with standard deviation
/// `noise` is added to each coordinate.
pub fn two_spirals(n: usize, noise: f32, seed: u64) -> Result<Dataset, Error> {
    check_size("two_spirals", n, 2, 2)?;
    check_scale("two_spirals", "noise", noise)?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut features = Vec::with_capacity(n * 2);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let label = (i % 2) as u32;
        // sqrt spreads points evenly along the arm rather than crowding the centre.
        let theta = rng.random::<f64>().sqrt() * 3.0 * PI;
        let r = theta / PI;
        let angle = theta + label as f64 * PI;
        let x = r * angle.cos() + noise as f64 * gauss(&mut rng);
        let y = r * angle.sin() + noise as f64 * gauss(&mut rng);
        features.extend([x as f32, y as f32]);
        labels.push(label);
    }
    Dataset::new("spirals", features, labels, 2, 2)
}

/// Two interleaving half circles, as scikit-learn's `make_moons` (2
/// classes, 2 features, `n` points, `n >= 2`): class 0 on `(cos t, sin t)`,
/// class 1 on `(1 - cos t, 0.5 - sin t)`, `t` uniform in `[0, π]`, plus
/// Gaussian noise with standard deviation `noise`.
pub fn moons(n: usize, noise: f32, seed: u64) -> Result<Dataset, Error> {
    check_size("moons", n, 2, 2)?;
    check_scale("moons", "noise", noise)?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut features = Vec::with_capacity(n * 2);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let label = (i % 2) as u32;
        let t = rng.random_range(0.0..=PI);
        let (x, y) = if label == 0 {
            (t.cos(), t.sin())
        } else {
            (1.0 - t.cos(), 0.5 - t.sin())
        };
        let x = x + noise as f64 * gauss(&mut rng);
        let y = y + noise as f64 * gauss(&mut rng);
        features.extend([x as f32, y as f32]);
        labels.push(label);
    }
    Dataset::new("moons", features, labels, 2, 2)
}

/// Isotropic Gaussian blobs: `n_classes` centres drawn uniformly from
/// `[-5, 5]^n_features`, and `n` points (`n >= n_classes`), each its
/// class's centre plus Gaussian noise with standard deviation `spread`.
pub fn blobs(
    n: usize,
    n_classes: usize,
    n_features: usize,
    spread: f32,
    seed: u64,
) -> Result<Dataset, Error> {
    if n_classes == 0 || n_features == 0 {
        return Err(Error::Config(format!(
            "blobs: n_classes and n_features must be at least 1, got {n_classes} and {n_features}"
        )));
    }
    check_size("blobs", n, n_classes, n_features)?;
    check_scale("blobs", "spread", spread)?;
    let mut rng = StdRng::seed_from_u64(seed);
    let centres: Vec<f64> = (0..n_classes * n_features)
        .map(|_| rng.random_range(-5.0..=5.0))
        .collect();
    let mut features = Vec::with_capacity(n * n_features);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let label = i % n_classes;
        let centre = &centres[label * n_features..(label + 1) * n_features];
        for &c in centre {
            features.push((c + spread as f64 * gauss(&mut rng)) as f32);
        }
        labels.push(label as u32);
    }
    Dataset::new("blobs", features, labels, n_features, n_classes)
}

/// A checkerboard (2 classes, 2 features, `n >= 2` points): points uniform
/// in `[0, 1)^2`, label `(floor(x * cells) + floor(y * cells)) % 2`.
/// `cells >= 2` per side (one cell would be a single class).
pub fn checkerboard(n: usize, cells: usize, seed: u64) -> Result<Dataset, Error> {
    check_size("checkerboard", n, 2, 2)?;
    if cells < 2 {
        return Err(Error::Config(format!(
            "checkerboard: cells must be at least 2 per side, got {cells}"
        )));
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut features = Vec::with_capacity(n * 2);
    let mut labels = Vec::with_capacity(n);
    let c = cells as f64;
    for _ in 0..n {
        let x: f32 = rng.random();
        let y: f32 = rng.random();
        // Computed from the stored f32 values so labels match the features exactly.
        let cx = (x as f64 * c).floor() as u64;
        let cy = (y as f64 * c).floor() as u64;
        features.extend([x, y]);
        labels.push(((cx + cy) % 2) as u32);
    }
    Dataset::new("checkerboard", features, labels, 2, 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    type Gen = fn(usize, u64) -> Result<Dataset, Error>;

    fn generators() -> Vec<(&'static str, Gen, usize)> {
        vec![
            ("spirals", |n, s| two_spirals(n, 0.2, s), 2),
            ("moons", |n, s| moons(n, 0.1, s), 2),
            ("blobs", |n, s| blobs(n, 3, 4, 1.0, s), 3),
            ("checkerboard", |n, s| checkerboard(n, 4, s), 2),
        ]
    }

    #[test]
    fn deterministic_sized_and_balanced() {
        for (name, gen, classes) in generators() {
            let a = gen(600, 42).unwrap();
            assert_eq!(a, gen(600, 42).unwrap(), "{name}");
            assert_ne!(a.features, gen(600, 43).unwrap().features, "{name}");
            assert_eq!(a.len(), 600, "{name}");
            assert_eq!(a.n_classes, classes, "{name}");
            assert_eq!(a.name, name);
            let counts = a.class_counts();
            let fair = 600 / classes;
            assert!(
                counts
                    .iter()
                    .all(|&c| c * 10 >= fair * 7 && c * 10 <= fair * 13),
                "{name}: {counts:?}"
            );
        }
    }

    #[test]
    fn geometry() {
        let s = two_spirals(400, 0.0, 1).unwrap();
        assert!(s.features.iter().all(|v| v.abs() <= 3.0 + 1e-4));
        let m = moons(400, 0.0, 1).unwrap();
        for i in 0..m.len() {
            let (x, y) = (m.row(i)[0] as f64, m.row(i)[1] as f64);
            let r = if m.labels[i] == 0 {
                (x * x + y * y).sqrt()
            } else {
                ((x - 1.0).powi(2) + (y - 0.5).powi(2)).sqrt()
            };
            assert!((r - 1.0).abs() < 1e-5, "row {i}: radius {r}");
        }
        let b = blobs(100, 2, 3, 0.0, 1).unwrap();
        assert!(b.features.iter().all(|v| (-5.0..=5.0).contains(v)));
        assert_eq!(b.row(0), b.row(2));
        let c = checkerboard(500, 3, 1).unwrap();
        for i in 0..c.len() {
            let (x, y) = (c.row(i)[0], c.row(i)[1]);
            assert!((0.0..1.0).contains(&x) && (0.0..1.0).contains(&y));
            let want = ((x as f64 * 3.0).floor() as u32 + (y as f64 * 3.0).floor() as u32) % 2;
            assert_eq!(c.labels[i], want);
        }
    }

    #[test]
    fn bad_parameters_are_config_errors() {
        let cases: Vec<Result<Dataset, Error>> = vec![
            two_spirals(0, 0.1, 0),
            two_spirals(1, 0.1, 0),
            two_spirals(10, -0.1, 0),
            two_spirals(10, f32::NAN, 0),
            moons(0, 0.1, 0),
            moons(10, f32::INFINITY, 0),
            blobs(10, 0, 2, 1.0, 0),
            blobs(10, 2, 0, 1.0, 0),
            blobs(3, 4, 2, 1.0, 0),
            blobs(10, 2, 2, -1.0, 0),
            blobs(usize::MAX, 2, 2, 1.0, 0),
            blobs(1 << 20, 2, 1 << 20, 1.0, 0),
            checkerboard(10, 1, 0),
            checkerboard(10, 0, 0),
            checkerboard(1, 4, 0),
            checkerboard(usize::MAX / 2, 4, 0),
        ];
        for (i, r) in cases.into_iter().enumerate() {
            assert!(matches!(r, Err(Error::Config(_))), "case {i}: {r:?}");
        }
    }
}
