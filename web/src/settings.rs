//! The playground's settings as the page holds them (text in the URL and
//! the form), checked against one table of fields: each value out of range
//! or not a number is replaced (clamped, or the field's default) and named
//! in a message with its range, so that whatever a URL says, the page
//! builds a run it can train.

use std::collections::BTreeMap;

use fusedmlp::Activation;

use crate::PlayConfig;

/// What a field accepts.
enum Kind {
    /// A whole number in `min..=max`.
    Whole { min: u64, max: u64 },
    /// A real number in `min..=max` (`min` excluded when `open_min`).
    Real { min: f64, max: f64, open_min: bool },
    /// One of a list of names.
    Choice(&'static [&'static str]),
    /// Any activation the crate parses.
    Activation,
    /// `default` or any initialiser the crate parses (`normal:0.01` too).
    Init,
    /// `1`/`true` or `0`/`false`.
    Flag,
}

/// One setting: its URL key, the label the form shows and what it accepts.
struct Field {
    key: &'static str,
    label: &'static str,
    kind: Kind,
}

/// The built-in data sets, and `csv` for a file chosen in the page.
pub const DATASETS: &[&str] = &["spirals", "moons", "blobs", "checkerboard", "digits", "csv"];

/// Every setting the page's URL and form carry. The page's form limits
/// (`min`/`max` in index.html) match these ranges.
const FIELDS: &[Field] = &[
    Field {
        key: "dataset",
        label: "Data",
        kind: Kind::Choice(DATASETS),
    },
    Field {
        key: "depth",
        label: "Depth",
        kind: Kind::Whole { min: 1, max: 50 },
    },
    Field {
        key: "width",
        label: "Width",
        kind: Kind::Whole { min: 1, max: 512 },
    },
    Field {
        key: "activation",
        label: "Activation",
        kind: Kind::Activation,
    },
    Field {
        key: "init",
        label: "Init",
        kind: Kind::Init,
    },
    Field {
        key: "optimizer",
        label: "Optimizer",
        kind: Kind::Choice(&["sgd", "adam", "adamw", "rmsprop"]),
    },
    Field {
        key: "lr",
        label: "Learning rate",
        kind: Kind::Real {
            min: 0.0,
            max: 10.0,
            open_min: true,
        },
    },
    Field {
        key: "batch",
        label: "Batch",
        kind: Kind::Whole { min: 1, max: 1024 },
    },
    Field {
        key: "norm",
        label: "Norm",
        kind: Kind::Choice(&["none", "layer", "batch"]),
    },
    Field {
        key: "residual",
        label: "Residual",
        kind: Kind::Flag,
    },
    Field {
        key: "dropout",
        label: "Dropout",
        kind: Kind::Real {
            min: 0.0,
            max: 0.9,
            open_min: false,
        },
    },
    Field {
        key: "clip",
        label: "Clip norm",
        kind: Kind::Real {
            min: 0.0,
            max: 1e6,
            open_min: false,
        },
    },
    Field {
        key: "seed",
        label: "Seed",
        kind: Kind::Whole {
            min: 0,
            max: u32::MAX as u64,
        },
    },
];

/// The settings read from text, and what was wrong with the text.
pub struct Checked {
    /// Settings every field of which is in range.
    pub config: PlayConfig,
    /// One sentence per field that was replaced: the field, what it said,
    /// its range and the value used instead.
    pub problems: Vec<String>,
}

/// The text of each field of `config`, as the URL would carry it.
fn texts_of(config: &PlayConfig) -> BTreeMap<String, String> {
    let mut t = BTreeMap::new();
    t.insert("dataset".into(), config.dataset.clone());
    t.insert("depth".into(), config.depth.to_string());
    t.insert("width".into(), config.width.to_string());
    t.insert("activation".into(), config.activation.clone());
    t.insert("init".into(), config.init.clone());
    t.insert("optimizer".into(), config.optimizer.clone());
    t.insert("lr".into(), config.lr.to_string());
    t.insert("batch".into(), config.batch.to_string());
    t.insert("norm".into(), config.norm.clone());
    t.insert("residual".into(), config.residual.to_string());
    t.insert("dropout".into(), config.dropout.to_string());
    t.insert("clip".into(), config.clip.to_string());
    t.insert("seed".into(), config.seed.to_string());
    t
}

