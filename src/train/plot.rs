//! PNG plots of training runs.
//!
//! [`write_plots`] draws every figure for a set of compared runs:
//!
//! * `curves.png`: training and validation loss and accuracy per epoch;
//! * `gradient_norms.png`: the per-layer weight-gradient norm on a log scale,
//!   at initialisation and at the last logged step (the picture of vanishing
//!   gradients in deep sigmoid nets);
//! * `dead_saturated.png`: the fraction of dead and of saturated units per
//!   layer at the last logged step;
//! * `histograms_<label>.png`: per-layer pre-activation histograms of one
//!   run, first against last logged step.
//!
//! Diverged runs are drawn as far as they are finite: non-finite values are
//! skipped (the line is broken there) and counted in a footnote, never
//! passed to the plotting library.

use std::collections::HashSet;
use std::fmt::Display;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::report::{EpochLog, LayerDiagnostics, RunReport, HIST_MAX, HIST_MIN};
use crate::error::Error;

/// The font family name every text style uses; registered from the
/// embedded DejaVu Sans on first use.
const FONT: &str = "sans-serif";
/// DejaVu Sans, embedded so plots render the same everywhere.
static FONT_BYTES: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// Gradient norms at or below this are drawn at this value on the log axis.
const GRAD_NORM_FLOOR: f64 = 1e-30;
/// Most layers drawn in one histogram grid; deeper nets get evenly spaced layers.
const MAX_HIST_PANELS: usize = 24;

const TITLE_SIZE: i32 = 22;
const CAPTION_SIZE: i32 = 18;
const AXIS_DESC_SIZE: i32 = 16;
const LABEL_SIZE: i32 = 14;
const LEGEND_SIZE: i32 = 15;
const NOTE_SIZE: i32 = 14;

/// Tableau-10: distinguishable, and readable when lightened.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;
/// Drawing result: plotting errors as messages, mapped to [`Error::Io`] with
/// the file path by [`render`].
type Draw<T = ()> = Result<T, String>;

trait OrMsg<T> {
    fn or_msg(self, what: &str) -> Draw<T>;
}

impl<T, E: Display> OrMsg<T> for Result<T, E> {
    fn or_msg(self, what: &str) -> Draw<T> {
        self.map_err(|e| format!("{what}: {e}"))
    }
}

/// Writes every plot for the compared runs into `dir` (created if missing) and returns the paths written.
///
/// The files are `curves.png`, `gradient_norms.png`, `dead_saturated.png`
/// and one `histograms_<label>.png` per run, the label reduced to
/// `[A-Za-z0-9_-]` (other characters become `_`; duplicate labels get the
/// run's index appended). Runs without epochs or logged steps still get
/// every file, with "no data" panels where there is nothing to draw.
///
/// # Errors
///
/// [`Error::Config`] when `runs` is empty; [`Error::Io`] when the directory
/// cannot be created or a PNG cannot be drawn or written.
pub fn write_plots(runs: &[RunReport], dir: &Path) -> Result<Vec<PathBuf>, Error> {
    if runs.is_empty() {
        return Err(Error::Config("no runs to plot".into()));
    }
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        context: format!("creating plot directory {}", dir.display()),
        source,
    })?;

    let mut written = Vec::new();
    let curves = dir.join("curves.png");
    plot_curves(runs, &curves)?;
    written.push(curves);
    let norms = dir.join("gradient_norms.png");
    plot_gradient_norms(runs, &norms)?;
    written.push(norms);
    let dead = dir.join("dead_saturated.png");
    plot_dead_saturated(runs, &dead)?;
    written.push(dead);

    let mut used = HashSet::new();
    for (i, run) in runs.iter().enumerate() {
        let mut name = sanitize_label(&run.label);
        if name.is_empty() {
            name = format!("run{i}");
        }
        if !used.insert(name.clone()) {
            name = format!("{name}_{i}");
            used.insert(name.clone());
        }
        let path = dir.join(format!("histograms_{name}.png"));
        plot_histograms(run, &path)?;
        written.push(path);
    }
    Ok(written)
}

