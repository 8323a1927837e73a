//! Comma-separated numeric data with one integer label column.

use super::dataset::Dataset;
use super::io::read_file;
use crate::error::Error;
use std::path::Path;

/// The largest class label a CSV file may use (so `n_classes` stays at most
/// 65536 and per-class tables stay small).
pub const MAX_CSV_LABEL: u32 = 65535;

/// Which column holds the label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LabelColumn {
    /// The last column (the default).
    #[default]
    Last,
    /// The first column.
    First,
    /// The column with this 0-based index.
    Index(usize),
}

/// Whether the first row is a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Header {
    /// The first row is a header if and only if any of its cells fails to
    /// parse as a number (the default).
    #[default]
    Auto,
    /// The first row is a header and is skipped.
    Yes,
    /// There is no header; the first row is data.
    No,
}

/// How to read a CSV file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CsvOptions {
    /// Which column holds the label.
    pub label_column: LabelColumn,
    /// Whether the first row is a header.
    pub header: Header,
}

/// Reads a CSV file (gunzipped first if its name ends in `.gz`) and parses
/// it with [`parse_csv`], naming the data set after the path.
///
/// A missing or unreadable file gives [`Error::Io`] naming the path; bad
/// content gives [`Error::Data`] (invalid UTF-8 names the byte offset).
pub fn load_csv(path: &Path, options: CsvOptions) -> Result<Dataset, Error> {
    let name = path.display().to_string();
    let bytes = read_file(path)?;
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        let offset = e.valid_up_to();
        let line = bytes[..offset].iter().filter(|&&b| b == b'\n').count() + 1;
        Error::Data {
            path: name.clone(),
            message: format!(
                "invalid UTF-8 at byte offset {offset} (line {line}); \
                 save the file as UTF-8 or plain ASCII text"
            ),
        }
    })?;
    parse_csv(&name, text, options)
}

/// Parses CSV text into a data set called `name`.
///
/// Rules: cells are separated by commas (no quoting); whitespace around
/// cells and lines is trimmed; blank lines are skipped; `\r\n` line ends
/// and a leading UTF-8 byte-order mark are fine. Every row must have as
/// many cells as the first. Features are every column but the label
/// column, in order, and must be finite numbers; labels must be
/// non-negative integers (`3` or `3.0`) no larger than [`MAX_CSV_LABEL`].
/// `n_classes` is the largest label + 1.
///
/// Errors are [`Error::Data`] with `name` as the path and a message naming
/// the 1-based line and column: ragged rows, non-numeric cells, NaN or
/// infinite features, bad labels, no data rows (empty, blank or
/// header-only text), a label column out of range, or rows with fewer than
/// two cells.
pub fn parse_csv(name: &str, text: &str, options: CsvOptions) -> Result<Dataset, Error> {
    let err = |message: String| Error::Data {
        path: name.to_string(),
        message,
    };
    let mut lines = numbered_lines(text);
    let Some((first_no, first)) = lines.next() else {
        return Err(err(
            "no data rows: the file is empty or contains only blank lines".to_string(),
        ));
    };
    let n_cells = first.split(',').count();
    if n_cells < 2 {
        return Err(err(format!(
            "line {first_no} has 1 cell; each row needs at least one feature and a label, \
             separated by commas (is the file comma-separated?)"
        )));
    }
    let label_col = match options.label_column {
        LabelColumn::Last => n_cells - 1,
        LabelColumn::First => 0,
        LabelColumn::Index(i) if i < n_cells => i,
        LabelColumn::Index(i) => {
            return Err(err(format!(
                "label column index {i} (0-based) is out of range: line {first_no} has \
                 {n_cells} cells, so valid indices are 0..={}",
                n_cells - 1
            )))
        }
    };
    let is_header = match options.header {
        Header::Yes => true,
        Header::No => false,
        Header::Auto => first.split(',').any(|c| c.trim().parse::<f64>().is_err()),
    };

    // Every cell is at least one byte (its comma), so these stay within a
    // small multiple of the input size.
    let mut features: Vec<f32> = Vec::new();
    let mut labels: Vec<u32> = Vec::new();
    let mut max_label = 0u32;
    let mut parse_row = |line_no: usize, line: &str| -> Result<(), Error> {
        let cells = cells(line_no, line, n_cells, first_no).map_err(err)?;
        for (col, cell) in cells.enumerate() {
            let col1 = col + 1;
            if col == label_col {
                let label = parse_label(cell)
                    .map_err(|why| err(format!("line {line_no}, column {col1}: label {why}")))?;
                max_label = max_label.max(label);
                labels.push(label);
            } else {
                let v = parse_feature(cell)
                    .map_err(|why| err(format!("line {line_no}, column {col1}: {why}")))?;
                features.push(v);
            }
        }
        Ok(())
    };
    if !is_header {
        parse_row(first_no, first)?;
    }
    for (line_no, line) in lines {
        parse_row(line_no, line)?;
    }
    if labels.is_empty() {
        let why = match options.header {
            Header::Auto => "it has a non-numeric cell, so it was read as a header",
            _ => "it was declared a header",
        };
        return Err(err(format!(
            "no data rows: the file holds only line {first_no}, and {why}; add data rows \
             below it"
        )));
    }
    Dataset::new(name, features, labels, n_cells - 1, max_label as usize + 1)
}

