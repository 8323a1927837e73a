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
//!
//! [`plot_panels`] (grids of line charts) and [`plot_bars`] (a bar chart with
//! a reference line) draw the figures of experiments from any numbers.
//!
//! The files: `runs.rs` draws the four figures of training runs,
//! `panels.rs` and `bars.rs` the general figures, `chart.rs` one line
//! chart, `axes.rs` ranges, log axes and tick labels, `text.rs` titles,
//! wrapped text, legends and footnotes. Needs the `plots` feature.

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

use crate::error::Error;
use crate::train::report::{EpochLog, LayerDiagnostics, RunReport, HIST_MAX, HIST_MIN};

mod axes;
mod bars;
mod chart;
mod panels;
mod runs;
#[cfg(test)]
mod tests;
mod text;

use axes::*;
use chart::*;
use panels::*;
use text::*;

pub use bars::plot_bars;
pub use panels::{plot_panels, Panel, Series};
pub use runs::{plot_curves, plot_dead_saturated, plot_gradient_norms, plot_histograms};

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