/// Draws `curves.png`: loss (left) and accuracy (right) per epoch, one colour
/// per run, training solid and validation dashed.
///
/// The loss axis is logarithmic when the finite losses span more than 100×.
/// Non-finite values are skipped and counted in a footnote.
///
/// # Errors
///
/// [`Error::Config`] when `runs` is empty; [`Error::Io`] when drawing or
/// writing the PNG fails.
pub fn plot_curves(runs: &[RunReport], path: &Path) -> Result<(), Error> {
    if runs.is_empty() {
        return Err(Error::Config("no runs to plot".into()));
    }
    render(path, (1300, 560), |root| {
        let root = root
            .titled("Training curves", (FONT, TITLE_SIZE))
            .or_msg("drawing the title")?;
        let mut legend = Vec::new();
        for (i, run) in runs.iter().enumerate() {
            if run.epochs.is_empty() {
                legend.push(LegendEntry::new(
                    format!("{} (no epochs)", run.label),
                    run_color(i),
                    Sample::Solid,
                ));
                continue;
            }
            legend.push(LegendEntry::new(
                format!("{} train", run.label),
                run_color(i),
                Sample::Solid,
            ));
            legend.push(LegendEntry::new(
                format!("{} val", run.label),
                run_color(i),
                Sample::Dashed,
            ));
        }
        let root = legend_strip(&root, &legend)?;

        let mut skipped = Vec::new();
        let mut loss_lines = Vec::new();
        let mut acc_lines = Vec::new();
        for (i, run) in runs.iter().enumerate() {
            let color = run_color(i);
            let x = |e: &EpochLog| e.epoch as f64 + 1.0;
            let pts = |f: fn(&EpochLog) -> f32| -> Vec<(f64, Option<f64>)> {
                run.epochs.iter().map(|e| (x(e), finite(f(e)))).collect()
            };
            let train_loss = pts(|e| e.train_loss);
            let val_loss = pts(|e| e.val_loss);
            let train_acc = pts(|e| e.train_accuracy);
            let val_acc = pts(|e| e.val_accuracy);
            let bad = [&train_loss, &val_loss, &train_acc, &val_acc]
                .iter()
                .map(|s| s.iter().filter(|p| p.1.is_none()).count())
                .sum::<usize>();
            if bad > 0 {
                skipped.push(format!("{} ({bad})", run.label));
            }
            loss_lines.push(Line::new(train_loss, color, false));
            loss_lines.push(Line::new(val_loss, color, true));
            acc_lines.push(Line::new(train_acc, color, false));
            acc_lines.push(Line::new(val_acc, color, true));
        }

        let root = if skipped.is_empty() {
            root
        } else {
            footnote(
                &root,
                &[format!(
                    "Non-finite values skipped (lines broken there): {}",
                    skipped.join(", ")
                )],
            )?
        };
        let panels = root.split_evenly((1, 2));
        let x_range = x_range_of(loss_lines.iter().chain(acc_lines.iter()));

        // Loss: log scale when the finite positive values span more than 100x.
        let loss_vals: Vec<f64> = values_of(&loss_lines).collect();
        let loss_panel = PanelSpec {
            caption: "Loss per epoch",
            x_desc: "epoch",
            y_desc: "loss",
            x_range: x_range.clone(),
        };
        match (x_range.as_ref(), min_max(loss_vals.iter().copied())) {
            (Some(_), Some((lo, hi))) if lo > 0.0 && hi / lo > 100.0 => {
                let (lo, hi, decades) = log_bounds(lo, hi);
                let few = decades <= 2;
                let fmt = move |v: &f64| log_tick_label(*v, few);
                draw_panel(
                    &panels[0],
                    &loss_panel,
                    (lo..hi).log_scale(),
                    log_label_hint(decades),
                    &fmt,
                    &loss_lines,
                )?;
            }
            (Some(_), Some((lo, hi))) => {
                let lo = if lo >= 0.0 { 0.0 } else { lo * 1.05 };
                let hi = if hi > lo { hi * 1.05 } else { lo + 1.0 };
                let fmt = |v: &f64| plain_tick_label(*v);
                draw_panel(&panels[0], &loss_panel, lo..hi, 8, &fmt, &loss_lines)?;
            }
            _ => no_data_panel(&panels[0], loss_panel.caption)?,
        }

        let acc_panel = PanelSpec {
            caption: "Accuracy per epoch",
            x_desc: "epoch",
            y_desc: "accuracy",
            x_range: x_range.clone(),
        };
        match (x_range.as_ref(), min_max(values_of(&acc_lines))) {
            (Some(_), Some((lo, hi))) => {
                let lo = lo.min(0.0);
                let hi = if hi <= 1.0 { 1.0 } else { hi * 1.05 };
                let fmt = |v: &f64| plain_tick_label(*v);
                draw_panel(&panels[1], &acc_panel, lo..hi, 11, &fmt, &acc_lines)?;
            }
            _ => no_data_panel(&panels[1], acc_panel.caption)?,
        }
        Ok(())
    })
}

