use super::*;

/// The unit tick and value labels are written in for magnitude `mag`:
/// `(scale, suffix)`, with `k`, `M`, `G`, `T` from 10⁴ up and `×10ᵏ` below
/// 10⁻³ or from 10¹⁵.
pub(super) fn number_scale(mag: f64) -> (f64, String) {
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
pub(super) fn scaled_label(v: f64, scale: f64, decimals: usize, suffix: &str) -> String {
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
pub(super) fn linear_tick_formatter(lo: f64, hi: f64, labels: usize) -> impl Fn(&f64) -> String {
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
pub(super) fn value_label(v: f64) -> String {
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

/// A polyline with optional markers; `None` values break the line.
pub(super) struct Line {
    pub(super) points: Vec<(f64, Option<f64>)>,
    pub(super) color: RGBColor,
    pub(super) dashed: bool,
    /// Stroke width in pixels (2 unless set).
    pub(super) width: u32,
    pub(super) marker: Marker,
    /// Points drawn with an extra × marker (clamped to a floor).
    pub(super) flagged: Vec<(f64, f64)>,
}

#[derive(Clone, Copy, PartialEq)]
pub(super) enum Marker {
    /// No markers, except on isolated points (which have no line to show them).
    None,
    Small,
    Filled,
    Hollow,
}

impl Line {
    pub(super) fn new(points: Vec<(f64, Option<f64>)>, color: RGBColor, dashed: bool) -> Self {
        Line {
            points,
            color,
            dashed,
            width: 2,
            marker: Marker::Small,
            flagged: Vec::new(),
        }
    }

    pub(super) fn width(mut self, width: u32) -> Self {
        self.width = width;
        self
    }

    pub(super) fn marker(mut self, marker: Marker) -> Self {
        self.marker = marker;
        self
    }
}

pub(super) fn values_of(lines: &[Line]) -> impl Iterator<Item = f64> + '_ {
    lines
        .iter()
        .flat_map(|l| l.points.iter().filter_map(|p| p.1))
        .filter(|v| v.is_finite())
}

/// The x range covering every point of `lines`, padded by half a unit when
/// there is a single x value.
pub(super) fn x_range_of<'l>(lines: impl Iterator<Item = &'l Line>) -> Option<Range<f64>> {
    let (lo, hi) = min_max(lines.flat_map(|l| l.points.iter().map(|p| p.0)))?;
    Some(if hi - lo < 1.0 {
        lo - 0.5..hi + 0.5
    } else {
        lo..hi
    })
}

/// Layer axes: half a unit of room on each side of layers 1..=n.
pub(super) fn layer_x_range(lines: &[Line]) -> Option<Range<f64>> {
    let (lo, hi) = min_max(lines.iter().flat_map(|l| l.points.iter().map(|p| p.0)))?;
    Some(lo - 0.5..hi + 0.5)
}

/// Decade-aligned bounds around `[lo, hi]` (both > 0) and the number of decades.
pub(super) fn log_bounds(lo: f64, hi: f64) -> (f64, f64, u32) {
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
pub(super) fn log_axis(lo: f64, hi: f64) -> WithKeyPoints<LogCoord<f64>> {
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
pub(super) fn log_label_hint(decades: u32) -> usize {
    if decades <= 2 {
        50
    } else {
        (decades as usize).min(12)
    }
}

pub(super) fn superscript(n: i32) -> String {
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
pub(super) fn log_tick_label(v: f64, few: bool) -> String {
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
pub(super) fn plain_tick_label(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

/// Labels only (near-)integer x values: layers and epochs.
pub(super) fn integer_tick_label(v: f64) -> String {
    if (v - v.round()).abs() < 1e-6 {
        format!("{}", v.round() as i64)
    } else {
        String::new()
    }
}
