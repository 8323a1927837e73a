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

use plotters::coord::combinators::{LogCoord, WithKeyPoints};
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
                    log_axis(lo, hi),
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
                    log_axis(lo, hi),
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

/// One line of a [`Panel`].
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The legend label. Series with the same label, in any panel of a
    /// figure, share one colour and one legend entry; an empty label gets a
    /// colour of its own and no legend entry.
    pub label: String,
    /// `(x, y)` points, joined in this order. Points with a non-finite x or
    /// y, a y ≤ 0 on a log axis, or a y outside the panel's fixed
    /// [`Panel::y_range`] are skipped (the line is broken there) and counted
    /// in a footnote.
    pub points: Vec<(f64, f64)>,
    /// Draw the line dashed instead of solid.
    pub dashed: bool,
    /// Draw a dot on every point (isolated points always get one).
    pub markers: bool,
}

/// One chart in a figure drawn by [`plot_panels`].
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    /// The caption above the chart.
    pub title: String,
    /// The x-axis description.
    pub x_label: String,
    /// The y-axis description.
    pub y_label: String,
    /// A logarithmic y axis, spanning whole decades around the positive
    /// values and labelled like the other log plots (`10ᵏ`, or 1, 2 and
    /// 5 × 10ᵏ for narrow ranges).
    pub log_y: bool,
    /// Fixed y range (linear axes only), e.g. `Some((0.0, 1.0))` for fractions.
    ///
    /// Ignored when [`Panel::log_y`] is set; `None` fits the axis to the data
    /// (from 0 when the values are non-negative and the smallest is at most
    /// half the largest).
    pub y_range: Option<(f64, f64)>,
    /// The lines, drawn in this order.
    pub series: Vec<Series>,
}

/// Width of one panel column in [`plot_panels`].
const PANEL_W: u32 = 600;
/// Height of one panel row in [`plot_panels`].
const PANEL_H: u32 = 480;
/// Narrowest [`plot_panels`] figure.
const MIN_FIGURE_W: u32 = 1000;
/// Most panels side by side in [`plot_panels`].
const MAX_PANEL_COLS: usize = 3;
/// Height of one [`footnote`] line.
const NOTE_LINE_H: i32 = 20;