/// Draws `gradient_norms.png`: the L2 norm of dL/dW per layer (1 = first
/// hidden layer, the last = output layer) on a log axis, for each run at the
/// first logged step (initialisation; light, dashed) and the last (solid).
///
/// Norms at or below 1e-30 (including exact zeros) are drawn at 1e-30 with
/// a × marker; non-finite norms are skipped. Both are counted in a footnote.
///
/// # Errors
///
/// [`Error::Config`] when `runs` is empty; [`Error::Io`] when drawing or
/// writing the PNG fails.
pub fn plot_gradient_norms(runs: &[RunReport], path: &Path) -> Result<(), Error> {
    if runs.is_empty() {
        return Err(Error::Config("no runs to plot".into()));
    }
    render(path, (1300, 700), |root| {
        let root = root
            .titled("Per-layer gradient norm (log scale)", (FONT, TITLE_SIZE))
            .or_msg("drawing the title")?;
        let mut legend = Vec::new();
        let mut lines = Vec::new();
        let mut clamped = 0usize;
        let mut non_finite = 0usize;
        let mut step_notes = Vec::new();
        for (i, run) in runs.iter().enumerate() {
            let color = run_color(i);
            let (Some(first), Some(last)) = (run.steps.first(), run.steps.last()) else {
                step_notes.push(format!("{}: no logged steps", run.label));
                continue;
            };
            step_notes.push(format!(
                "{}: step {} → {}",
                run.label, first.step, last.step
            ));
            for (step, end) in [(first, false), (last, true)] {
                let mut pts = Vec::new();
                let mut floor_pts = Vec::new();
                for (k, d) in step.layers.iter().enumerate() {
                    let x = k as f64 + 1.0;
                    let v = d.weight_grad_norm as f64;
                    if !v.is_finite() {
                        non_finite += 1;
                        pts.push((x, None));
                    } else if v <= GRAD_NORM_FLOOR {
                        clamped += 1;
                        pts.push((x, Some(GRAD_NORM_FLOOR)));
                        floor_pts.push((x, GRAD_NORM_FLOOR));
                    } else {
                        pts.push((x, Some(v)));
                    }
                }
                let mut line = if end {
                    Line::new(pts, color, false).marker(Marker::Filled)
                } else {
                    Line::new(pts, lighten(color, 0.45), true).marker(Marker::Hollow)
                };
                line.flagged = floor_pts;
                lines.push(line);
            }
            legend.push(LegendEntry::new(
                format!("{} (init)", run.label),
                lighten(color, 0.45),
                Sample::Dashed,
            ));
            legend.push(LegendEntry::new(
                format!("{} (end)", run.label),
                color,
                Sample::Solid,
            ));
        }
        let root = legend_strip(&root, &legend)?;
        let mut notes = vec![format!(
            "init = first logged step, end = last logged step ({}). Layer 1 = first hidden layer; the last layer is the output layer.",
            step_notes.join("; ")
        )];
        if clamped > 0 || non_finite > 0 {
            notes.push(format!(
                "Norms ≤ 1e-30 drawn at 1e-30 (× markers): {clamped}; non-finite norms skipped: {non_finite}."
            ));
        }
        let root = footnote(&root, &notes)?;

        let spec = PanelSpec {
            caption: "",
            x_desc: "layer",
            y_desc: "‖dL/dW‖",
            x_range: layer_x_range(&lines),
        };
        match (spec.x_range.is_some(), min_max(values_of(&lines))) {
            (true, Some((lo, hi))) => {
                let (lo, hi, decades) = log_bounds(lo, hi);
                let few = decades <= 2;
                let fmt = move |v: &f64| log_tick_label(*v, few);
                draw_panel(
                    &root,
                    &spec,
                    (lo..hi).log_scale(),
                    log_label_hint(decades),
                    &fmt,
                    &lines,
                )
            }
            _ => no_data_panel(&root, "no logged steps"),
        }
    })
}

/// Draws `dead_saturated.png`: the fraction of dead units (left) and of
/// saturated units (right) per layer at the last logged step, one
/// line with markers per run.
///
/// # Errors
///
/// [`Error::Config`] when `runs` is empty; [`Error::Io`] when drawing or
/// writing the PNG fails.
pub fn plot_dead_saturated(runs: &[RunReport], path: &Path) -> Result<(), Error> {
    if runs.is_empty() {
        return Err(Error::Config("no runs to plot".into()));
    }
    render(path, (1300, 560), |root| {
        let root = root
            .titled(
                "Dead and saturated units per layer (last logged step)",
                (FONT, TITLE_SIZE),
            )
            .or_msg("drawing the title")?;
        let mut legend = Vec::new();
        let mut dead = Vec::new();
        let mut saturated = Vec::new();
        let mut non_finite = 0usize;
        for (i, run) in runs.iter().enumerate() {
            let color = run_color(i);
            let Some(last) = run.steps.last() else {
                legend.push(LegendEntry::new(
                    format!("{} (no data)", run.label),
                    color,
                    Sample::Solid,
                ));
                continue;
            };
            legend.push(LegendEntry::new(
                format!("{} (step {})", run.label, last.step),
                color,
                Sample::Solid,
            ));
            let pts = |f: fn(&LayerDiagnostics) -> f32| {
                last.layers
                    .iter()
                    .enumerate()
                    .map(|(k, d)| (k as f64 + 1.0, finite(f(d))))
                    .collect::<Vec<_>>()
            };
            let d = pts(|d| d.dead_fraction);
            let s = pts(|d| d.saturated_fraction);
            non_finite += d.iter().chain(s.iter()).filter(|p| p.1.is_none()).count();
            dead.push(Line::new(d, color, false).marker(Marker::Filled));
            saturated.push(Line::new(s, color, false).marker(Marker::Filled));
        }
        let root = legend_strip(&root, &legend)?;
        let root = if non_finite > 0 {
            footnote(
                &root,
                &[format!("Non-finite fractions skipped: {non_finite}.")],
            )?
        } else {
            root
        };
        let panels = root.split_evenly((1, 2));
        let fmt = |v: &f64| plain_tick_label(*v);
        for (area, lines, caption, y_desc) in [
            (&panels[0], &dead, "Dead units", "dead fraction"),
            (
                &panels[1],
                &saturated,
                "Saturated units",
                "saturated fraction",
            ),
        ] {
            let spec = PanelSpec {
                caption,
                x_desc: "layer",
                y_desc,
                x_range: layer_x_range(lines),
            };
            let hi = min_max(values_of(lines)).map_or(1.0, |(_, hi)| hi.max(1.0));
            if spec.x_range.is_some() && values_of(lines).next().is_some() {
                draw_panel(area, &spec, -0.02..hi + 0.02, 11, &fmt, lines)?;
            } else {
                no_data_panel(area, caption)?;
            }
        }
        Ok(())
    })
}

