use super::*;

/// The height `titled` takes for `title` at [`TITLE_SIZE`] (0 when empty).
pub(super) fn title_height(title: &str) -> Draw<u32> {
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
pub(super) fn footnote_height(lines: &[String]) -> i32 {
    if lines.is_empty() {
        0
    } else {
        lines.len() as i32 * NOTE_LINE_H + 8
    }
}

/// Splits `text` at spaces into lines at most `max_w` pixels wide at `size`
/// (a single word wider than that gets a line of its own).
pub(super) fn wrap_text(text: &str, size: i32, max_w: i32) -> Draw<Vec<String>> {
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
pub(super) fn shorten(text: &str, size: i32, max_w: i32) -> Draw<String> {
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

/// A framed panel with its caption and "no data" in the middle.
pub(super) fn no_data_panel(area: &Area<'_>, caption: &str) -> Draw {
    no_data_titled(area, caption, CAPTION_SIZE)
}

/// [`no_data_panel`] with a caption of `size` pixels.
pub(super) fn no_data_titled(area: &Area<'_>, caption: &str, size: i32) -> Draw {
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
pub(super) enum Sample {
    Solid,
    Dashed,
    Filled,
}

pub(super) struct LegendEntry {
    pub(super) label: String,
    pub(super) color: RGBColor,
    pub(super) sample: Sample,
    /// A dot on the sample, for lines drawn with markers.
    pub(super) marker: bool,
}

impl LegendEntry {
    pub(super) fn new(label: String, color: RGBColor, sample: Sample) -> Self {
        LegendEntry {
            label,
            color,
            sample,
            marker: false,
        }
    }

    pub(super) fn with_marker(mut self, marker: bool) -> Self {
        self.marker = marker;
        self
    }
}

pub(super) const LEGEND_SAMPLE_W: i32 = 36;
pub(super) const LEGEND_GAP: i32 = 8;
pub(super) const LEGEND_SPACING: i32 = 28;
pub(super) const LEGEND_ROW_H: i32 = 24;

/// The width of `text` in pixels at `size`, in the embedded font.
pub(super) fn text_width(text: &str, size: i32) -> Draw<i32> {
    let (w, _) = (FONT, size)
        .into_font()
        .box_size(text)
        .or_msg("measuring text")?;
    Ok(w as i32)
}

/// Lays `entries` out in rows no wider than `width - 40` pixels: per row,
/// (entry index, entry width).
pub(super) fn legend_rows(entries: &[LegendEntry], width: i32) -> Draw<Vec<Vec<(usize, i32)>>> {
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
pub(super) fn legend_height(entries: &[LegendEntry], width: i32) -> Draw<i32> {
    if entries.is_empty() {
        return Ok(0);
    }
    Ok(legend_rows(entries, width)?.len() as i32 * LEGEND_ROW_H + 8)
}

/// Draws `entries` as centred rows across the top of `area` (outside every
/// chart, so the legend never hides data) and returns the area below.
pub(super) fn legend_strip<'a>(area: &Area<'a>, entries: &[LegendEntry]) -> Draw<Area<'a>> {
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
pub(super) fn footnote<'a>(area: &Area<'a>, lines: &[String]) -> Draw<Area<'a>> {
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