/// Draws `panels` side by side (up to 3 per row, more rows as needed) under one `title`,
/// with one shared legend strip, an optional footnote and writes a PNG to `path`.
///
/// Series with the same label in several panels share one colour and one
/// legend entry (its sample dashed and dotted like the label's first
/// series); colours follow the order labels first appear. `notes` are
/// printed under the charts, one line each (wrapped when too long), followed
/// by a count of skipped points per panel and series when there are any (see
/// [`Series::points`]). A panel without drawable points is drawn as a framed
/// "no data" box.
///
/// The figure is 600 px wide per panel column (at least 1000 px) and 480 px
/// per row, plus the title, legend and footnote. The parent folder of `path`
/// is created if missing.
///
/// The x axis is labelled at every integer when all x values are integers
/// spanning at most 24; otherwise with about 8 round values. Large and tiny
/// values are shortened (`20k`, `1.5M`, `2×10⁻⁴`).
///
/// # Example
///
/// ```no_run
/// use std::path::Path;
/// use fusedmlp::train::plot::{plot_panels, Panel, Series};
///
/// let loss = |label: &str, scale: f64| Series {
///     label: label.into(),
///     points: (1..=10).map(|e| (e as f64, scale / e as f64)).collect(),
///     dashed: false,
///     markers: true,
/// };
/// let panel = Panel {
///     title: "Validation loss".into(),
///     x_label: "epoch".into(),
///     y_label: "loss".into(),
///     log_y: true,
///     y_range: None,
///     series: vec![loss("relu", 2.0), loss("sigmoid", 2.3)],
/// };
/// plot_panels(
///     "Activation comparison",
///     &[panel],
///     &["batch 256, lr 0.01".to_string()],
///     Path::new("plots/loss.png"),
/// )?;
/// # Ok::<(), fusedmlp::error::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::Config`] when `panels` is empty or a linear panel's `y_range` is
/// not an increasing pair of finite numbers; [`Error::Io`] naming `path` when
/// the folder cannot be created or drawing or writing the PNG fails.
pub fn plot_panels(
    title: &str,
    panels: &[Panel],
    notes: &[String],
    path: &Path,
) -> Result<(), Error> {
    if panels.is_empty() {
        return Err(Error::Config("no panels to plot".into()));
    }
    for p in panels {
        if let (false, Some((lo, hi))) = (p.log_y, p.y_range) {
            if !(lo.is_finite() && hi.is_finite() && lo < hi) {
                return Err(Error::Config(format!(
                    "panel '{}': y_range ({lo}, {hi}) is not an increasing pair of finite numbers",
                    p.title
                )));
            }
        }
    }
    create_parent(path)?;
    ensure_font().map_err(|m| io_error(path, m))?;

    let cols = panels.len().min(MAX_PANEL_COLS);
    let rows = panels.len().div_ceil(cols);
    let width = (PANEL_W * cols as u32).max(MIN_FIGURE_W);

    // One colour per label, in order of first appearance.
    let mut labelled: Vec<(&str, RGBColor)> = Vec::new();
    let mut legend = Vec::new();
    let mut next_color = 0;
    let mut prepared = Vec::with_capacity(panels.len());
    let mut kinds = SkipKinds::default();
    for panel in panels {
        let mut colors = Vec::with_capacity(panel.series.len());
        for s in &panel.series {
            let known = labelled.iter().find(|(l, _)| *l == s.label);
            let color = match known {
                Some(&(_, c)) if !s.label.is_empty() => c,
                _ => {
                    let c = run_color(next_color);
                    next_color += 1;
                    if !s.label.is_empty() {
                        labelled.push((&s.label, c));
                        let sample = if s.dashed {
                            Sample::Dashed
                        } else {
                            Sample::Solid
                        };
                        legend.push(
                            LegendEntry::new(s.label.clone(), c, sample).with_marker(s.markers),
                        );
                    }
                    c
                }
            };
            colors.push(color);
        }
        prepared.push(prepare_panel(panel, &colors, &mut kinds));
    }

    let text_w = width as i32 - 32;
    let mut note_lines = Vec::new();
    for note in notes {
        note_lines.extend(wrap_text(note, NOTE_SIZE, text_w).map_err(|m| io_error(path, m))?);
    }
    let skipped: Vec<String> = prepared
        .iter()
        .enumerate()
        .filter(|(_, p)| !p.skipped.is_empty())
        .map(|(i, p)| {
            let name = if p.panel.title.is_empty() {
                format!("panel {}", i + 1)
            } else {
                p.panel.title.clone()
            };
            let counts: Vec<String> = p
                .skipped
                .iter()
                .map(|(label, n)| {
                    if label.is_empty() {
                        format!("unlabelled ({n})")
                    } else {
                        format!("{label} ({n})")
                    }
                })
                .collect();
            format!("{name}: {}", counts.join(", "))
        })
        .collect();
    if !skipped.is_empty() {
        let note = format!(
            "Points skipped ({}; lines broken there): {}.",
            kinds.describe(),
            skipped.join("; ")
        );
        note_lines.extend(wrap_text(&note, NOTE_SIZE, text_w).map_err(|m| io_error(path, m))?);
    }

    let title_h = title_height(title).map_err(|m| io_error(path, m))?;
    let legend_h = legend_height(&legend, width as i32).map_err(|m| io_error(path, m))?;
    let foot_h = footnote_height(&note_lines);
    let height = rows as u32 * PANEL_H + title_h + (legend_h + foot_h) as u32 + 8;

    render(path, (width, height), |root| {
        let root = if title.is_empty() {
            root.clone()
        } else {
            root.titled(title, (FONT, TITLE_SIZE))
                .or_msg("drawing the title")?
        };
        let root = legend_strip(&root, &legend)?;
        let root = footnote(&root, &note_lines)?;
        let cells = root.split_evenly((rows, cols));
        for (cell, p) in cells.iter().zip(prepared.iter()) {
            draw_prepared_panel(cell, p)?;
        }
        Ok(())
    })
}

/// Which kinds of points [`prepare_panel`] skipped, for the footnote.
#[derive(Default)]
struct SkipKinds {
    non_finite: bool,
    non_positive: bool,
    out_of_range: bool,
}

impl SkipKinds {
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.non_finite {
            parts.push("non-finite");
        }
        if self.non_positive {
            parts.push("≤ 0 on a log axis");
        }
        if self.out_of_range {
            parts.push("outside the fixed y range");
        }
        parts.join(", ")
    }
}

/// A [`Panel`] turned into [`Line`]s, with the points it cannot draw removed.
struct PreparedPanel<'p> {
    panel: &'p Panel,
    lines: Vec<Line>,
    /// (series label, points skipped), for series that lost points.
    skipped: Vec<(&'p str, usize)>,
}