/// Reads every field from `texts` (a missing field keeps `base`'s value),
/// replacing each bad one and saying so.
pub fn check_texts(texts: &BTreeMap<String, String>, base: &PlayConfig) -> Checked {
    let defaults = texts_of(base);
    let mut problems = Vec::new();
    let mut good = BTreeMap::new();
    for field in FIELDS {
        let fallback = defaults[field.key].clone();
        let Some(raw) = texts.get(field.key) else {
            good.insert(field.key, fallback);
            continue;
        };
        let text = raw.trim();
        let (value, problem) = check_one(field, text, &fallback);
        if let Some(p) = problem {
            problems.push(p);
        }
        good.insert(field.key, value);
    }
    let whole = |k: &str| good[k].parse::<u64>().unwrap_or(0);
    let real = |k: &str| good[k].parse::<f32>().unwrap_or(0.0);
    let config = PlayConfig {
        dataset: good["dataset"].clone(),
        depth: whole("depth") as usize,
        width: whole("width") as usize,
        activation: good["activation"].clone(),
        init: good["init"].clone(),
        optimizer: good["optimizer"].clone(),
        lr: real("lr"),
        batch: whole("batch") as usize,
        norm: good["norm"].clone(),
        residual: good["residual"] == "true",
        dropout: real("dropout"),
        clip: real("clip"),
        seed: whole("seed"),
        points: base.points,
        log_every: base.log_every,
        label_column: base.label_column,
    };
    Checked { config, problems }
}

/// Checks `config` (built by JavaScript, or deserialised from JSON): the
/// first field out of range is an error that names it and its range.
pub fn check_config(config: &PlayConfig) -> Result<(), String> {
    let checked = check_texts(&texts_of(config), config);
    match checked.problems.first() {
        None => Ok(()),
        Some(p) => Err(p.clone()),
    }
}

/// One field's value (as text) and, when `text` was not acceptable, why.
fn check_one(field: &Field, text: &str, fallback: &str) -> (String, Option<String>) {
    let label = field.label;
    match &field.kind {
        Kind::Whole { min, max } => {
            let range = format!("a whole number from {min} to {max}");
            match text.parse::<f64>() {
                Ok(v)
                    if v.is_finite()
                        && v.fract() == 0.0
                        && v >= *min as f64
                        && v <= *max as f64 =>
                {
                    ((v as u64).to_string(), None)
                }
                Ok(v) if v.is_finite() => {
                    let used = v.round().clamp(*min as f64, *max as f64) as u64;
                    (
                        used.to_string(),
                        Some(format!(
                            "{label} must be {range}, not {text}; using {used}."
                        )),
                    )
                }
                _ => (
                    fallback.to_string(),
                    Some(format!(
                        "{label} must be {range}, not '{text}'; using {fallback}."
                    )),
                ),
            }
        }
        Kind::Real { min, max, open_min } => {
            let range = if *open_min {
                format!("a number above {min} and at most {max}")
            } else {
                format!("a number from {min} to {max}")
            };
            match text.parse::<f64>() {
                Ok(v) if v.is_finite() && (v > *min || (!open_min && v == *min)) && v <= *max => {
                    ((v as f32).to_string(), None)
                }
                Ok(v) if v.is_finite() && v > *max => (
                    (*max as f32).to_string(),
                    Some(format!(
                        "{label} must be {range}, not {text}; using {}.",
                        *max as f32
                    )),
                ),
                _ => (
                    fallback.to_string(),
                    Some(format!(
                        "{label} must be {range}, not '{text}'; using {fallback}."
                    )),
                ),
            }
        }
        Kind::Choice(names) => {
            let lower = text.to_ascii_lowercase();
            if names.contains(&lower.as_str()) {
                (lower, None)
            } else {
                (
                    fallback.to_string(),
                    Some(format!(
                        "{label} must be one of {}, not '{text}'; using {fallback}.",
                        names.join(", ")
                    )),
                )
            }
        }
        Kind::Activation => match text.parse::<Activation>() {
            Ok(_) if !text.is_empty() => (text.to_ascii_lowercase(), None),
            _ => (
                fallback.to_string(),
                Some(format!(
                    "{label} must be one of {}, not '{text}'; using {fallback}.",
                    Activation::ALL
                        .iter()
                        .map(|a| a.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            ),
        },
        Kind::Init => {
            let lower = text.to_ascii_lowercase();
            if lower == "default" || (!lower.is_empty() && lower.parse::<fusedmlp::Init>().is_ok())
            {
                (lower, None)
            } else {
                (
                    fallback.to_string(),
                    Some(format!(
                        "{label} must be default, he_normal, he_uniform, xavier_normal, \
                         xavier_uniform, lecun_normal, orthogonal, torch_default or normal:STD, \
                         not '{text}'; using {fallback}."
                    )),
                )
            }
        }
        Kind::Flag => match text {
            "1" | "true" | "on" => ("true".into(), None),
            "0" | "false" | "off" | "" => ("false".into(), None),
            _ => (
                fallback.to_string(),
                Some(format!(
                    "{label} must be 1 (on) or 0 (off), not '{text}'; using {}.",
                    if fallback == "true" { 1 } else { 0 }
                )),
            ),
        },
    }
}