/// Draws `histograms_<label>.png` for one run: a grid of small panels, one
/// per layer (evenly spaced layers when there are more than 24), each with
/// the pre-activation histogram over [`HIST_MIN`, `HIST_MAX`] at the first
/// logged step (light bars) and the last (dark outline), as fractions of
/// all the step's pre-activations.
///
/// Each panel's caption gives the layer (1 = first hidden) and the counts
/// below `HIST_MIN` and above `HIST_MAX`, first step → last step.
///
/// # Errors
///
/// [`Error::Io`] when drawing or writing the PNG fails.
pub fn plot_histograms(run: &RunReport, path: &Path) -> Result<(), Error> {
    render(path, (1400, 900), |root| {
        let (first, last) = match (run.steps.first(), run.steps.last()) {
            (Some(f), Some(l)) => (f, l),
            _ => {
                let title = format!("Pre-activation histograms: {}", run.label);
                return no_data_titled(root, &title, TITLE_SIZE);
            }
        };
        let n_layers = first.layers.len().max(last.layers.len());
        let same = run.steps.len() == 1;
        let title = if same {
            format!(
                "Pre-activation histograms: {} (step {})",
                run.label, last.step
            )
        } else {
            format!(
                "Pre-activation histograms: {} (light: step {}, dark: step {})",
                run.label, first.step, last.step
            )
        };
        if n_layers == 0 {
            return no_data_titled(root, &title, TITLE_SIZE);
        }
        let root = root
            .titled(&title, (FONT, TITLE_SIZE))
            .or_msg("drawing the title")?;
        let light = lighten(PALETTE[0], 0.55);
        let dark = RGBColor(20, 40, 110);
        let mut legend = vec![LegendEntry::new(
            format!("step {} (first logged)", first.step),
            light,
            Sample::Filled,
        )];
        if !same {
            legend.push(LegendEntry::new(
                format!("step {} (last logged)", last.step),
                dark,
                Sample::Solid,
            ));
        }
        let root = legend_strip(&root, &legend)?;
        let chosen = pick_layers(n_layers, MAX_HIST_PANELS);
        let mut notes = vec![format!(
            "Fraction of the batch's pre-activations per bin over [{HIST_MIN}, {HIST_MAX}]; \
             captions count values below {HIST_MIN} and above {HIST_MAX}{}.",
            if same { "" } else { " (first → last step)" }
        )];
        if chosen.len() < n_layers {
            notes.push(format!(
                "Showing {} of {} layers, evenly spaced.",
                chosen.len(),
                n_layers
            ));
        }
        let root = footnote(&root, &notes)?;

        let n = chosen.len();
        let mut cols = ((n as f64 * 14.0 / 9.0).sqrt().ceil() as usize).clamp(1, 7);
        let mut rows = n.div_ceil(cols);
        // Fewer columns when that fills the rows better (20 layers: 5 x 4, not 6 x 4).
        while cols > 1 && (cols - 1) * rows >= n {
            cols -= 1;
            rows = n.div_ceil(cols);
        }
        let cells = root.split_evenly((rows, cols));
        for (cell, &layer) in cells.iter().zip(chosen.iter()) {
            let h_first = first.layers.get(layer).map(|d| d.histogram.as_slice());
            let h_last = last.layers.get(layer).map(|d| d.histogram.as_slice());
            histogram_panel(
                cell,
                layer,
                if same { None } else { h_first },
                h_last,
                light,
                dark,
            )?;
        }
        Ok(())
    })
}

/// Replaces every character outside `[A-Za-z0-9_-]` with `_`.
fn sanitize_label(label: &str) -> String {
    label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Registers the embedded font once; later calls return the first outcome.
fn ensure_font() -> Draw {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES)
                .map_err(|_| "the embedded font assets/DejaVuSans.ttf could not be parsed".into())
        })
        .clone()
}