fn prepare_panel<'p>(
    panel: &'p Panel,
    colors: &[RGBColor],
    kinds: &mut SkipKinds,
) -> PreparedPanel<'p> {
    let fixed = if panel.log_y { None } else { panel.y_range };
    let mut lines = Vec::with_capacity(panel.series.len());
    let mut skipped = Vec::new();
    for (s, &color) in panel.series.iter().zip(colors) {
        let mut bad = 0;
        let points = s
            .points
            .iter()
            .map(|&(x, y)| {
                let ok = if !(x.is_finite() && y.is_finite()) {
                    kinds.non_finite = true;
                    false
                } else if panel.log_y && y <= 0.0 {
                    kinds.non_positive = true;
                    false
                } else if fixed.is_some_and(|(lo, hi)| y < lo || y > hi) {
                    kinds.out_of_range = true;
                    false
                } else {
                    true
                };
                if !ok {
                    bad += 1;
                }
                (x, ok.then_some(y))
            })
            .collect();
        if bad > 0 {
            skipped.push((s.label.as_str(), bad));
        }
        let marker = if s.markers {
            Marker::Filled
        } else {
            Marker::None
        };
        lines.push(Line::new(points, color, s.dashed).marker(marker));
    }
    PreparedPanel {
        panel,
        lines,
        skipped,
    }
}

/// Draws one panel of [`plot_panels`]: chooses the axes and draws the lines,
/// or a "no data" box when nothing is drawable.
fn draw_prepared_panel(area: &Area<'_>, p: &PreparedPanel<'_>) -> Draw {
    let panel = p.panel;
    let drawable = || {
        p.lines
            .iter()
            .flat_map(|l| l.points.iter().filter_map(|&(x, y)| y.map(|_| x)))
    };
    let Some((x_lo, x_hi)) = min_max(drawable()) else {
        return no_data_panel(area, &panel.title);
    };
    let Some((y_lo, y_hi)) = min_max(values_of(&p.lines)) else {
        return no_data_panel(area, &panel.title);
    };

    let span = x_hi - x_lo;
    let integer_x = span <= 24.0 && drawable().all(|x| (x - x.round()).abs() < 1e-9);
    let pad = if span > 0.0 {
        span * 0.03
    } else if integer_x || x_lo == 0.0 {
        0.5
    } else {
        x_lo.abs() * 0.05
    };
    let (x_start, x_end) = (x_lo - pad, x_hi + pad);
    let (w, _) = area.dim_in_pixel();
    let int_fmt = |v: &f64| integer_tick_label(*v);
    let n_plain = ((w as usize).saturating_sub(110) / 70).clamp(3, 10);
    let plain_fmt = linear_tick_formatter(x_start, x_end, n_plain);
    let x_axis = if integer_x {
        XAxis {
            labels: (span.round() as usize + 1).clamp(2, 25),
            fmt: &int_fmt,
        }
    } else {
        XAxis {
            labels: n_plain,
            fmt: &plain_fmt,
        }
    };
    let spec = PanelSpec {
        caption: &panel.title,
        x_desc: &panel.x_label,
        y_desc: &panel.y_label,
        x_range: Some(x_start..x_end),
    };

    if panel.log_y {
        let (lo, hi, decades) = log_bounds(y_lo, y_hi);
        let few = decades <= 2;
        let fmt = move |v: &f64| log_tick_label(*v, few);
        return draw_chart(
            area,
            &spec,
            &x_axis,
            log_axis(lo, hi),
            log_label_hint(decades),
            &fmt,
            &p.lines,
        );
    }
    let (lo, hi) = match panel.y_range {
        // A little room so points on the limits are not drawn on the frame.
        Some((lo, hi)) => (lo - (hi - lo) * 0.02, hi + (hi - lo) * 0.02),
        None => auto_linear_range(y_lo, y_hi),
    };
    let fmt = linear_tick_formatter(lo, hi, 10);
    draw_chart(area, &spec, &x_axis, lo..hi, 10, &fmt, &p.lines)
}

/// A linear axis range around finite `[lo, hi]`: from 0 when the values
/// are on one side of 0 and not far from it, padded by 5% elsewhere.
fn auto_linear_range(lo: f64, hi: f64) -> (f64, f64) {
    if hi <= lo {
        let d = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        return (lo - d, hi + d);
    }
    let pad = (hi - lo) * 0.05;
    if lo >= 0.0 && lo <= 0.5 * hi {
        (0.0, hi + pad)
    } else if hi <= 0.0 && hi >= 0.5 * lo {
        (lo - pad, 0.0)
    } else {
        (lo - pad, hi + pad)
    }
}

/// Creates the folder `path` will be written into.
fn create_parent(path: &Path) -> Result<(), Error> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => {
            std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                context: format!("creating plot directory {}", dir.display()),
                source,
            })
        }
        _ => Ok(()),
    }
}

/// The height `titled` takes for `title` at [`TITLE_SIZE`] (0 when empty).
fn title_height(title: &str) -> Draw<u32> {
    if title.is_empty() {
        return Ok(0);
    }
    let (_, h) = (FONT, TITLE_SIZE)
        .into_font()
        .box_size(title)
        .or_msg("measuring text")?;
    Ok(h + 2 * (h / 2).min(5))
}

/// The height [`footnote`] takes for `lines`.
fn footnote_height(lines: &[String]) -> i32 {
    if lines.is_empty() {
        0
    } else {
        lines.len() as i32 * NOTE_LINE_H + 8
    }
}