/// Reads a features-only CSV file (no label column), for prediction:
/// returns the row-major values and (rows, columns). The same cell rules
/// and errors as [`parse_csv`]; a header is detected as there.
pub fn load_features_csv(path: &Path) -> Result<(Vec<f32>, usize, usize), Error> {
    let name = path.display().to_string();
    let bytes = read_file(path)?;
    let text = std::str::from_utf8(&bytes).map_err(|e| Error::Data {
        path: name.clone(),
        message: format!(
            "invalid UTF-8 at byte offset {}; save the file as UTF-8",
            e.valid_up_to()
        ),
    })?;
    parse_features_csv(&name, text)
}

/// Parses features-only CSV text; see [`load_features_csv`].
pub fn parse_features_csv(name: &str, text: &str) -> Result<(Vec<f32>, usize, usize), Error> {
    let err = |message: String| Error::Data {
        path: name.to_string(),
        message,
    };
    let mut lines = numbered_lines(text).peekable();
    let Some(&(first_no, first)) = lines.peek() else {
        return Err(err("no data rows: the file is empty".to_string()));
    };
    let n_cells = first.split(',').count();
    if first.split(',').any(|c| c.trim().parse::<f64>().is_err()) {
        lines.next();
    }
    let mut values = Vec::new();
    let mut rows = 0;
    for (line_no, line) in lines {
        for (col, cell) in cells(line_no, line, n_cells, first_no)
            .map_err(err)?
            .enumerate()
        {
            values.push(
                parse_feature(cell)
                    .map_err(|why| err(format!("line {line_no}, column {}: {why}", col + 1)))?,
            );
        }
        rows += 1;
    }
    if rows == 0 {
        return Err(err(format!(
            "no data rows: only a header (line {first_no})"
        )));
    }
    Ok((values, rows, n_cells))
}

/// The non-blank lines of CSV text (a leading byte-order mark dropped),
/// trimmed and numbered from 1.
fn numbered_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.strip_prefix('\u{feff}')
        .unwrap_or(text)
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty())
}

/// The trimmed cells of line `line_no`, which must number `n_cells` (as in
/// line `first_no`). Counted before they are handed out, never collected:
/// a line of a million commas costs no memory.
fn cells(
    line_no: usize,
    line: &str,
    n_cells: usize,
    first_no: usize,
) -> Result<impl Iterator<Item = &str>, String> {
    let count = line.split(',').count();
    if count != n_cells {
        return Err(format!(
            "line {line_no} has {count} cell{}, expected {n_cells} (as in line {first_no}); \
             every row needs the same number of comma-separated cells",
            if count == 1 { "" } else { "s" }
        ));
    }
    Ok(line.split(',').map(str::trim))
}

fn parse_feature(cell: &str) -> Result<f32, String> {
    if cell.is_empty() {
        return Err("empty cell; every feature needs a number".to_string());
    }
    match cell.parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(format!(
            "'{cell}' is not a finite number (NaN, infinite or out of f32 range); \
             replace or drop the row"
        )),
        Err(_) => Err(format!("'{cell}' is not a number")),
    }
}

