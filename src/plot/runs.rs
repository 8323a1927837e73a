use super::*;

/// Draws `curves.png`: loss (left) and accuracy (right) per epoch, one colour
/// per run, training solid and validation dashed. Training is the whole
/// training split evaluated after each epoch (the running average of the
/// epoch's batches where a report has no such figure); a single run also
/// gets its batches' running average as a thin light line.
///
/// Runs that share a label are one contender's seeds: each seed is drawn
/// thin and light, and the median over the seeds, epoch by epoch, thick.
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
    // Runs sharing a label are one contender's seeds.
    let mut groups: Vec<(&str, Vec<&RunReport>)> = Vec::new();
    for run in runs {
        match groups.iter_mut().find(|g| g.0 == run.label) {
            Some(g) => g.1.push(run),
            None => groups.push((&run.label, vec![run])),
        }
    }
    let seeded = groups.iter().any(|g| g.1.len() > 1);
    create_parent(path)?;
    render(path, (1300, 560), |root| {
        let root = root
            .titled("Training curves", (FONT, TITLE_SIZE))
            .or_msg("drawing the title")?;
        let mut legend = Vec::new();
        for (i, (label, group)) in groups.iter().enumerate() {
            let color = run_color(i);
            if group.iter().all(|r| r.epochs.is_empty()) {
                legend.push(LegendEntry::new(
                    format!("{label} (no epochs)"),
                    color,
                    Sample::Solid,
                ));
                continue;
            }
            let median = if group.len() > 1 {
                format!(", median of {}", group.len())
            } else {
                String::new()
            };
            if group.len() == 1 {
                legend.push(LegendEntry::new(
                    format!("{label} train, batches"),
                    lighten(color, 0.55),
                    Sample::Solid,
                ));
            }
            legend.push(LegendEntry::new(
                format!("{label} train{median}"),
                color,
                Sample::Solid,
            ));
            legend.push(LegendEntry::new(
                format!("{label} val{median}"),
                color,
                Sample::Dashed,
            ));
        }
        let root = legend_strip(&root, &legend)?;

        let mut skipped = Vec::new();
        let mut loss_lines = Vec::new();
        let mut acc_lines = Vec::new();
        type Metric = fn(&EpochLog) -> f32;
        // (train loss, val loss, train accuracy, val accuracy); "train" is
        // the whole split evaluated after the epoch, where the report has it.
        let train_loss: Metric = |e| {
            if e.train_eval_loss.is_nan() {
                e.train_loss
            } else {
                e.train_eval_loss
            }
        };
        let train_acc: Metric = |e| {
            if e.train_eval_accuracy.is_nan() {
                e.train_accuracy
            } else {
                e.train_eval_accuracy
            }
        };
        let val_loss: Metric = |e| e.val_loss;
        let val_acc: Metric = |e| e.val_accuracy;
        // (metric, dashed, a loss rather than an accuracy)
        let metrics = [
            (train_loss, false, true),
            (val_loss, true, true),
            (train_acc, false, false),
            (val_acc, true, false),
        ];
        for (i, (label, group)) in groups.iter().enumerate() {
            let color = run_color(i);
            let x = |e: &EpochLog| e.epoch as f64 + 1.0;
            let pts = |run: &RunReport, f: Metric| -> Vec<(f64, Option<f64>)> {
                run.epochs.iter().map(|e| (x(e), finite(f(e)))).collect()
            };
            let mut bad = 0;
            let mut count = |series: &Vec<(f64, Option<f64>)>| {
                bad += series.iter().filter(|p| p.1.is_none()).count();
            };
            if let [run] = group.as_slice() {
                let batches_loss = pts(run, |e| e.train_loss);
                let batches_acc = pts(run, |e| e.train_accuracy);
                let faint = lighten(color, 0.55);
                loss_lines.push(Line::new(batches_loss, faint, false).width(1));
                acc_lines.push(Line::new(batches_acc, faint, false).width(1));
                for (f, dashed, is_loss) in metrics {
                    let series = pts(run, f);
                    count(&series);
                    let lines = if is_loss {
                        &mut loss_lines
                    } else {
                        &mut acc_lines
                    };
                    lines.push(Line::new(series, color, dashed));
                }
            } else {
                for (f, dashed, is_loss) in metrics {
                    let lines = if is_loss {
                        &mut loss_lines
                    } else {
                        &mut acc_lines
                    };
                    for run in group {
                        let series = pts(run, f);
                        count(&series);
                        lines.push(
                            Line::new(series, lighten(color, 0.5), dashed)
                                .width(1)
                                .marker(Marker::None),
                        );
                    }
                    lines.push(Line::new(median_curve(group, f), color, dashed).width(3));
                }
            }
            if bad > 0 {
                skipped.push(format!("{label} ({bad})"));
            }
        }
        let root = {
            let mut notes = Vec::new();
            if seeded {
                notes.push(
                    "Thin lines: each seed; thick: the median over seeds, epoch by epoch. \
                     train: the whole training split evaluated after each epoch."
                        .to_string(),
                );
            } else {
                notes.push(
                    "train: the whole training split evaluated after each epoch; \
                     train, batches: the running average over the epoch's batches."
                        .to_string(),
                );
            }
            if !skipped.is_empty() {
                notes.push(format!(
                    "Non-finite values skipped (lines broken there): {}",
                    skipped.join(", ")
                ));
            }
            footnote(&root, &notes)?
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

/// Up to `max` layer indices out of `0..n`, evenly spaced, always including
/// the first and the last.
pub(super) fn pick_layers(n: usize, max: usize) -> Vec<usize> {
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
pub(super) fn split_hist(h: &[u32]) -> Option<(u32, &[u32], u32)> {
    if h.len() < 3 {
        return None;
    }
    Some((h[0], &h[1..h.len() - 1], h[h.len() - 1]))
}

/// Bin edges and fractions of the whole count (out-of-range included).
pub(super) fn hist_fractions(bins: &[u32], under: u32, over: u32) -> Option<Vec<(f64, f64, f64)>> {
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
pub(super) fn histogram_panel(
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

/// The median over `runs` of `f` at each epoch (over the runs that reached
/// it and have a finite value there).
pub(super) fn median_curve(
    runs: &[&RunReport],
    f: fn(&EpochLog) -> f32,
) -> Vec<(f64, Option<f64>)> {
    let epochs = runs.iter().map(|r| r.epochs.len()).max().unwrap_or(0);
    (0..epochs)
        .map(|e| {
            let values: Vec<f64> = runs
                .iter()
                .filter_map(|r| r.epochs.get(e))
                .map(|log| f64::from(f(log)))
                .collect();
            (
                e as f64 + 1.0,
                crate::train::seeds::median_range(&values).map(|m| m.0),
            )
        })
        .collect()
}