/// Splits `text` at spaces into lines at most `max_w` pixels wide at `size`
/// (a single word wider than that gets a line of its own).
fn wrap_text(text: &str, size: i32, max_w: i32) -> Draw<Vec<String>> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for word in text.split(' ') {
        if cur.is_empty() {
            cur.push_str(word);
            continue;
        }
        let candidate = format!("{cur} {word}");
        if text_width(&candidate, size)? > max_w {
            lines.push(std::mem::replace(&mut cur, word.to_string()));
        } else {
            cur = candidate;
        }
    }
    lines.push(cur);
    Ok(lines)
}

/// Shortens `text` with a trailing "…" until it is at most `max_w` pixels wide at `size`.
fn shorten(text: &str, size: i32, max_w: i32) -> Draw<String> {
    if text_width(text, size)? <= max_w {
        return Ok(text.to_string());
    }
    let chars: Vec<char> = text.chars().collect();
    for keep in (1..chars.len()).rev() {
        let s: String = chars[..keep].iter().collect::<String>() + "…";
        if text_width(&s, size)? <= max_w {
            return Ok(s);
        }
    }
    Ok("…".into())
}

/// The unit tick and value labels are written in for magnitude `mag`:
/// `(scale, suffix)`, with `k`, `M`, `G`, `T` from 10⁴ up and `×10ᵏ` below
/// 10⁻³ or from 10¹⁵.
fn number_scale(mag: f64) -> (f64, String) {
    if !(mag.is_finite() && mag > 0.0) {
        return (1.0, String::new());
    }
    if !(1e-3..1e15).contains(&mag) {
        let k = (mag.log10() + 1e-9).floor() as i32;
        return (10f64.powi(k), format!("×10{}", superscript(k)));
    }
    for (scale, suffix) in [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e4, "k")] {
        if mag >= scale {
            let scale = if suffix == "k" { 1e3 } else { scale };
            return (scale, suffix.into());
        }
    }
    (1.0, String::new())
}

/// `v / scale` with `decimals`, trailing zeros removed, and `suffix`.
fn scaled_label(v: f64, scale: f64, decimals: usize, suffix: &str) -> String {
    let s = format!("{:.*}", decimals, v / scale);
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        &s
    };
    if s == "0" || s == "-0" {
        "0".into()
    } else {
        format!("{s}{suffix}")
    }
}

/// Tick labels for a linear axis over `[lo, hi]` with at most `labels`
/// ticks: one unit for the whole axis and just enough decimals.
fn linear_tick_formatter(lo: f64, hi: f64, labels: usize) -> impl Fn(&f64) -> String {
    let span = (hi - lo).abs();
    let step = if span > 0.0 {
        span / labels.max(1) as f64
    } else {
        lo.abs().max(1.0)
    };
    let (scale, suffix) = number_scale(lo.abs().max(hi.abs()));
    let decimals = (-(step / scale).log10().floor()).clamp(0.0, 9.0) as usize;
    move |v: &f64| {
        if !v.is_finite() {
            return String::new();
        }
        if v.abs() < step * 1e-6 {
            return "0".into();
        }
        scaled_label(*v, scale, decimals, &suffix)
    }
}

/// A value printed with three significant digits (`0.877`, `12.3k`, `1.5×10⁻⁵`).
fn value_label(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    if v == 0.0 {
        return "0".into();
    }
    let (scale, suffix) = number_scale(v.abs());
    let m = (v / scale).abs();
    let decimals = (2 - (m.log10() + 1e-9).floor() as i32).clamp(0, 9) as usize;
    scaled_label(v, scale, decimals, &suffix)
}

const BAR_FIGURE_W: u32 = 1200;
const BAR_FIGURE_H: u32 = 560;
const BAR_COLOR: RGBColor = PALETTE[0];
const REFERENCE_COLOR: RGBColor = RGBColor(60, 60, 60);
const VALUE_SIZE: i32 = 13;
/// Horizontal x-label area of [`plot_bars`]; rotated labels add to the figure height.
const BAR_LABEL_AREA: i32 = 36;
/// Widest rotated bar label; longer ones are shortened with "…".
const MAX_ROTATED_LABEL_W: i32 = 190;
const BAR_Y_LABEL_AREA: i32 = 78;

/// How [`plot_bars`] prints its bar and value labels.
struct BarLayout {
    /// The label under each bar, shortened where needed (empty: not shown).
    labels: Vec<String>,
    /// Bar labels read bottom to top instead of horizontally.
    rotate_labels: bool,
    /// Height of the area under the chart for bar labels.
    label_area: i32,
    /// The value printed above each bar (`None`: too crowded to print).
    values: Option<Vec<String>>,
    /// Value labels read bottom to top.
    rotate_values: bool,
    /// Headroom the value labels need above the tallest bar, in pixels.
    value_room: i32,
}

