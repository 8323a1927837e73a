use super::bars::*;
use super::runs::*;
use super::*;
use crate::train::report::{StepLog, HIST_BINS};

const HIST_LEN: usize = HIST_BINS + 2;

const LAYERS: usize = 20;

fn histogram(center: f32, spread: f32, seed: u32) -> Vec<u32> {
    // A deterministic bell-ish shape over the bins plus some out-of-range mass.
    let width = (HIST_MAX - HIST_MIN) / HIST_BINS as f32;
    let mut h = vec![0u32; HIST_LEN];
    for k in 0..HIST_BINS {
        let x = HIST_MIN + (k as f32 + 0.5) * width;
        let z = (x - center) / spread;
        h[k + 1] = (1000.0 * (-0.5 * z * z).exp()) as u32 + (seed + k as u32) % 3;
    }
    h[0] = seed % 17;
    h[HIST_LEN - 1] = (seed * 7) % 23;
    h
}

fn step(step: u64, epoch: usize, sigmoid: bool, end: bool) -> StepLog {
    let layers = (0..LAYERS)
        .map(|l| {
            let depth_from_top = (LAYERS - 1 - l) as i32;
            let weight_grad_norm = if sigmoid {
                // Vanishing toward the first layer: x0.25 per layer.
                0.5 * 0.25f32.powi(depth_from_top)
            } else {
                0.2 + 0.02 * l as f32 + if end { 0.1 } else { 0.0 }
            };
            LayerDiagnostics {
                layer: l,
                weight_grad_norm,
                bias_grad_norm: weight_grad_norm * 0.1,
                weight_norm: 3.0,
                update_ratio: 1e-3,
                activation_mean: 0.5,
                activation_std: 0.2,
                dead_fraction: if sigmoid {
                    0.0
                } else {
                    0.02 * l as f32 * if end { 1.5 } else { 1.0 }
                },
                saturated_fraction: if sigmoid {
                    ((0.1 + 0.04 * l as f32) * if end { 1.2 } else { 1.0 }).min(1.0)
                } else {
                    0.0
                },
                histogram: histogram(
                    if sigmoid { 1.0 + 0.2 * l as f32 } else { 0.0 },
                    if end { 2.5 } else { 1.0 + 0.05 * l as f32 },
                    l as u32 + step as u32,
                ),
            }
        })
        .collect();
    StepLog {
        step,
        epoch,
        loss: 2.3,
        accuracy: 0.1,
        learning_rate: 0.01,
        grad_global_norm: 1.0,
        layers,
    }
}

fn report(label: &str, sigmoid: bool) -> RunReport {
    let epochs = (0..5)
        .map(|e| {
            let t = e as f32;
            EpochLog {
                epoch: e,
                train_loss: if sigmoid {
                    2.30 - 0.001 * t
                } else {
                    2.0 * 0.4f32.powf(t)
                },
                train_accuracy: if sigmoid { 0.11 } else { 0.5 + 0.1 * t },
                train_eval_loss: if sigmoid {
                    2.30 - 0.001 * t
                } else {
                    1.8 * 0.4f32.powf(t)
                },
                train_eval_accuracy: if sigmoid { 0.1 } else { 0.55 + 0.1 * t },
                val_loss: if sigmoid {
                    2.301
                } else {
                    2.1 * 0.45f32.powf(t)
                },
                val_accuracy: if sigmoid { 0.1 } else { 0.45 + 0.1 * t },
                val_rows: 360,
                elapsed_seconds: f64::from(e as u32),
            }
        })
        .collect();
    let mut steps = vec![
        step(0, 0, sigmoid, false),
        step(200, 2, sigmoid, true),
        step(499, 4, sigmoid, true),
    ];
    if sigmoid {
        // A zero norm (clamped to the floor) and a NaN (skipped).
        steps[0].layers[0].weight_grad_norm = 0.0;
        steps[2].layers[3].weight_grad_norm = f32::NAN;
        steps[2].layers[5].dead_fraction = f32::INFINITY;
    }
    RunReport {
        label: label.into(),
        config: serde_json::json!({}),
        adapter: "test".into(),
        seed: 1,
        epochs,
        steps,
        wall_seconds: 1.0,
        samples_per_second: 1.0,
        total_steps: 500,
        readbacks: 3,
        outcome: "completed".into(),
        divergence: None,
        ..Default::default()
    }
}

