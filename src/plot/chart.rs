use super::*;

pub(super) struct PanelSpec<'s> {
    pub(super) caption: &'s str,
    pub(super) x_desc: &'s str,
    pub(super) y_desc: &'s str,
    pub(super) x_range: Option<Range<f64>>,
}

/// One chart: mesh, axis descriptions and `lines`, over `spec.x_range` and `y`.
pub(super) fn draw_panel<Y>(
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
pub(super) struct XAxis<'f> {
    /// At most this many labelled ticks.
    pub(super) labels: usize,
    pub(super) fmt: &'f dyn Fn(&f64) -> String,
}

/// [`draw_panel`] with the x-axis labelling given.
pub(super) fn draw_chart<Y>(
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
        let style = line.color.stroke_width(line.width);
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
pub(super) fn segments(points: &[(f64, Option<f64>)]) -> Vec<Vec<(f64, f64)>> {
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
