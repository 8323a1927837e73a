//! Seeds as a first-class option: a run repeated over several seeds, and
//! the median and range of each figure over them.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// The most seeds one list may hold: a guard against `0..1000000000` typed
/// by mistake (each seed is a whole training run).
pub const MAX_SEEDS: usize = 1000;

/// A non-empty list of distinct seeds, parsed from `3`, `0..5` (0 to 4, as
/// in Rust), `0..=4` or `1,4,9` (lists may mix numbers and ranges:
/// `0..3,7`).
///
/// ```
/// use fusedmlp::train::Seeds;
/// let seeds: Seeds = "0..5".parse().unwrap();
/// assert_eq!(seeds.as_slice(), &[0, 1, 2, 3, 4]);
/// assert!("5..2".parse::<Seeds>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seeds(Vec<u64>);

impl Seeds {
    /// One seed.
    pub fn one(seed: u64) -> Seeds {
        Seeds(vec![seed])
    }

    /// The seeds, in the order given.
    pub fn as_slice(&self) -> &[u64] {
        &self.0
    }

    /// How many seeds.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: a `Seeds` holds at least one seed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Seeds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.0;
        let contiguous = s.windows(2).all(|w| w[1] == w[0] + 1);
        if s.len() > 2 && contiguous {
            write!(f, "{}..{}", s[0], s[s.len() - 1] + 1)
        } else {
            let parts: Vec<String> = s.iter().map(u64::to_string).collect();
            f.write_str(&parts.join(","))
        }
    }
}

fn bad(text: &str, why: &str) -> Error {
    Error::Config(format!(
        "'{text}' is not a list of seeds: {why}; write a seed (3), a range (0..5 for seeds \
         0 to 4, or 0..=4) or a comma-separated list (1,4,9)"
    ))
}

fn number(text: &str, part: &str) -> Result<u64, Error> {
    part.trim().parse::<u64>().map_err(|_| {
        bad(
            text,
            &format!("'{}' is not a whole number of 0 or more", part.trim()),
        )
    })
}

impl FromStr for Seeds {
    type Err = Error;

    fn from_str(text: &str) -> Result<Seeds, Error> {
        let mut seeds: Vec<u64> = Vec::new();
        for part in text.split(',') {
            let part = part.trim();
            if part.is_empty() {
                return Err(bad(text, "it has an empty entry"));
            }
            let (start, end) = if let Some((a, b)) = part.split_once("..=") {
                let (a, b) = (number(text, a)?, number(text, b)?);
                if b < a {
                    return Err(bad(
                        text,
                        &format!("the range {part} is empty (its end is below its start)"),
                    ));
                }
                (a, b)
            } else if let Some((a, b)) = part.split_once("..") {
                let (a, b) = (number(text, a)?, number(text, b)?);
                if b <= a {
                    return Err(bad(
                        text,
                        &format!(
                            "the range {part} is empty (it counts from {a} up to, not \
                             including, {b})"
                        ),
                    ));
                }
                (a, b - 1)
            } else {
                let n = number(text, part)?;
                (n, n)
            };
            let count = end - start;
            if count >= MAX_SEEDS as u64 || seeds.len() + count as usize >= MAX_SEEDS {
                return Err(bad(text, &format!("it names more than {MAX_SEEDS} seeds")));
            }
            for seed in start..=end {
                if seeds.contains(&seed) {
                    return Err(bad(text, &format!("seed {seed} appears twice")));
                }
                seeds.push(seed);
            }
        }
        Ok(Seeds(seeds))
    }
}

/// The median and the range (lowest, highest) of the finite values among
/// `values`; `None` when none is finite.
pub fn median_range(values: &[f64]) -> Option<(f64, f64, f64)> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    };
    Some((median, v[0], v[n - 1]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Vec<u64> {
        s.parse::<Seeds>().unwrap().as_slice().to_vec()
    }

    #[test]
    fn ranges_lists_and_single_seeds_parse() {
        assert_eq!(parse("3"), vec![3]);
        assert_eq!(parse("0..5"), vec![0, 1, 2, 3, 4]);
        assert_eq!(parse("0..=4"), vec![0, 1, 2, 3, 4]);
        assert_eq!(parse("1,4,9"), vec![1, 4, 9]);
        assert_eq!(parse(" 0..2 , 7 "), vec![0, 1, 7]);
        assert_eq!(parse("5..6"), vec![5]);
        assert_eq!("0..5".parse::<Seeds>().unwrap().to_string(), "0..5");
        assert_eq!("1,4,9".parse::<Seeds>().unwrap().to_string(), "1,4,9");
    }

    #[test]
    fn bad_seed_lists_are_clear_errors() {
        for (text, says) in [
            ("5..2", "the range 5..2 is empty"),
            ("3..3", "the range 3..3 is empty"),
            ("4..=2", "the range 4..=2 is empty"),
            ("x", "'x' is not a whole number"),
            ("", "empty entry"),
            ("1,,2", "empty entry"),
            ("-1", "'-1' is not a whole number"),
            ("0..x", "'x' is not a whole number"),
            ("1,1", "seed 1 appears twice"),
            ("0..3,2", "seed 2 appears twice"),
            ("0..100000000000", "more than 1000 seeds"),
            ("0..=18446744073709551615", "more than 1000 seeds"),
        ] {
            let err = text.parse::<Seeds>().unwrap_err().to_string();
            assert!(err.contains(says), "{text}: {err}");
            assert!(err.contains("0..5 for seeds 0 to 4"), "{text}: {err}");
        }
    }

    #[test]
    fn median_and_range_skip_non_finite_values() {
        assert_eq!(
            median_range(&[0.9, 0.5, 0.7, f64::NAN]),
            Some((0.7, 0.5, 0.9))
        );
        assert_eq!(median_range(&[1.0, 3.0]), Some((2.0, 1.0, 3.0)));
        assert_eq!(median_range(&[f64::NAN]), None);
        assert_eq!(median_range(&[]), None);
    }
}