fn unique_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    std::env::temp_dir().join(format!(
        "fusedmlp_plot_{name}_{}_{nanos}",
        std::process::id()
    ))
}

fn assert_png(path: &Path) {
    let bytes =
        std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    assert!(
        bytes.starts_with(&[0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a]),
        "{} is not a PNG",
        path.display()
    );
    assert!(
        bytes.len() > 5 * 1024,
        "{} is only {} bytes",
        path.display(),
        bytes.len()
    );
}

/// Keeps the images when `FUSEDMLP_KEEP_PLOTS` is set, so they can be inspected.
fn clean_up(dir: &Path) {
    if std::env::var_os("FUSEDMLP_KEEP_PLOTS").is_some() {
        eprintln!("plots kept in {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn writes_every_plot_for_relu_and_sigmoid() {
    let runs = vec![report("relu", false), report("sigmoid", true)];
    let dir = unique_dir("all");
    let paths = write_plots(&runs, &dir).expect("plots are written");
    let names: Vec<String> = paths
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    assert_eq!(
        names,
        [
            "curves.png",
            "gradient_norms.png",
            "dead_saturated.png",
            "histograms_relu.png",
            "histograms_sigmoid.png"
        ]
    );
    for p in &paths {
        assert_png(p);
    }
    clean_up(&dir);
}

#[test]
fn seeds_are_drawn_thin_with_a_thick_median() {
    // Three seeds of two contenders: runs sharing a label are one contender.
    let mut runs = Vec::new();
    for seed in 0..3 {
        for (label, sigmoid) in [("relu", false), ("sigmoid", true)] {
            let mut r = report(label, sigmoid);
            r.seed = seed;
            for e in &mut r.epochs {
                e.val_accuracy += 0.02 * seed as f32;
            }
            runs.push(r);
        }
    }
    let dir = unique_dir("seeds");
    let path = dir.join("curves.png");
    plot_curves(&runs, &path).expect("the seeds' curves are drawn");
    assert_png(&path);
    // The median curve is the middle seed's value at each epoch.
    let relu: Vec<&RunReport> = runs.iter().filter(|r| r.label == "relu").collect();
    let median = super::runs::median_curve(&relu, |e| e.val_accuracy);
    assert_eq!(median.len(), 5);
    for (e, (x, y)) in median.iter().enumerate() {
        assert_eq!(*x, e as f64 + 1.0);
        let want = f64::from(relu[1].epochs[e].val_accuracy);
        assert!(
            (y.unwrap() - want).abs() < 1e-9,
            "epoch {e}: {y:?} vs {want}"
        );
    }
    clean_up(&dir);
}

#[test]
fn degenerate_runs_still_plot() {
    let mut empty = report("no data/at all", false);
    empty.epochs.clear();
    empty.steps.clear();
    let mut diverged = report("diverged", true);
    for e in &mut diverged.epochs {
        e.train_loss = f32::NAN;
        e.val_loss = f32::INFINITY;
    }
    let mut deep = report("deep", false);
    for e in &mut deep.epochs {
        // Spans four decades: the loss axis goes logarithmic.
        e.train_loss = 2.0 * 0.1f32.powi(e.epoch as i32);
        e.val_loss = 2.5 * 0.12f32.powi(e.epoch as i32);
    }
    for s in &mut deep.steps {
        let extra: Vec<_> = s.layers.clone();
        s.layers.extend(extra);
        s.layers.truncate(37);
        s.layers[1].histogram = vec![1];
    }
    let runs = vec![empty, diverged, deep];
    let dir = unique_dir("degenerate");
    let paths = write_plots(&runs, &dir).expect("degenerate runs still plot");
    assert_eq!(paths.len(), 6);
    assert!(paths
        .iter()
        .any(|p| p.ends_with("histograms_no_data_at_all.png")));
    for p in &paths {
        assert!(p.is_file(), "{} missing", p.display());
    }
    clean_up(&dir);
}

#[test]
fn runs_without_any_data_get_no_data_panels() {
    let mut run = report("empty", false);
    run.epochs.clear();
    run.steps.clear();
    let dir = unique_dir("nodata");
    let paths = write_plots(&[run], &dir).expect("empty runs still plot");
    assert_eq!(paths.len(), 4);
    for p in &paths {
        assert!(p.is_file(), "{} missing", p.display());
    }
    clean_up(&dir);
}

#[test]
fn a_single_run_with_narrow_norms_plots() {
    // ReLU norms within one decade: the log axis labels 1, 2 and 5 x 10^k.
    let dir = unique_dir("single");
    let paths = write_plots(&[report("relu", false)], &dir).expect("plots are written");
    assert_eq!(paths.len(), 4);
    for p in &paths {
        assert_png(p);
    }
    clean_up(&dir);
}

#[test]
fn empty_runs_are_an_error() {
    let dir = unique_dir("empty");
    match write_plots(&[], &dir) {
        Err(Error::Config(msg)) => assert_eq!(msg, "no runs to plot"),
        other => panic!("expected a config error, got {other:?}"),
    }
    assert!(!dir.exists());
}

#[test]
fn labels_are_sanitised() {
    assert_eq!(sanitize_label("relu"), "relu");
    assert_eq!(sanitize_label("leaky_relu(0.1) x/2"), "leaky_relu_0_1__x_2");
    assert_eq!(sanitize_label("gelu-tanh"), "gelu-tanh");
}

#[test]
fn evenly_spaced_layers() {
    assert_eq!(pick_layers(5, 24), vec![0, 1, 2, 3, 4]);
    let picked = pick_layers(100, 24);
    assert_eq!(picked.len(), 24);
    assert_eq!(picked.first(), Some(&0));
    assert_eq!(picked.last(), Some(&99));
}

fn series(label: &str, points: Vec<(f64, f64)>, dashed: bool, markers: bool) -> Series {
    Series {
        label: label.into(),
        points,
        dashed,
        markers,
    }
}

fn panel(title: &str, log_y: bool, y_range: Option<(f64, f64)>, series: Vec<Series>) -> Panel {
    Panel {
        title: title.into(),
        x_label: "epoch".into(),
        y_label: "value".into(),
        log_y,
        y_range,
        series,
    }
}

#[test]
fn panels_share_labels_and_handle_log_nan_range_and_empty() {
    let dir = unique_dir("panels");
    let curve = |scale: f64, rate: f64| -> Vec<(f64, f64)> {
        (1..=12)
            .map(|e| (f64::from(e), scale * rate.powi(e)))
            .collect()
    };
    // Three panels sharing labels; the second uses large, non-integer x.
    let throughput = |base: f64| -> Vec<(f64, f64)> {
        (0..8)
            .map(|k| {
                let batch = 1000.0 * 1.9f64.powi(k);
                (batch, base * (1.0 - (-batch / 20000.0).exp()))
            })
            .collect()
    };
    let three = [
        panel(
            "Train loss",
            false,
            None,
            vec![
                series("relu", curve(2.0, 0.8), false, false),
                series("sigmoid", curve(2.3, 0.97), false, false),
                series("gelu", curve(2.1, 0.78), false, true),
            ],
        ),
        Panel {
            x_label: "batch size".into(),
            y_label: "samples/s".into(),
            ..panel(
                "Throughput",
                false,
                None,
                vec![
                    series("relu", throughput(1.2e6), false, true),
                    series("sigmoid", throughput(1.1e6), false, true),
                ],
            )
        },
        panel(
            "Validation loss",
            false,
            None,
            vec![
                series("relu", curve(2.1, 0.82), true, false),
                series("gelu", curve(2.2, 0.8), true, false),
                series("tanh (only here)", curve(2.2, 0.9), true, true),
            ],
        ),
    ];
    let shared = dir.join("three_panels.png");
    plot_panels(
        "Three panels, shared legend",
        &three,
        &["batch 256, lr 0.01; relu and gelu appear in two panels".to_string()],
        &shared,
    )
    .expect("three panels");
    assert_png(&shared);

    // Log axis with a zero and a NaN (skipped and counted), a fixed
    // fraction range with an out-of-range point, and an empty panel.
    let mut log_pts = curve(1.0, 0.3);
    log_pts[3].1 = 0.0;
    log_pts[6].1 = f64::NAN;
    let mixed = [
        panel(
            "Loss (log)",
            true,
            None,
            vec![
                series("relu", log_pts, false, true),
                series("sigmoid", curve(2.3, 0.95), false, false),
            ],
        ),
        Panel {
            y_label: "dead fraction".into(),
            ..panel(
                "Dead units",
                false,
                Some((0.0, 1.0)),
                vec![
                    series(
                        "relu",
                        (1..=12)
                            .map(|l| (f64::from(l), 0.05 * f64::from(l)))
                            .collect(),
                        false,
                        true,
                    ),
                    series(
                        "sigmoid",
                        vec![(1.0, 0.0), (2.0, 1.5), (3.0, 0.1)],
                        true,
                        true,
                    ),
                ],
            )
        },
        panel("Nothing logged", false, None, vec![]),
        panel(
            "All NaN",
            false,
            None,
            vec![series(
                "gelu",
                vec![(1.0, f64::NAN), (2.0, f64::INFINITY)],
                false,
                false,
            )],
        ),
    ];
    let nested = dir.join("nested").join("mixed_panels.png");
    plot_panels("Log, fixed range and empty panels", &mixed, &[], &nested).expect("mixed panels");
    assert_png(&nested);
    clean_up(&dir);
}

#[test]
fn bars_with_a_reference_line() {
    let dir = unique_dir("bars");
    let bars: Vec<(String, f64)> = (0..20)
        .map(|i| {
            let label = format!(
                "batch {} fused {}",
                32 << (i % 8),
                ["relu", "gelu", "sigmoid"][i % 3]
            );
            (label, 0.4 + 0.17 * i as f64)
        })
        .collect();
    let path = dir.join("bars.png");
    plot_bars(
        "Throughput relative to the CPU baseline",
        "speed-up (×)",
        &bars,
        Some((1.0, "baseline = 1.0")),
        &path,
    )
    .expect("bar chart");
    assert_png(&path);

    // A few short labels, one non-finite value, a log axis.
    let few = vec![
        ("cpu".to_string(), 1.0),
        ("gpu f32".to_string(), 35.0),
        ("gpu fused".to_string(), 410.0),
        ("diverged".to_string(), f64::NAN),
    ];
    let path = dir.join("bars_log.png");
    plot_bars("Speed-up", "×", &few, Some((1.0, "")), &path).expect("log bar chart");
    assert_png(&path);
    clean_up(&dir);
}

#[test]
fn crowded_bars_still_plot() {
    let dir = unique_dir("crowded");
    // 120 bars with long labels and negative values: every few bars
    // labelled, labels shortened, values not printed.
    let bars: Vec<(String, f64)> = (0..120)
        .map(|i| {
            (
                format!("a rather long configuration name number {i} with details"),
                (i as f64 * 0.3).sin() * 1000.0,
            )
        })
        .collect();
    let path = dir.join("crowded.png");
    plot_bars("Crowded", "difference", &bars, None, &path).expect("crowded bars");
    assert_png(&path);
    // Large values with labels that fit once rotated.
    let big: Vec<(String, f64)> = (0..12)
        .map(|i| (format!("config {i}"), 1.0e6 + 2.5e5 * i as f64))
        .collect();
    let path = dir.join("big_values.png");
    plot_bars(
        "Samples per second",
        "samples/s",
        &big,
        Some((1.5e6, "target")),
        &path,
    )
    .expect("big bars");
    assert_png(&path);
    clean_up(&dir);
}

#[test]
fn nothing_to_draw_is_an_error() {
    let dir = unique_dir("no_panels");
    let path = dir.join("x.png");
    assert!(matches!(
        plot_panels("t", &[], &[], &path),
        Err(Error::Config(_))
    ));
    assert!(matches!(
        plot_bars("t", "y", &[], None, &path),
        Err(Error::Config(_))
    ));
    let bad = panel("bad", false, Some((1.0, 0.0)), vec![]);
    assert!(matches!(
        plot_panels("t", &[bad], &[], &path),
        Err(Error::Config(_))
    ));
    assert!(!dir.exists());
}

#[test]
fn number_labels() {
    assert_eq!(value_label(0.8766), "0.877");
    assert_eq!(value_label(1.0), "1");
    assert_eq!(value_label(12345.0), "12.3k");
    assert_eq!(value_label(1.5e6), "1.5M");
    assert_eq!(value_label(2e-5), "2×10⁻⁵");
    assert_eq!(value_label(f64::NAN), "n/a");
    let f = linear_tick_formatter(0.0, 1.0, 10);
    assert_eq!(f(&0.30000000000000004), "0.3");
    assert_eq!(f(&1e-17), "0");
    let f = linear_tick_formatter(0.0, 2.5e6, 8);
    assert_eq!(f(&1.5e6), "1.5M");
    let f = linear_tick_formatter(0.0, 5e-4, 10);
    assert_eq!(f(&2e-4), "2×10⁻⁴");
}

#[test]
fn log_tick_labels() {
    assert_eq!(log_tick_label(1e-5, false), "10⁻⁵");
    assert_eq!(log_tick_label(1.0, false), "10⁰");
    assert_eq!(log_tick_label(2e-5, false), "");
    assert_eq!(log_tick_label(0.02, true), "0.02");
    assert_eq!(log_tick_label(3.0, true), "");
    assert_eq!(log_tick_label(5e-7, true), "5×10⁻⁷");
}

/// Regression: plotters' log ticks stopped at about 1e-16, so the axis
/// of a vanishing gradient (norms down to 1e-30) had no labels below it.
#[test]
fn log_axis_labels_reach_tiny_values() {
    use plotters::coord::ranged1d::{BoldPoints, Ranged};
    let (lo, hi, _) = log_bounds(1e-30, 2.0);
    let axis = log_axis(lo, hi);
    let labels: Vec<String> = axis
        .key_points(BoldPoints(100))
        .iter()
        .map(|&v| log_tick_label(v, false))
        .collect();
    assert!(labels.contains(&"10⁻³⁰".to_string()), "{labels:?}");
    assert!(labels.contains(&"10⁰".to_string()), "{labels:?}");
    assert!(labels.len() <= 13, "{labels:?}");
    assert!(labels.iter().all(|l| !l.is_empty()), "{labels:?}");
    // Narrow ranges label 1, 2 and 5 × 10ᵏ.
    let axis = log_axis(0.8, 125.0);
    let labels: Vec<String> = axis
        .key_points(BoldPoints(100))
        .iter()
        .map(|&v| log_tick_label(v, true))
        .collect();
    assert!(
        labels.contains(&"2".to_string()) && labels.contains(&"50".to_string()),
        "{labels:?}"
    );
}