impl BarLayout {
    fn new(bars: &[(String, f64)], plot_w: i32, notes: &mut Vec<String>) -> Draw<Self> {
        let n = bars.len().max(1) as i32;
        let slot = plot_w / n;
        let every = if slot >= 20 {
            1
        } else {
            (20 + slot - 1) / slot.max(1)
        } as usize;
        let shown = |i: usize| i.is_multiple_of(every);
        let widths = bars
            .iter()
            .map(|(l, _)| text_width(l, LABEL_SIZE))
            .collect::<Draw<Vec<i32>>>()?;
        let max_w = widths.iter().copied().max().unwrap_or(0);
        let room = slot * every as i32 - 8;
        let (labels, rotate_labels, label_area) = if max_w <= room {
            let labels = bars
                .iter()
                .enumerate()
                .map(|(i, (l, _))| if shown(i) { l.clone() } else { String::new() })
                .collect();
            (labels, false, BAR_LABEL_AREA)
        } else {
            let mut labels = Vec::with_capacity(bars.len());
            let mut shortened = false;
            let mut widest = 0;
            for (i, ((l, _), &w)) in bars.iter().zip(&widths).enumerate() {
                if !shown(i) {
                    labels.push(String::new());
                    continue;
                }
                let s = shorten(l, LABEL_SIZE, MAX_ROTATED_LABEL_W)?;
                shortened |= w > MAX_ROTATED_LABEL_W;
                widest = widest.max(text_width(&s, LABEL_SIZE)?);
                labels.push(s);
            }
            if shortened {
                notes.push("Long bar labels shortened with “…”.".into());
            }
            (labels, true, widest + 18)
        };
        if every > 1 {
            notes.push(format!(
                "{} bars: one label every {every} bars.",
                bars.len()
            ));
        }

        let (values, rotate_values, value_room) = if slot < 12 {
            notes.push(format!("{} bars: values not printed.", bars.len()));
            (None, false, 0)
        } else {
            let values: Vec<String> = bars.iter().map(|&(_, v)| value_label(v)).collect();
            let widest = values
                .iter()
                .map(|v| text_width(v, VALUE_SIZE))
                .collect::<Draw<Vec<i32>>>()?
                .into_iter()
                .max()
                .unwrap_or(0);
            if widest <= slot - 4 {
                (Some(values), false, VALUE_SIZE + 12)
            } else {
                (Some(values), true, widest + 12)
            }
        };
        Ok(BarLayout {
            labels,
            rotate_labels,
            label_area,
            values,
            rotate_values,
            value_room,
        })
    }
}