fn parse_label(cell: &str) -> Result<u32, String> {
    if let Ok(v) = cell.parse::<u32>() {
        return if v <= MAX_CSV_LABEL {
            Ok(v)
        } else {
            Err(format!("{v} is too large (at most {MAX_CSV_LABEL})"))
        };
    }
    match cell.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 && v.fract() == 0.0 => {
            if v <= MAX_CSV_LABEL as f64 {
                Ok(v as u32)
            } else {
                Err(format!("'{cell}' is too large (at most {MAX_CSV_LABEL})"))
            }
        }
        Ok(_) => Err(format!(
            "'{cell}' is not a non-negative integer; labels are class indices 0, 1, 2, ..."
        )),
        Err(_) => Err(format!(
            "'{cell}' is not a number; labels are class indices 0, 1, 2, ... \
             (map class names to integers first)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(label_column: LabelColumn, header: Header) -> CsvOptions {
        CsvOptions {
            label_column,
            header,
        }
    }

    fn msg(r: Result<Dataset, Error>) -> String {
        match r {
            Err(e @ Error::Data { .. }) => e.to_string(),
            other => panic!("expected Error::Data, got {other:?}"),
        }
    }

    #[test]
    fn parses_with_auto_header_and_last_label() {
        let d = parse_csv("t", "a,b,y\n1,2,0\n\n 3 , 4 ,2\r\n", CsvOptions::default()).unwrap();
        assert_eq!(d.features, vec![1.0, 2.0, 3.0, 4.0]);
        assert_eq!(d.labels, vec![0, 2]);
        assert_eq!((d.n_features, d.n_classes), (2, 3));
        assert_eq!(d.name, "t");
    }

    #[test]
    fn label_first_and_index() {
        let d = parse_csv(
            "t",
            "1,0.5,7\n0,1.5,8\n",
            opts(LabelColumn::First, Header::No),
        )
        .unwrap();
        assert_eq!(d.features, vec![0.5, 7.0, 1.5, 8.0]);
        assert_eq!(d.labels, vec![1, 0]);
        let d = parse_csv(
            "t",
            "0.5,1,7\n1.5,0,8\n",
            opts(LabelColumn::Index(1), Header::No),
        )
        .unwrap();
        assert_eq!(d.features, vec![0.5, 7.0, 1.5, 8.0]);
        assert_eq!(d.labels, vec![1, 0]);
    }

    #[test]
    fn header_yes_skips_a_numeric_first_row() {
        let d = parse_csv("t", "9,9,9\n1,2,1\n", opts(LabelColumn::Last, Header::Yes)).unwrap();
        assert_eq!(d.len(), 1);
        let d = parse_csv("t", "9,9,1\n1,2,1\n", opts(LabelColumn::Last, Header::Auto)).unwrap();
        assert_eq!(d.len(), 2);
    }

    #[test]
    fn bom_and_float_labels() {
        let d = parse_csv("t", "\u{feff}1,2.0\n3,1e0\n", CsvOptions::default()).unwrap();
        assert_eq!(d.labels, vec![2, 1]);
    }

    #[test]
    fn errors_name_the_line() {
        let m = msg(parse_csv(
            "t",
            "1,2,0\n3,4,1\n\n5,6,1,2\n",
            CsvOptions::default(),
        ));
        assert!(
            m.contains("line 4 has 4 cells, expected 3 (as in line 1)"),
            "{m}"
        );
        let m = msg(parse_csv("t", "1,2,0\n3,abc,1\n", CsvOptions::default()));
        assert!(m.contains("line 2, column 2: 'abc' is not a number"), "{m}");
        let m = msg(parse_csv("t", "1,2,0\n3,,1\n", CsvOptions::default()));
        assert!(m.contains("line 2, column 2: empty cell"), "{m}");
        for bad in ["NaN", "inf", "-infinity", "1e40"] {
            let m = msg(parse_csv(
                "t",
                &format!("1,2,0\n{bad},4,1\n"),
                CsvOptions::default(),
            ));
            assert!(
                m.contains("line 2, column 1") && m.contains("finite"),
                "{m}"
            );
        }
        for bad in ["1.5", "-1", "cat", "nan", "inf", "70000", "1e10"] {
            let m = msg(parse_csv(
                "t",
                &format!("1,2,0\n3,4,{bad}\n"),
                CsvOptions::default(),
            ));
            assert!(m.contains("line 2, column 3: label"), "{bad}: {m}");
        }
        let m = msg(parse_csv("t", "", CsvOptions::default()));
        assert!(m.contains("no data rows"), "{m}");
        let m = msg(parse_csv("t", "\n  \n\r\n", CsvOptions::default()));
        assert!(m.contains("no data rows"), "{m}");
        let m = msg(parse_csv("t", "a,b,label\n\n", CsvOptions::default()));
        assert!(m.contains("no data rows") && m.contains("line 1"), "{m}");
        let m = msg(parse_csv(
            "t",
            "1,2,3\n",
            opts(LabelColumn::Index(3), Header::No),
        ));
        assert!(
            m.contains("label column index 3") && m.contains("line 1"),
            "{m}"
        );
        let m = msg(parse_csv("t", "\n1\n2\n", CsvOptions::default()));
        assert!(m.contains("line 2 has 1 cell"), "{m}");
    }

    #[test]
    fn huge_single_row_is_bounded() {
        // 100k cells: parses without blow-up; memory is ~4 bytes per cell.
        let row: String = std::iter::repeat_n("1,", 100_000).collect::<String>() + "0";
        let d = parse_csv("wide", &row, CsvOptions::default()).unwrap();
        assert_eq!(d.n_features, 100_000);
        let ragged = format!("{row}\n1,0\n");
        let m = msg(parse_csv("wide", &ragged, CsvOptions::default()));
        assert!(m.contains("line 2 has 2 cells, expected 100001"), "{m}");
    }
}