fn io_error(path: &Path, message: impl Display) -> Error {
    Error::Io {
        context: format!("writing plot {}", path.display()),
        source: std::io::Error::other(message.to_string()),
    }
}

/// Creates a white PNG of `size`, lets `draw` fill it and writes it.
fn render(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&Area<'_>) -> Draw,
) -> Result<(), Error> {
    ensure_font().map_err(|m| io_error(path, m))?;
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE)
        .or_msg("filling the background")
        .map_err(|m| io_error(path, m))?;
    draw(&root).map_err(|m| io_error(path, m))?;
    root.present()
        .or_msg("encoding the PNG")
        .map_err(|m| io_error(path, m))
}

fn run_color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Mixes `c` toward white by `t` (0 = unchanged, 1 = white).
fn lighten(c: RGBColor, t: f64) -> RGBColor {
    let mix = |v: u8| (f64::from(v) + (255.0 - f64::from(v)) * t).round() as u8;
    RGBColor(mix(c.0), mix(c.1), mix(c.2))
}

fn finite(v: f32) -> Option<f64> {
    v.is_finite().then_some(f64::from(v))
}

fn min_max(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .filter(|v| v.is_finite())
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

/// A polyline with optional markers; `None` values break the line.
struct Line {
    points: Vec<(f64, Option<f64>)>,
    color: RGBColor,
    dashed: bool,
    marker: Marker,
    /// Points drawn with an extra × marker (clamped to a floor).
    flagged: Vec<(f64, f64)>,
}

#[derive(Clone, Copy, PartialEq)]
enum Marker {
    Small,
    Filled,
    Hollow,
}

impl Line {
    fn new(points: Vec<(f64, Option<f64>)>, color: RGBColor, dashed: bool) -> Self {
        Line {
            points,
            color,
            dashed,
            marker: Marker::Small,
            flagged: Vec::new(),
        }
    }

    fn marker(mut self, marker: Marker) -> Self {
        self.marker = marker;
        self
    }
}

fn values_of(lines: &[Line]) -> impl Iterator<Item = f64> + '_ {
    lines
        .iter()
        .flat_map(|l| l.points.iter().filter_map(|p| p.1))
        .filter(|v| v.is_finite())
}

/// The x range covering every point of `lines`, padded by half a unit when
/// there is a single x value.
fn x_range_of<'l>(lines: impl Iterator<Item = &'l Line>) -> Option<Range<f64>> {
    let (lo, hi) = min_max(lines.flat_map(|l| l.points.iter().map(|p| p.0)))?;
    Some(if hi - lo < 1.0 {
        lo - 0.5..hi + 0.5
    } else {
        lo..hi
    })
}

/// Layer axes: half a unit of room on each side of layers 1..=n.
fn layer_x_range(lines: &[Line]) -> Option<Range<f64>> {
    let (lo, hi) = min_max(lines.iter().flat_map(|l| l.points.iter().map(|p| p.0)))?;
    Some(lo - 0.5..hi + 0.5)
}

/// Decade-aligned bounds around `[lo, hi]` (both > 0) and the number of decades.
fn log_bounds(lo: f64, hi: f64) -> (f64, f64, u32) {
    let a = (lo.log10() + 1e-9).floor();
    let mut b = (hi.log10() - 1e-9).ceil();
    if b <= a {
        b = a + 1.0;
    }
    // A little room beyond the outer decades so edge points and the end
    // labels are not drawn on the frame.
    (10f64.powf(a) / 1.25, 10f64.powf(b) * 1.25, (b - a) as u32)
}

/// The key-point hint that makes `LogCoord` give 1..9 × 10^k ticks for
/// narrow ranges and only powers of ten (at most 12) for wide ones.
fn log_label_hint(decades: u32) -> usize {
    if decades <= 2 {
        50
    } else {
        (decades as usize).min(12)
    }
}

fn superscript(n: i32) -> String {
    n.to_string()
        .chars()
        .map(|c| match c {
            '-' => '⁻',
            '0' => '⁰',
            '1' => '¹',
            '2' => '²',
            '3' => '³',
            '4' => '⁴',
            '5' => '⁵',
            '6' => '⁶',
            '7' => '⁷',
            '8' => '⁸',
            _ => '⁹',
        })
        .collect()
}

/// Labels powers of ten as `10ᵏ`; for narrow ranges (`few`) also 2 and 5 ×
/// 10ᵏ, in plain decimals where short. Other ticks get no label.
fn log_tick_label(v: f64, few: bool) -> String {
    if !(v.is_finite() && v > 0.0) {
        return String::new();
    }
    let mut k = (v.log10() + 1e-9).floor();
    let mut m = v / 10f64.powf(k);
    if m >= 9.9999 {
        k += 1.0;
        m /= 10.0;
    }
    let mr = m.round();
    if (m - mr).abs() > 1e-4 {
        return String::new();
    }
    let ki = k as i32;
    let plain = |m: f64| {
        if ki >= 0 {
            format!("{}", (m * 10f64.powi(ki)).round() as i64)
        } else {
            format!("{:.*}", (-ki) as usize, m * 10f64.powi(ki))
        }
    };
    if !few {
        return if mr == 1.0 {
            format!("10{}", superscript(ki))
        } else {
            String::new()
        };
    }
    if !(mr == 1.0 || mr == 2.0 || mr == 5.0) {
        return String::new();
    }
    if (-3..=3).contains(&ki) {
        plain(mr)
    } else if mr == 1.0 {
        format!("10{}", superscript(ki))
    } else {
        format!("{mr}×10{}", superscript(ki))
    }
}