/// Draws a bar chart: one bar per `(label, value)` with the value printed above it, and writes a PNG to `path`.
///
/// Meant for e.g. throughput relative to a baseline. The y axis starts at 0
/// (it extends below 0 for negative values, whose labels go under the bar);
/// when every value is positive and they span more than 100× it is
/// logarithmic instead, with a note. `reference_line` draws a horizontal
/// dashed line at its value (e.g. 1.0) with its label in the legend strip
/// under the title.
///
/// The figure is 1200 × 560 px. Labels too wide for their bar are rotated
/// (the figure grows to fit them) and, past 190 px, shortened with "…";
/// with very many bars only every k-th bar is labelled and values are not
/// printed. Non-finite values get no bar, "n/a" in place of the value and a
/// footnote. The parent folder of `path` is created if missing.
///
/// # Errors
///
/// [`Error::Config`] when `bars` is empty or the reference value is not
/// finite; [`Error::Io`] naming `path` when the folder cannot be created or
/// drawing or writing the PNG fails.
pub fn plot_bars(
    title: &str,
    y_label: &str,
    bars: &[(String, f64)],
    reference_line: Option<(f64, &str)>,
    path: &Path,
) -> Result<(), Error> {
    if bars.is_empty() {
        return Err(Error::Config("no bars to plot".into()));
    }
    if let Some((r, label)) = reference_line {
        if !r.is_finite() {
            return Err(Error::Config(format!(
                "reference line '{label}' is at a non-finite value ({r})"
            )));
        }
    }
    create_parent(path)?;
    ensure_font().map_err(|m| io_error(path, m))?;
    let err = |m: String| io_error(path, m);

    let finite_vals: Vec<f64> = bars
        .iter()
        .map(|b| b.1)
        .chain(reference_line.map(|r| r.0))
        .filter(|v| v.is_finite())
        .collect();
    let range = min_max(finite_vals.iter().copied());
    let log = matches!(range, Some((lo, hi)) if lo > 0.0 && hi / lo > 100.0);

    let mut notes = Vec::new();
    if log {
        notes.push("Log scale: the values span more than 100×.".to_string());
    }
    let plot_w = BAR_FIGURE_W as i32 - 12 - 24 - BAR_Y_LABEL_AREA;
    let layout = BarLayout::new(bars, plot_w, &mut notes).map_err(err)?;
    let missing: Vec<&str> = bars
        .iter()
        .filter(|b| !b.1.is_finite())
        .map(|b| b.0.as_str())
        .collect();
    if !missing.is_empty() {
        notes.push(format!(
            "Non-finite values, not drawn (n/a): {}.",
            missing.join(", ")
        ));
    }
    let mut note_lines = Vec::new();
    for note in &notes {
        note_lines.extend(wrap_text(note, NOTE_SIZE, BAR_FIGURE_W as i32 - 32).map_err(err)?);
    }

    let legend: Vec<LegendEntry> = reference_line
        .map(|(r, label)| {
            let label = if label.is_empty() {
                format!("reference ({})", value_label(r))
            } else {
                label.to_string()
            };
            LegendEntry::new(label, REFERENCE_COLOR, Sample::Dashed)
        })
        .into_iter()
        .collect();
    let title_h = title_height(title).map_err(err)? as i32;
    let legend_h = legend_height(&legend, BAR_FIGURE_W as i32).map_err(err)?;
    let foot_h = footnote_height(&note_lines);
    let height = BAR_FIGURE_H as i32 + (layout.label_area - BAR_LABEL_AREA).max(0);
    // The chart's plotting height, for the headroom above the tallest bar.
    let plot_h = (height - title_h - legend_h - foot_h - layout.label_area - 24).max(100);
    let f = (f64::from(layout.value_room) / f64::from(plot_h)).min(0.45);
    let grow = f / (1.0 - f);

    render(path, (BAR_FIGURE_W, height as u32), |canvas| {
        let root = if title.is_empty() {
            canvas.clone()
        } else {
            canvas
                .titled(title, (FONT, TITLE_SIZE))
                .or_msg("drawing the title")?
        };
        let root = legend_strip(&root, &legend)?;
        let root = footnote(&root, &note_lines)?;
        let reference = reference_line.map(|r| r.0);
        match range {
            None => no_data_panel(&root, ""),
            Some((lo, hi)) if log => {
                let (axis_lo, axis_hi, _) = log_bounds(lo, hi);
                let (l_lo, l_hi) = (axis_lo.log10(), hi.log10());
                let needed = 10f64.powf(l_hi + (l_hi - l_lo) * grow);
                let axis_hi = axis_hi.max(needed);
                let decades = (axis_hi.log10() - axis_lo.log10()).round() as u32;
                let few = decades <= 2;
                let fmt = move |v: &f64| log_tick_label(*v, few);
                draw_bars(
                    canvas,
                    &root,
                    log_axis(axis_lo, axis_hi),
                    log_label_hint(decades),
                    &fmt,
                    axis_lo,
                    y_label,
                    bars,
                    &layout,
                    reference,
                )
            }
            Some((lo, hi)) => {
                let (lo, hi) = (lo.min(0.0), hi.max(0.0));
                let (lo, hi) = if hi > lo { (lo, hi) } else { (0.0, 1.0) };
                let span = hi - lo;
                let axis_hi = if hi > 0.0 { hi + span * grow } else { hi };
                let axis_lo = if lo < 0.0 { lo - span * grow } else { lo };
                let fmt = linear_tick_formatter(axis_lo, axis_hi, 10);
                draw_bars(
                    canvas,
                    &root,
                    axis_lo..axis_hi,
                    10,
                    &fmt,
                    0.0,
                    y_label,
                    bars,
                    &layout,
                    reference,
                )
            }
        }
    })
}

