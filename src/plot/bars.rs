use super::*;

pub(super) const BAR_FIGURE_W: u32 = 1200;
pub(super) const BAR_FIGURE_H: u32 = 560;
pub(super) const BAR_COLOR: RGBColor = PALETTE[0];
pub(super) const REFERENCE_COLOR: RGBColor = RGBColor(60, 60, 60);
pub(super) const VALUE_SIZE: i32 = 13;
/// Horizontal x-label area of [`plot_bars`]; rotated labels add to the figure height.
pub(super) const BAR_LABEL_AREA: i32 = 36;
/// Widest rotated bar label; longer ones are shortened with "…".
pub(super) const MAX_ROTATED_LABEL_W: i32 = 190;
pub(super) const BAR_Y_LABEL_AREA: i32 = 78;

/// How [`plot_bars`] prints its bar and value labels.
pub(super) struct BarLayout {
    /// The label under each bar, shortened where needed (empty: not shown).
    pub(super) labels: Vec<String>,
    /// Bar labels read bottom to top instead of horizontally.
    pub(super) rotate_labels: bool,
    /// Height of the area under the chart for bar labels.
    pub(super) label_area: i32,
    /// The value printed above each bar (`None`: too crowded to print).
    pub(super) values: Option<Vec<String>>,
    /// Value labels read bottom to top.
    pub(super) rotate_values: bool,
    /// Headroom the value labels need above the tallest bar, in pixels.
    pub(super) value_room: i32,
}

impl BarLayout {
    pub(super) fn new(bars: &[(String, f64)], plot_w: i32, notes: &mut Vec<String>) -> Draw<Self> {
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
pub(super) fn draw_bars<Y>(
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