/// Short decimal tick labels: no trailing zeros.
fn plain_tick_label(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

/// Labels only (near-)integer x values: layers and epochs.
fn integer_tick_label(v: f64) -> String {
    if (v - v.round()).abs() < 1e-6 {
        format!("{}", v.round() as i64)
    } else {
        String::new()
    }
}

struct PanelSpec<'s> {
    caption: &'s str,
    x_desc: &'s str,
    y_desc: &'s str,
    x_range: Option<Range<f64>>,
}

/// One chart: mesh, axis descriptions and `lines`, over `spec.x_range` and `y`.
fn draw_panel<Y>(
    area: &Area<'_>,
    spec: &PanelSpec<'_>,
    y: Y,
    y_labels: usize,
    y_fmt: &dyn Fn(&f64) -> String,
    lines: &[Line],
) -> Draw
where
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let Some(x_range) = spec.x_range.clone() else {
        return no_data_panel(area, spec.caption);
    };
    let span = x_range.end - x_range.start;
    let x_labels = (span.round() as usize + 1).clamp(2, 25);
    let mut builder = ChartBuilder::on(area);
    builder
        .margin(12)
        .margin_right(24)
        .x_label_area_size(50)
        .y_label_area_size(78);
    if !spec.caption.is_empty() {
        builder.caption(spec.caption, (FONT, CAPTION_SIZE));
    }
    let mut chart = builder
        .build_cartesian_2d(x_range, y)
        .or_msg("building a chart")?;
    let x_fmt = |v: &f64| integer_tick_label(*v);
    chart
        .configure_mesh()
        .x_desc(spec.x_desc)
        .y_desc(spec.y_desc)
        .x_labels(x_labels)
        .y_labels(y_labels)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(y_fmt)
        .label_style((FONT, LABEL_SIZE))
        .axis_desc_style((FONT, AXIS_DESC_SIZE))
        .bold_line_style(RGBColor(210, 210, 210))
        .light_line_style(RGBColor(242, 242, 242))
        .max_light_lines(4)
        .draw()
        .or_msg("drawing the axes")?;

    for line in lines {
        let style = line.color.stroke_width(2);
        for seg in segments(&line.points) {
            if seg.len() < 2 {
                continue;
            }
            if line.dashed {
                chart
                    .draw_series(DashedLineSeries::new(seg, 10, 6, style))
                    .or_msg("drawing a dashed line")?;
            } else {
                chart
                    .draw_series(LineSeries::new(seg, style))
                    .or_msg("drawing a line")?;
            }
        }
        let pts: Vec<(f64, f64)> = line
            .points
            .iter()
            .filter_map(|&(x, y)| y.map(|y| (x, y)))
            .collect();
        let (size, marker_style) = match line.marker {
            Marker::Small => (3, line.color.filled()),
            Marker::Filled => (4, line.color.filled()),
            Marker::Hollow => (4, line.color.stroke_width(2)),
        };
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, size, marker_style)))
            .or_msg("drawing markers")?;
        chart
            .draw_series(
                line.flagged
                    .iter()
                    .map(|&p| Cross::new(p, 9, BLACK.stroke_width(2))),
            )
            .or_msg("drawing markers")?;
    }
    Ok(())
}