/// The chart of [`plot_bars`] on `area`; labels are placed in pixels on `canvas`.
#[allow(clippy::too_many_arguments)]
fn draw_bars<Y>(
    canvas: &Area<'_>,
    area: &Area<'_>,
    y: Y,
    y_labels: usize,
    y_fmt: &dyn Fn(&f64) -> String,
    base: f64,
    y_desc: &str,
    bars: &[(String, f64)],
    layout: &BarLayout,
    reference: Option<f64>,
) -> Draw
where
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let n = bars.len() as f64;
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .margin_right(24)
        .x_label_area_size(layout.label_area)
        .y_label_area_size(BAR_Y_LABEL_AREA)
        .build_cartesian_2d(-0.5..n - 0.5, y)
        .or_msg("building a chart")?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc(y_desc)
        .y_labels(y_labels)
        .y_label_formatter(y_fmt)
        .label_style((FONT, LABEL_SIZE))
        .axis_desc_style((FONT, AXIS_DESC_SIZE))
        .bold_line_style(RGBColor(210, 210, 210))
        .light_line_style(RGBColor(242, 242, 242))
        .max_light_lines(4)
        .draw()
        .or_msg("drawing the axes")?;

    chart
        .draw_series(
            bars.iter()
                .enumerate()
                .filter(|(_, b)| b.1.is_finite())
                .map(|(i, b)| {
                    let x = i as f64;
                    Rectangle::new([(x - 0.38, base), (x + 0.38, b.1)], BAR_COLOR.filled())
                }),
        )
        .or_msg("drawing the bars")?;
    if let Some(r) = reference {
        chart
            .draw_series(DashedLineSeries::new(
                vec![(-0.5, r), (n - 0.5, r)],
                10,
                6,
                REFERENCE_COLOR.stroke_width(2),
            ))
            .or_msg("drawing the reference line")?;
    }

    let (_, y_px) = chart.plotting_area().get_pixel_range();
    let bottom = y_px.end;
    let label_style = TextStyle::from((FONT, LABEL_SIZE).into_font()).color(&BLACK);
    let value_style = TextStyle::from((FONT, VALUE_SIZE).into_font()).color(&RGBColor(40, 40, 40));
    let rotated = |s: &TextStyle<'static>, h: HPos| {
        s.transform(FontTransform::Rotate270)
            .pos(Pos::new(h, VPos::Center))
    };
    for (i, (_, v)) in bars.iter().enumerate() {
        let x = i as f64;
        let (px, _) = chart.backend_coord(&(x, base));
        if let Some(label) = layout.labels.get(i).filter(|l| !l.is_empty()) {
            let style = if layout.rotate_labels {
                rotated(&label_style, HPos::Right)
            } else {
                label_style.pos(Pos::new(HPos::Center, VPos::Top))
            };
            canvas
                .draw_text(label, &style, (px, bottom + 8))
                .or_msg("drawing a bar label")?;
        }
        let Some(values) = &layout.values else {
            continue;
        };
        let text = &values[i];
        let (down, anchor_y) = if v.is_finite() {
            let (_, py) = chart.backend_coord(&(x, *v));
            if *v < base {
                (true, py + 5)
            } else {
                (false, py - 5)
            }
        } else {
            (false, bottom - 5)
        };
        let style = match (layout.rotate_values, down) {
            (true, false) => rotated(&value_style, HPos::Left),
            (true, true) => rotated(&value_style, HPos::Right),
            (false, false) => value_style.pos(Pos::new(HPos::Center, VPos::Bottom)),
            (false, true) => value_style.pos(Pos::new(HPos::Center, VPos::Top)),
        };
        let style = if v.is_finite() {
            style
        } else {
            style.color(&RGBColor(150, 150, 150))
        };
        // A white box behind the value keeps it readable over the reference line.
        let (tw, th) = (FONT, VALUE_SIZE)
            .into_font()
            .box_size(text)
            .or_msg("measuring text")?;
        let (tw, th) = (tw as i32 + 4, th as i32 + 2);
        let (x0, x1, y0, y1) = match (layout.rotate_values, down) {
            (false, false) => (px - tw / 2, px + tw / 2, anchor_y - th, anchor_y + 1),
            (false, true) => (px - tw / 2, px + tw / 2, anchor_y - 1, anchor_y + th),
            (true, false) => (px - th / 2, px + th / 2, anchor_y - tw, anchor_y + 1),
            (true, true) => (px - th / 2, px + th / 2, anchor_y - 1, anchor_y + tw),
        };
        canvas
            .draw(&Rectangle::new([(x0, y0), (x1, y1)], WHITE.filled()))
            .or_msg("drawing a value label")?;
        canvas
            .draw_text(text, &style, (px, anchor_y))
            .or_msg("drawing a value label")?;
    }
    Ok(())
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
    /// No markers, except on isolated points (which have no line to show them).
    None,
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

/// A log axis over `[lo, hi]` (both > 0) with its own ticks: powers of ten
/// (every decade up to 12 labelled decades, then every second, third...),
/// and for ranges of two decades or less also 2 and 5 × 10ᵏ; the other
/// 1..9 × 10ᵏ are grid lines where the range spans 6 decades or less.
/// (plotters' own log ticks stop below 2.2e-16, which it takes for zero, so
/// a vanishing gradient's axis would lose its labels.)
fn log_axis(lo: f64, hi: f64) -> WithKeyPoints<LogCoord<f64>> {
    let first = (lo.log10() - 1e-9).ceil() as i32;
    let last = (hi.log10() + 1e-9).floor() as i32;
    let decades = (last - first).max(1);
    let step = (decades as usize).div_ceil(12).max(1) as i32;
    let few = decades <= 2;
    let (mut bold, mut light) = (Vec::new(), Vec::new());
    for k in first - 1..=last {
        for m in 1..=9 {
            let v = m as f64 * 10f64.powi(k);
            if v < lo || v > hi {
                continue;
            }
            let labelled = if m == 1 {
                (k - first) % step == 0
            } else {
                few && (m == 2 || m == 5)
            };
            if labelled {
                bold.push(v);
            } else if m == 1 || decades <= 6 {
                light.push(v);
            }
        }
    }
    (lo..hi)
        .log_scale()
        .with_key_points(bold)
        .with_light_points(light)
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
    let Some(x_range) = spec.x_range.as_ref() else {
        return no_data_panel(area, spec.caption);
    };
    let span = x_range.end - x_range.start;
    let x_fmt = |v: &f64| integer_tick_label(*v);
    let x_axis = XAxis {
        labels: (span.round() as usize + 1).clamp(2, 25),
        fmt: &x_fmt,
    };
    draw_chart(area, spec, &x_axis, y, y_labels, y_fmt, lines)
}

