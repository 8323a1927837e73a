use super::*;

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
pub(super) const PANEL_W: u32 = 600;
/// Height of one panel row in [`plot_panels`].
pub(super) const PANEL_H: u32 = 480;
/// Narrowest [`plot_panels`] figure.
pub(super) const MIN_FIGURE_W: u32 = 1000;
/// Most panels side by side in [`plot_panels`].
pub(super) const MAX_PANEL_COLS: usize = 3;
/// Height of one [`footnote`] line.
pub(super) const NOTE_LINE_H: i32 = 20;

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
/// use fusedmlp::plot::{plot_panels, Panel, Series};
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
pub(super) struct SkipKinds {
    pub(super) non_finite: bool,
    pub(super) non_positive: bool,
    pub(super) out_of_range: bool,
}

impl SkipKinds {
    pub(super) fn describe(&self) -> String {
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
pub(super) struct PreparedPanel<'p> {
    pub(super) panel: &'p Panel,
    pub(super) lines: Vec<Line>,
    /// (series label, points skipped), for series that lost points.
    pub(super) skipped: Vec<(&'p str, usize)>,
}

pub(super) fn prepare_panel<'p>(
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
pub(super) fn draw_prepared_panel(area: &Area<'_>, p: &PreparedPanel<'_>) -> Draw {
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
pub(super) fn auto_linear_range(lo: f64, hi: f64) -> (f64, f64) {
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