/// Splits a polyline at missing values.
fn segments(points: &[(f64, Option<f64>)]) -> Vec<Vec<(f64, f64)>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    for &(x, y) in points {
        match y {
            Some(y) if y.is_finite() && x.is_finite() => cur.push((x, y)),
            _ => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// A framed panel with its caption and "no data" in the middle.
fn no_data_panel(area: &Area<'_>, caption: &str) -> Draw {
    no_data_titled(area, caption, CAPTION_SIZE)
}

/// [`no_data_panel`] with a caption of `size` pixels.
fn no_data_titled(area: &Area<'_>, caption: &str, size: i32) -> Draw {
    let (w, h) = area.dim_in_pixel();
    let inner = if caption.is_empty() {
        area.clone()
    } else {
        area.titled(caption, (FONT, size))
            .or_msg("drawing a caption")?
    };
    let (iw, ih) = inner.dim_in_pixel();
    if w > 20 && h > 20 && iw > 20 && ih > 20 {
        inner
            .draw(&Rectangle::new(
                [(10, 4), (iw as i32 - 10, ih as i32 - 10)],
                RGBColor(200, 200, 200).stroke_width(1),
            ))
            .or_msg("drawing a frame")?;
    }
    let style = TextStyle::from((FONT, CAPTION_SIZE).into_font())
        .color(&RGBColor(120, 120, 120))
        .pos(Pos::new(HPos::Center, VPos::Center));
    inner
        .draw_text("no data", &style, (iw as i32 / 2, ih as i32 / 2))
        .or_msg("drawing text")
}

#[derive(Clone, Copy)]
enum Sample {
    Solid,
    Dashed,
    Filled,
}

struct LegendEntry {
    label: String,
    color: RGBColor,
    sample: Sample,
}

impl LegendEntry {
    fn new(label: String, color: RGBColor, sample: Sample) -> Self {
        LegendEntry {
            label,
            color,
            sample,
        }
    }
}

/// Draws `entries` as centred rows across the top of `area` (outside every
/// chart, so the legend never hides data) and returns the area below.
fn legend_strip<'a>(area: &Area<'a>, entries: &[LegendEntry]) -> Draw<Area<'a>> {
    if entries.is_empty() {
        return Ok(area.clone());
    }
    const SAMPLE_W: i32 = 36;
    const GAP: i32 = 8;
    const SPACING: i32 = 28;
    const ROW_H: i32 = 24;
    let style = TextStyle::from((FONT, LEGEND_SIZE).into_font())
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    let (w, _) = area.dim_in_pixel();
    let max_w = w as i32 - 40;
    let mut rows: Vec<Vec<(usize, i32)>> = vec![Vec::new()];
    let mut row_w = 0;
    for (i, e) in entries.iter().enumerate() {
        let (tw, _) = area
            .estimate_text_size(&e.label, &style)
            .or_msg("measuring text")?;
        let ew = SAMPLE_W + GAP + tw as i32;
        let needed = if row_w == 0 { ew } else { row_w + SPACING + ew };
        if needed > max_w && row_w > 0 {
            rows.push(Vec::new());
            row_w = ew;
        } else {
            row_w = needed;
        }
        if let Some(r) = rows.last_mut() {
            r.push((i, ew));
        }
    }
    let height = rows.len() as i32 * ROW_H + 8;
    let (strip, rest) = area.split_vertically(height);
    for (r, row) in rows.iter().enumerate() {
        let total: i32 =
            row.iter().map(|&(_, ew)| ew).sum::<i32>() + SPACING * (row.len() as i32 - 1).max(0);
        let mut x = (w as i32 - total) / 2;
        let y = r as i32 * ROW_H + ROW_H / 2 + 2;
        for &(i, ew) in row {
            let e = &entries[i];
            match e.sample {
                Sample::Solid => strip
                    .draw(&PathElement::new(
                        vec![(x, y), (x + SAMPLE_W, y)],
                        e.color.stroke_width(3),
                    ))
                    .or_msg("drawing the legend")?,
                Sample::Dashed => {
                    for k in 0..3 {
                        let x0 = x + k * 14;
                        strip
                            .draw(&PathElement::new(
                                vec![(x0, y), (x0 + 8, y)],
                                e.color.stroke_width(3),
                            ))
                            .or_msg("drawing the legend")?;
                    }
                }
                Sample::Filled => strip
                    .draw(&Rectangle::new(
                        [(x, y - 7), (x + SAMPLE_W, y + 7)],
                        e.color.filled(),
                    ))
                    .or_msg("drawing the legend")?,
            }
            strip
                .draw_text(&e.label, &style, (x + SAMPLE_W + GAP, y))
                .or_msg("drawing the legend")?;
            x += ew + SPACING;
        }
    }
    Ok(rest)
}

/// Draws `lines` of small grey text at the bottom of `area` and returns the
/// area above.
fn footnote<'a>(area: &Area<'a>, lines: &[String]) -> Draw<Area<'a>> {
    if lines.is_empty() {
        return Ok(area.clone());
    }
    const LINE_H: i32 = 20;
    let (_, h) = area.dim_in_pixel();
    let height = lines.len() as i32 * LINE_H + 8;
    let (rest, strip) = area.split_vertically(h as i32 - height);
    let style = TextStyle::from((FONT, NOTE_SIZE).into_font())
        .color(&RGBColor(70, 70, 70))
        .pos(Pos::new(HPos::Left, VPos::Center));
    for (i, line) in lines.iter().enumerate() {
        strip
            .draw_text(line, &style, (16, i as i32 * LINE_H + LINE_H / 2 + 2))
            .or_msg("drawing a note")?;
    }
    Ok(rest)
}

/// Up to `max` layer indices out of `0..n`, evenly spaced, always including
/// the first and the last.
fn pick_layers(n: usize, max: usize) -> Vec<usize> {
    if n <= max || max < 2 {
        return (0..n.min(max.max(1))).collect();
    }
    let mut out: Vec<usize> = (0..max)
        .map(|i| ((i as f64) * (n - 1) as f64 / (max - 1) as f64).round() as usize)
        .collect();
    out.dedup();
    out
}