/// How the x axis of [`draw_chart`] is labelled.
struct XAxis<'f> {
    /// At most this many labelled ticks.
    labels: usize,
    fmt: &'f dyn Fn(&f64) -> String,
}

/// [`draw_panel`] with the x-axis labelling given.
fn draw_chart<Y>(
    area: &Area<'_>,
    spec: &PanelSpec<'_>,
    x_axis: &XAxis<'_>,
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
    chart
        .configure_mesh()
        .x_desc(spec.x_desc)
        .y_desc(spec.y_desc)
        .x_labels(x_axis.labels)
        .y_labels(y_labels)
        .x_label_formatter(x_axis.fmt)
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
        let pts: Vec<(f64, f64)> = if line.marker == Marker::None {
            segments(&line.points)
                .into_iter()
                .filter(|s| s.len() == 1)
                .flatten()
                .collect()
        } else {
            line.points
                .iter()
                .filter_map(|&(x, y)| y.map(|y| (x, y)))
                .collect()
        };
        let (size, marker_style) = match line.marker {
            Marker::None | Marker::Small => (3, line.color.filled()),
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
    /// A dot on the sample, for lines drawn with markers.
    marker: bool,
}

impl LegendEntry {
    fn new(label: String, color: RGBColor, sample: Sample) -> Self {
        LegendEntry {
            label,
            color,
            sample,
            marker: false,
        }
    }

    fn with_marker(mut self, marker: bool) -> Self {
        self.marker = marker;
        self
    }
}

const LEGEND_SAMPLE_W: i32 = 36;
const LEGEND_GAP: i32 = 8;
const LEGEND_SPACING: i32 = 28;
const LEGEND_ROW_H: i32 = 24;

/// The width of `text` in pixels at `size`, in the embedded font.
fn text_width(text: &str, size: i32) -> Draw<i32> {
    let (w, _) = (FONT, size)
        .into_font()
        .box_size(text)
        .or_msg("measuring text")?;
    Ok(w as i32)
}

/// Lays `entries` out in rows no wider than `width - 40` pixels: per row,
/// (entry index, entry width).
fn legend_rows(entries: &[LegendEntry], width: i32) -> Draw<Vec<Vec<(usize, i32)>>> {
    let max_w = width - 40;
    let mut rows: Vec<Vec<(usize, i32)>> = vec![Vec::new()];
    let mut row_w = 0;
    for (i, e) in entries.iter().enumerate() {
        let ew = LEGEND_SAMPLE_W + LEGEND_GAP + text_width(&e.label, LEGEND_SIZE)?;
        let needed = if row_w == 0 {
            ew
        } else {
            row_w + LEGEND_SPACING + ew
        };
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
    Ok(rows)
}

/// The height [`legend_strip`] takes for `entries` across `width` pixels.
fn legend_height(entries: &[LegendEntry], width: i32) -> Draw<i32> {
    if entries.is_empty() {
        return Ok(0);
    }
    Ok(legend_rows(entries, width)?.len() as i32 * LEGEND_ROW_H + 8)
}

/// Draws `entries` as centred rows across the top of `area` (outside every
/// chart, so the legend never hides data) and returns the area below.
fn legend_strip<'a>(area: &Area<'a>, entries: &[LegendEntry]) -> Draw<Area<'a>> {
    if entries.is_empty() {
        return Ok(area.clone());
    }
    const SAMPLE_W: i32 = LEGEND_SAMPLE_W;
    const GAP: i32 = LEGEND_GAP;
    const SPACING: i32 = LEGEND_SPACING;
    const ROW_H: i32 = LEGEND_ROW_H;
    let style = TextStyle::from((FONT, LEGEND_SIZE).into_font())
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    let (w, _) = area.dim_in_pixel();
    let rows = legend_rows(entries, w as i32)?;
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
            if e.marker {
                strip
                    .draw(&Circle::new((x + SAMPLE_W / 2, y), 4, e.color.filled()))
                    .or_msg("drawing the legend")?;
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
        plot_panels("Log, fixed range and empty panels", &mixed, &[], &nested)
            .expect("mixed panels");
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
}