/// A histogram split into (underflow, in-range bins, overflow); `None` when
/// it has fewer than three entries.
fn split_hist(h: &[u32]) -> Option<(u32, &[u32], u32)> {
    if h.len() < 3 {
        return None;
    }
    Some((h[0], &h[1..h.len() - 1], h[h.len() - 1]))
}

/// Bin edges and fractions of the whole count (out-of-range included).
fn hist_fractions(bins: &[u32], under: u32, over: u32) -> Option<Vec<(f64, f64, f64)>> {
    let total: f64 =
        bins.iter().map(|&b| f64::from(b)).sum::<f64>() + f64::from(under) + f64::from(over);
    if total <= 0.0 || bins.is_empty() {
        return None;
    }
    let width = f64::from(HIST_MAX - HIST_MIN) / bins.len() as f64;
    Some(
        bins.iter()
            .enumerate()
            .map(|(k, &b)| {
                let x0 = f64::from(HIST_MIN) + k as f64 * width;
                (x0, x0 + width, f64::from(b) / total)
            })
            .collect(),
    )
}

/// One small histogram panel: `first` as light bars, `last` as a dark outline.
fn histogram_panel(
    area: &Area<'_>,
    layer: usize,
    first: Option<&[u32]>,
    last: Option<&[u32]>,
    light: RGBColor,
    dark: RGBColor,
) -> Draw {
    let first = first.and_then(split_hist);
    let last = last.and_then(split_hist);
    let count = |h: Option<(u32, &[u32], u32)>, under: bool| match h {
        Some((u, _, o)) => (if under { u } else { o }).to_string(),
        None => "–".to_string(),
    };
    let pair = |under: bool| {
        if first.is_some() {
            format!("{}→{}", count(first, under), count(last, under))
        } else {
            count(last, under)
        }
    };
    let caption = format!(
        "layer {}  <{}: {}  >{}: {}",
        layer + 1,
        HIST_MIN,
        pair(true),
        HIST_MAX,
        pair(false)
    );
    let f_first = first.and_then(|(u, b, o)| hist_fractions(b, u, o));
    let f_last = last.and_then(|(u, b, o)| hist_fractions(b, u, o));
    let y_max = f_first
        .iter()
        .chain(f_last.iter())
        .flat_map(|v| v.iter().map(|b| b.2))
        .fold(0.0f64, f64::max);
    if f_first.is_none() && f_last.is_none() || y_max <= 0.0 {
        return no_data_panel(area, &caption);
    }
    let y_top = y_max * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption(&caption, (FONT, LABEL_SIZE))
        .margin(6)
        .margin_right(12)
        .x_label_area_size(24)
        .y_label_area_size(44)
        .build_cartesian_2d(f64::from(HIST_MIN)..f64::from(HIST_MAX), 0.0..y_top)
        .or_msg("building a histogram chart")?;
    let x_fmt = |v: &f64| integer_tick_label(*v);
    let y_fmt = |v: &f64| plain_tick_label(*v);
    chart
        .configure_mesh()
        .x_labels(5)
        .y_labels(3)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .label_style((FONT, 13))
        .bold_line_style(RGBColor(225, 225, 225))
        .light_line_style(TRANSPARENT)
        .draw()
        .or_msg("drawing histogram axes")?;
    if let Some(bars) = &f_first {
        chart
            .draw_series(
                bars.iter()
                    .filter(|b| b.2 > 0.0)
                    .map(|&(x0, x1, y)| Rectangle::new([(x0, 0.0), (x1, y)], light.filled())),
            )
            .or_msg("drawing histogram bars")?;
    }
    if let Some(bars) = &f_last {
        let mut outline = Vec::with_capacity(bars.len() * 2 + 2);
        if let Some(&(x0, _, _)) = bars.first() {
            outline.push((x0, 0.0));
        }
        for &(x0, x1, y) in bars {
            outline.push((x0, y));
            outline.push((x1, y));
        }
        if let Some(&(_, x1, _)) = bars.last() {
            outline.push((x1, 0.0));
        }
        chart
            .draw_series(LineSeries::new(outline, dark.stroke_width(2)))
            .or_msg("drawing a histogram outline")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
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
                    val_loss: if sigmoid {
                        2.301
                    } else {
                        2.1 * 0.45f32.powf(t)
                    },
                    val_accuracy: if sigmoid { 0.1 } else { 0.45 + 0.1 * t },
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

    #[test]
    fn log_tick_labels() {
        assert_eq!(log_tick_label(1e-5, false), "10⁻⁵");
        assert_eq!(log_tick_label(1.0, false), "10⁰");
        assert_eq!(log_tick_label(2e-5, false), "");
        assert_eq!(log_tick_label(0.02, true), "0.02");
        assert_eq!(log_tick_label(3.0, true), "");
        assert_eq!(log_tick_label(5e-7, true), "5×10⁻⁷");
    }
}
