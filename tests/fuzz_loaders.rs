//! Property-based fuzzing of the CSV and IDX loaders ([`parse_csv`],
//! [`parse_idx`]): no input may make them panic, hang or allocate more than
//! a small multiple of its size, every `Ok` must be a consistent data set,
//! every `Err` an [`Error::Data`] naming the input, and valid tables and IDX
//! pairs must round-trip exactly.
//!
//! Each case runs on its own thread under a watchdog ([`guarded`]): a panic
//! becomes a test failure (which proptest then shrinks), a case that gives
//! no answer within [`CASE_TIME_LIMIT`] fails as a hang, and a counting
//! global allocator measures the case's peak heap use.
//!
//! Cases per property come from the `FUZZ_CASES` environment variable
//! (default [`DEFAULT_CASES`], so the normal test run stays fast);
//! `scripts/fuzz.sh` runs 100 000 per property in release mode. Nothing is
//! written to disk: failure persistence is off, and a failure's minimal
//! input is printed in the panic message instead (copy it into
//! [`regression_inputs_hold_the_properties`]).

use fusedmlp::data::{
    parse_csv, parse_idx, CsvOptions, Dataset, Header, LabelColumn, MAX_CSV_LABEL,
};
use fusedmlp::Error;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::test_runner::{TestCaseError, TestCaseResult, TestRunner};
use std::cell::Cell;
use std::fmt::Debug;
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

/// Cases per property when `FUZZ_CASES` is unset.
const DEFAULT_CASES: u32 = 2000;

/// A case that gives no answer within this long fails as a hang. Real cases
/// take microseconds; the inputs here are at most a few tens of KiB.
const CASE_TIME_LIMIT: Duration = Duration::from_secs(1);

/// The heap a case may use at its peak: this multiple of the input size...
const ALLOC_FACTOR: usize = 16;
/// ...plus this much for names, messages and small tables.
const ALLOC_SLACK: usize = 64 * 1024;

/// The data set name passed to the loaders.
const NAME: &str = "fuzz";

// ---------------------------------------------------------------------------
// Peak-heap metering: a counting global allocator with per-thread totals.
// ---------------------------------------------------------------------------

mod meter {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    /// A fuzz case asking for more than this in total is refused memory
    /// (the process aborts with "memory allocation of N bytes failed")
    /// rather than risking the machine: the soft per-case bound is checked
    /// after each case, this only guards against a runaway allocation.
    const HARD_CAP: isize = 512 << 20;

    thread_local! {
        static TRACKED: Cell<bool> = const { Cell::new(false) };
        static CURRENT: Cell<isize> = const { Cell::new(0) };
        static PEAK: Cell<isize> = const { Cell::new(0) };
    }

    /// Returns false if the allocation must be refused.
    fn grow(size: usize) -> bool {
        let size = size as isize;
        let ok = TRACKED.try_with(|t| t.get()).unwrap_or(false);
        let base = CURRENT.try_with(|c| c.get()).unwrap_or(0);
        if ok && base.saturating_add(size) > HARD_CAP {
            return false;
        }
        let now = base.saturating_add(size);
        let _ = CURRENT.try_with(|c| c.set(now));
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
        true
    }

    fn shrink(size: usize) {
        let _ = CURRENT.try_with(|c| c.set(c.get().saturating_sub(size as isize)));
    }

    pub struct Counting;

    // SAFETY: every call is forwarded to `System` unchanged (or refused with
    // a null pointer, which the `GlobalAlloc` contract allows); the
    // bookkeeping only touches const-initialised, drop-free thread locals,
    // which never allocate.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            if !grow(layout.size()) {
                return std::ptr::null_mut();
            }
            unsafe { System.alloc(layout) }
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            if !grow(layout.size()) {
                return std::ptr::null_mut();
            }
            unsafe { System.alloc_zeroed(layout) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            shrink(layout.size());
            unsafe { System.dealloc(ptr, layout) }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            // Counted as a fresh block alongside the old one (a moving
            // realloc holds both for a moment), then the old one is freed.
            if !grow(new_size) {
                return std::ptr::null_mut();
            }
            let new = unsafe { System.realloc(ptr, layout, new_size) };
            if new.is_null() {
                shrink(new_size);
            } else {
                shrink(layout.size());
            }
            new
        }
    }

    /// Starts metering this thread; returns the baseline for [`stop`].
    pub fn start() -> isize {
        let base = CURRENT.with(Cell::get);
        PEAK.with(|p| p.set(base));
        TRACKED.with(|t| t.set(true));
        base
    }

    /// Stops metering this thread; returns the peak bytes above `base`.
    pub fn stop(base: isize) -> usize {
        TRACKED.with(|t| t.set(false));
        PEAK.with(Cell::get).saturating_sub(base).max(0) as usize
    }
}

#[global_allocator]
static ALLOCATOR: meter::Counting = meter::Counting;

// ---------------------------------------------------------------------------
// The harness: config, watchdog, statistics.
// ---------------------------------------------------------------------------

fn cases() -> u32 {
    match std::env::var("FUZZ_CASES") {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("FUZZ_CASES={s:?} is not a whole number of cases")),
        Err(_) => DEFAULT_CASES,
    }
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        max_shrink_iters: 2048,
        // Bounds shrinking of a hang (each step may wait CASE_TIME_LIMIT).
        max_shrink_time: 60_000,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// What one property saw over all its cases.
#[derive(Default)]
struct Stats {
    cases: Cell<u64>,
    ok: Cell<u64>,
    slowest: Cell<Duration>,
    peak_bytes: Cell<usize>,
    largest_input: Cell<usize>,
}

/// One case's result with its cost.
struct Outcome<T> {
    value: T,
    elapsed: Duration,
    peak_bytes: usize,
}

/// Runs `f` on a fresh thread under the watchdog and the allocation meter:
/// a panic or a run past [`CASE_TIME_LIMIT`] is a failed case.
fn guarded<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<Outcome<T>, TestCaseError> {
    let (tx, rx) = mpsc::channel();
    let handle = thread::Builder::new()
        .name("fuzz-case".to_string())
        .spawn(move || {
            let base = meter::start();
            let start = Instant::now();
            let result = panic::catch_unwind(AssertUnwindSafe(f));
            let elapsed = start.elapsed();
            let peak_bytes = meter::stop(base);
            let _ = tx.send((result, elapsed, peak_bytes));
        })
        .expect("spawning a fuzz worker thread");
    match rx.recv_timeout(CASE_TIME_LIMIT) {
        Ok((Ok(value), elapsed, peak_bytes)) => {
            let _ = handle.join();
            Ok(Outcome {
                value,
                elapsed,
                peak_bytes,
            })
        }
        Ok((Err(payload), ..)) => {
            let _ = handle.join();
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(non-string panic payload)".to_string());
            Err(TestCaseError::fail(format!("the loader panicked: {msg}")))
        }
        // The worker is left behind: it cannot be stopped, only abandoned.
        Err(RecvTimeoutError::Timeout) => Err(TestCaseError::fail(format!(
            "no result within {CASE_TIME_LIMIT:?}: the loader hangs or is pathologically slow"
        ))),
        Err(RecvTimeoutError::Disconnected) => Err(TestCaseError::fail(
            "the worker thread ended without a result",
        )),
    }
}

/// Records a case's cost and checks its time and memory bounds.
fn account<T>(stats: &Stats, out: &Outcome<T>, input_len: usize, ok: bool) -> TestCaseResult {
    stats.cases.set(stats.cases.get() + 1);
    stats.ok.set(stats.ok.get() + u64::from(ok));
    stats.slowest.set(stats.slowest.get().max(out.elapsed));
    stats
        .peak_bytes
        .set(stats.peak_bytes.get().max(out.peak_bytes));
    stats
        .largest_input
        .set(stats.largest_input.get().max(input_len));
    prop_assert!(
        out.elapsed < CASE_TIME_LIMIT,
        "took {:?} (limit {CASE_TIME_LIMIT:?})",
        out.elapsed
    );
    let bound = ALLOC_FACTOR * input_len + ALLOC_SLACK;
    prop_assert!(
        out.peak_bytes <= bound,
        "peak heap {} bytes for a {input_len}-byte input (bound {bound})",
        out.peak_bytes
    );
    Ok(())
}

/// Runs one property for [`cases`] cases, prints what it saw, and panics
/// with the minimal failing input if a case fails.
fn fuzz<S>(name: &str, strategy: S, check: impl Fn(S::Value, &Stats) -> TestCaseResult) -> Stats
where
    S: Strategy,
    S::Value: Debug,
{
    let config = config();
    let cases = config.cases;
    let mut runner = TestRunner::new(config);
    let stats = Stats::default();
    let start = Instant::now();
    let result = runner.run(&strategy, |value| check(value, &stats));
    let wall = start.elapsed();
    println!(
        "fuzz {name}: {} cases ({} configured): {} Ok, {} Err; slowest case {:?}, \
         largest peak heap {} bytes, largest input {} bytes; {:.2?} in all",
        stats.cases.get(),
        cases,
        stats.ok.get(),
        stats.cases.get() - stats.ok.get(),
        stats.slowest.get(),
        stats.peak_bytes.get(),
        stats.largest_input.get(),
        wall
    );
    if let Err(e) = result {
        panic!("fuzz {name}: {e}");
    }
    stats
}

/// The harness itself: a panic, a hang and an outsized allocation each
/// fail a case, so a passing fuzz run means something.
#[test]
fn harness_catches_panics_hangs_and_allocations() {
    let err = guarded(|| panic!("deliberate panic (harness self-test)"))
        .err()
        .expect("a panic must fail the case");
    assert!(err.to_string().contains("deliberate panic"), "{err}");

    let out = guarded(|| vec![1u8; 1 << 20]).unwrap_or_else(|e| panic!("{e}"));
    assert!(out.peak_bytes >= 1 << 20, "peak {} bytes", out.peak_bytes);
    assert!(
        account(&Stats::default(), &out, 1000, true).is_err(),
        "1 MiB for a 1000-byte input must break the memory bound"
    );

    let err = guarded(|| thread::sleep(CASE_TIME_LIMIT * 2))
        .err()
        .expect("a hang must fail the case");
    assert!(err.to_string().contains("no result"), "{err}");
}

/// The invariants every loaded data set must satisfy.
fn check_dataset(d: &Dataset) -> TestCaseResult {
    prop_assert_eq!(d.name(), NAME);
    prop_assert!(!d.is_empty(), "Ok with no rows");
    prop_assert!(d.n_features() >= 1, "n_features = 0");
    prop_assert!(d.n_classes() >= 1, "n_classes = 0");
    prop_assert_eq!(
        Some(d.features().len()),
        d.labels().len().checked_mul(d.n_features()),
        "features.len() != labels.len() * n_features"
    );
    if let Some(l) = d.labels().iter().find(|&&l| l as usize >= d.n_classes()) {
        prop_assert!(false, "label {} >= n_classes {}", l, d.n_classes());
    }
    if let Some(v) = d.features().iter().find(|v| !v.is_finite()) {
        prop_assert!(false, "non-finite feature {}", v);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// CSV
// ---------------------------------------------------------------------------

/// Runs `parse_csv` on `text` under the guard and checks everything that
/// must hold whatever the input; returns the result for further checks.
fn check_csv(
    text: String,
    options: CsvOptions,
    stats: &Stats,
) -> Result<Option<Dataset>, TestCaseError> {
    let input_len = text.len();
    let out = guarded(move || {
        let r = parse_csv(NAME, &text, options);
        (text, r)
    })?;
    account(stats, &out, input_len, out.value.1.is_ok())?;
    let (text, result) = out.value;
    match result {
        Ok(d) => {
            check_dataset(&d)?;
            let max_label = d.labels().iter().copied().max().unwrap_or(0);
            prop_assert!(max_label <= MAX_CSV_LABEL, "label {} too large", max_label);
            prop_assert_eq!(d.n_classes(), max_label as usize + 1, "n_classes");
            // Features are every cell of the first non-blank line but one.
            let body = text.strip_prefix('\u{feff}').unwrap_or(&text);
            let first = body.lines().map(str::trim).find(|l| !l.is_empty());
            prop_assert_eq!(
                Some(d.n_features() + 1),
                first.map(|l| l.split(',').count()),
                "n_features + 1 != cells in the first non-blank line"
            );
            let rows = body.lines().filter(|l| !l.trim().is_empty()).count();
            prop_assert!(d.len() <= rows, "{} rows from {} lines", d.len(), rows);
            Ok(Some(d))
        }
        Err(Error::Data { path, message }) => {
            prop_assert_eq!(path.as_str(), NAME);
            prop_assert!(!message.is_empty(), "empty error message");
            Ok(None)
        }
        Err(other) => Err(TestCaseError::fail(format!(
            "expected Error::Data, got {other:?}"
        ))),
    }
}

fn csv_options() -> impl Strategy<Value = CsvOptions> {
    let label = prop_oneof![
        3 => Just(LabelColumn::Last),
        2 => Just(LabelColumn::First),
        3 => (0usize..10).prop_map(LabelColumn::Index),
        1 => Just(LabelColumn::Index(usize::MAX)),
        1 => any::<usize>().prop_map(LabelColumn::Index),
    ];
    let header = prop_oneof![Just(Header::Auto), Just(Header::Yes), Just(Header::No)];
    (label, header).prop_map(|(label_column, header)| CsvOptions {
        label_column,
        header,
    })
}

/// Cells that sit on the edges of the number and label grammars.
const SPECIAL_CELLS: &[&str] = &[
    "",
    " ",
    "nan",
    "NaN",
    "-nan",
    "inf",
    "-inf",
    "+inf",
    "infinity",
    "-Infinity",
    "-1",
    "-0",
    "+3",
    "1.5",
    "3.0",
    "3.",
    ".5",
    ".",
    "-",
    "+",
    "e",
    "1e",
    "1e+",
    "1e0",
    "1e5",
    "1e40",
    "-1e40",
    "1e-50",
    "1e308",
    "1e309",
    "3.4028235e38",
    "3.4028236e38",
    "340282356779733661637539395458142568448",
    "0.0000001",
    "abc",
    "x0",
    "label",
    "0",
    "1",
    "65535",
    "65535.0",
    "65536",
    "4294967295",
    "4294967296",
    "18446744073709551616",
    "0x10",
    "1_000",
    "1 2",
    "\"1\"",
    "\u{0661}",
    "\u{feff}1",
    "1\u{a0}",
    "\u{3000}2",
    "１",
];

/// One cell: mostly small integers (so some rows are valid), else numbers of
/// every kind, edge cells, or a few arbitrary characters.
fn csv_cell() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => (0i32..10).prop_map(|v| v.to_string()),
        2 => (-1000i32..1000).prop_map(|v| v.to_string()),
        2 => any::<f32>().prop_map(|v| v.to_string()),
        1 => any::<f64>().prop_map(|v| format!("{v:e}")),
        1 => (0u32..70_000).prop_map(|v| v.to_string()),
        3 => select(SPECIAL_CELLS).prop_map(str::to_string),
        1 => vec(any::<char>(), 0..4).prop_map(String::from_iter),
    ]
}

/// A cell that is nearly always a valid feature or label.
fn clean_csv_cell() -> impl Strategy<Value = String> {
    prop_oneof![
        40 => (0i32..10).prop_map(|v| v.to_string()),
        10 => finite_f32().prop_map(|v| v.to_string()),
        1 => csv_cell(),
    ]
}

const PADS: &[&str] = &["", "", "", " ", "\t", "  ", " \t"];

const LINE_ENDS: &[&str] = &[
    "\n", "\n", "\n", "\r\n", "\r\n", "\r", "", "\n\n", "\n \n", "\r\n\r\n", "\u{85}", "\u{2028}",
];

/// Rows of cells (usually all the same width, sometimes ragged) with random
/// padding, line ends, extra commas, blank lines and an optional BOM.
/// Half the texts are "clean" (almost every cell a valid number), so that
/// the Ok path is reached too.
fn structured_csv() -> impl Strategy<Value = String> {
    (1usize..6, any::<bool>())
        .prop_flat_map(|(width, clean)| {
            let cell = move || {
                let value = if clean {
                    clean_csv_cell().boxed()
                } else {
                    csv_cell().boxed()
                };
                (select(PADS), value, select(PADS))
            };
            let (regular, ragged) = if clean { (30, 1) } else { (6, 1) };
            let row = prop_oneof![
                regular => vec(cell(), width),
                ragged => vec(cell(), 0..8),
            ];
            let end = if clean {
                prop_oneof![20 => select(CLEAN_LINE_ENDS), 1 => select(LINE_ENDS)].boxed()
            } else {
                select(LINE_ENDS).boxed()
            };
            (any::<bool>(), vec((row, end), 0..12))
        })
        .prop_map(|(bom, rows)| {
            let mut s = String::new();
            if bom {
                s.push('\u{feff}');
            }
            for (cells, end) in rows {
                let cells: Vec<String> = cells
                    .into_iter()
                    .map(|(l, c, r)| format!("{l}{c}{r}"))
                    .collect();
                s.push_str(&cells.join(","));
                s.push_str(end);
            }
            s
        })
}

/// Line ends that keep rows apart (`str::lines` splits only at `\n`).
const CLEAN_LINE_ENDS: &[&str] = &["\n", "\r\n", "\n\n", "\r\n \r\n"];

/// Characters CSV numbers are made of, plus separators and a few letters.
const SOUP: &[char] = &[
    '0', '1', '2', '5', '9', '.', ',', ',', ',', '-', '+', 'e', 'E', ' ', '\t', '\r', '\n', '\n',
    'n', 'a', 'i', 'f', 'x', '\u{feff}',
];

/// A valid table of finite features and integer labels, with everything
/// needed to render it as CSV text.
#[derive(Debug, Clone)]
struct Table {
    rows: Vec<Vec<f32>>,
    labels: Vec<u32>,
    /// Where the label goes among the cells (0..=n_features).
    label_pos: usize,
    /// Name the label column First/Last where possible (else Index).
    named_label: bool,
    header_row: bool,
    auto_header: bool,
    bom: bool,
    leading: &'static str,
    /// One per line (the header's first if there is one).
    line_ends: Vec<&'static str>,
    final_newline: bool,
    pads: Vec<&'static str>,
    /// 0: `3`, 1: `3.0`, 2: `3e0`.
    label_styles: Vec<u8>,
}

const EDGE_F32: &[f32] = &[
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.1,
    f32::MIN_POSITIVE,
    f32::MAX,
    f32::MIN,
    f32::EPSILON,
    1e-45,
    -1e-45,
    16_777_217.0,
];

fn finite_f32() -> impl Strategy<Value = f32> {
    prop_oneof![
        3 => (-1000i32..=1000).prop_map(|v| v as f32),
        2 => (-1000i32..=1000, 1u16..=1000).prop_map(|(a, b)| a as f32 / f32::from(b)),
        3 => any::<u32>().prop_map(|bits| {
            let v = f32::from_bits(bits);
            if v.is_finite() { v } else { 0.0 }
        }),
        1 => select(EDGE_F32),
    ]
}

fn csv_label() -> impl Strategy<Value = u32> {
    prop_oneof![
        6 => 0u32..10,
        1 => 0u32..=MAX_CSV_LABEL,
        1 => Just(MAX_CSV_LABEL),
    ]
}

fn table() -> impl Strategy<Value = Table> {
    (1usize..=8, 1usize..=20)
        .prop_flat_map(|(n_features, n_rows)| {
            (
                vec(vec(finite_f32(), n_features), n_rows),
                vec(csv_label(), n_rows),
                0..=n_features,
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
                select(&["", "", "\n", "\r\n", " \n\n", "\t\r\n"][..]),
                vec(
                    select(
                        &[
                            "\n", "\n", "\r\n", "\n\n", "\r\n\r\n", "\n   \n", "\n\t\r\n",
                        ][..],
                    ),
                    n_rows + 1,
                ),
                any::<bool>(),
                vec(select(&["", "", " ", "\t", "  ", " \t "][..]), 1..6),
                vec(0u8..3, n_rows),
            )
        })
        .prop_map(
            |(
                rows,
                labels,
                label_pos,
                named_label,
                header_row,
                auto_header,
                bom,
                leading,
                line_ends,
                final_newline,
                pads,
                label_styles,
            )| Table {
                rows,
                labels,
                label_pos,
                named_label,
                header_row,
                auto_header,
                bom,
                leading,
                line_ends,
                final_newline,
                pads,
                label_styles,
            },
        )
}

impl Table {
    fn n_features(&self) -> usize {
        self.rows[0].len()
    }

    fn options(&self) -> CsvOptions {
        let nf = self.n_features();
        let label_column = match self.label_pos {
            p if self.named_label && p == nf => LabelColumn::Last,
            0 if self.named_label => LabelColumn::First,
            p => LabelColumn::Index(p),
        };
        let header = match (self.header_row, self.auto_header) {
            (_, true) => Header::Auto,
            (true, false) => Header::Yes,
            (false, false) => Header::No,
        };
        CsvOptions {
            label_column,
            header,
        }
    }

    fn render(&self) -> String {
        let nf = self.n_features();
        let mut lines: Vec<Vec<String>> = Vec::new();
        if self.header_row {
            let mut names: Vec<String> = (0..nf).map(|i| format!("f{i}")).collect();
            names.insert(self.label_pos, "label".to_string());
            lines.push(names);
        }
        for ((row, &label), &style) in self.rows.iter().zip(&self.labels).zip(&self.label_styles) {
            // `{}` prints the shortest text that parses back to the same f32.
            let mut cells: Vec<String> = row.iter().map(|v| format!("{v}")).collect();
            let label = match style {
                0 => format!("{label}"),
                1 => format!("{label}.0"),
                _ => format!("{label}e0"),
            };
            cells.insert(self.label_pos, label);
            lines.push(cells);
        }
        let mut s = String::new();
        if self.bom {
            s.push('\u{feff}');
        }
        s.push_str(self.leading);
        let mut pad = self.pads.iter().cycle();
        let n_lines = lines.len();
        for (i, (cells, end)) in lines.iter().zip(&self.line_ends).enumerate() {
            for (j, cell) in cells.iter().enumerate() {
                if j > 0 {
                    s.push(',');
                }
                s.push_str(pad.next().unwrap());
                s.push_str(cell);
                s.push_str(pad.next().unwrap());
            }
            if i + 1 < n_lines || self.final_newline {
                s.push_str(end);
            }
        }
        s
    }
}

/// A structural edit to a valid CSV text.
#[derive(Debug, Clone)]
enum Mutation {
    /// Replace the contents of one cell (cells split at `,` and `\n`).
    ReplaceCell(Index, String),
    /// Insert text at a character position.
    Insert(Index, String),
    /// Delete up to 3 characters at a position.
    Delete(Index, usize),
    /// Cut the text at a position.
    Truncate(Index),
    /// Append a copy of one line.
    DuplicateLine(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let insert_text = prop_oneof![
        2 => csv_cell(),
        2 => select(&[",", ",,", "\n", "\r\n", "\r", "\u{feff}", " ", "\n\n", ",\n"][..])
            .prop_map(str::to_string),
    ];
    prop_oneof![
        5 => (any::<Index>(), csv_cell()).prop_map(|(i, s)| Mutation::ReplaceCell(i, s)),
        3 => (any::<Index>(), insert_text).prop_map(|(i, s)| Mutation::Insert(i, s)),
        2 => (any::<Index>(), 1usize..=3).prop_map(|(i, n)| Mutation::Delete(i, n)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        1 => any::<Index>().prop_map(Mutation::DuplicateLine),
    ]
}

/// The char boundary at or before `index.index(len + 1)`.
fn boundary(s: &str, index: &Index) -> usize {
    let mut i = index.index(s.len() + 1);
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn apply(s: &mut String, m: &Mutation) {
    match m {
        Mutation::ReplaceCell(index, text) => {
            let mut cells = Vec::new();
            let mut start = 0;
            for (i, c) in s.char_indices() {
                if c == ',' || c == '\n' {
                    cells.push(start..i);
                    start = i + c.len_utf8();
                }
            }
            cells.push(start..s.len());
            let range = cells[index.index(cells.len())].clone();
            s.replace_range(range, text);
        }
        Mutation::Insert(index, text) => {
            let at = boundary(s, index);
            s.insert_str(at, text);
        }
        Mutation::Delete(index, n) => {
            let at = boundary(s, index);
            let end = s[at..]
                .char_indices()
                .nth(*n)
                .map_or(s.len(), |(i, _)| at + i);
            s.replace_range(at..end, "");
        }
        Mutation::Truncate(index) => {
            let at = boundary(s, index);
            s.truncate(at);
        }
        Mutation::DuplicateLine(index) => {
            let lines: Vec<String> = s.lines().map(str::to_string).collect();
            if !lines.is_empty() {
                let line = &lines[index.index(lines.len())];
                if !s.ends_with('\n') {
                    s.push('\n');
                }
                s.push_str(line);
                s.push('\n');
            }
        }
    }
}

#[test]
fn csv_arbitrary_unicode_never_panics() {
    fuzz(
        "csv_arbitrary_unicode_never_panics",
        (
            vec(any::<char>(), 0..300).prop_map(String::from_iter),
            csv_options(),
        ),
        |(text, options), stats| check_csv(text, options, stats).map(drop),
    );
}

#[test]
fn csv_character_soup_never_panics() {
    fuzz(
        "csv_character_soup_never_panics",
        (
            vec(select(SOUP), 0..300).prop_map(String::from_iter),
            csv_options(),
        ),
        |(text, options), stats| check_csv(text, options, stats).map(drop),
    );
}

#[test]
fn csv_structured_rows_never_panic() {
    let stats = fuzz(
        "csv_structured_rows_never_panic",
        (structured_csv(), csv_options()),
        |(text, options), stats| check_csv(text, options, stats).map(drop),
    );
    if stats.cases.get() >= 1000 {
        assert!(
            stats.ok.get() > 0,
            "the generator never produced a loadable table"
        );
    }
}

#[test]
fn csv_mutated_tables_never_panic() {
    let stats = fuzz(
        "csv_mutated_tables_never_panic",
        (
            table(),
            vec(mutation(), 1..4),
            prop::option::weighted(0.25, csv_options()),
        ),
        |(table, mutations, options), stats| {
            let mut text = table.render();
            for m in &mutations {
                apply(&mut text, m);
            }
            check_csv(text, options.unwrap_or_else(|| table.options()), stats).map(drop)
        },
    );
    if stats.cases.get() >= 1000 {
        assert!(stats.ok.get() > 0, "no mutated table ever loaded");
        assert!(
            stats.ok.get() < stats.cases.get(),
            "no mutation ever broke a table"
        );
    }
}

#[test]
fn csv_round_trip_is_exact() {
    fuzz("csv_round_trip_is_exact", table(), |table, stats| {
        let text = table.render();
        let options = table.options();
        let Some(d) = check_csv(text.clone(), options, stats)? else {
            return Err(TestCaseError::fail(format!(
                "a valid table failed to load: {:?}",
                parse_csv(NAME, &text, options).unwrap_err()
            )));
        };
        prop_assert_eq!(d.len(), table.rows.len());
        prop_assert_eq!(d.n_features(), table.n_features());
        prop_assert_eq!(d.labels(), table.labels.as_slice());
        let max = table.labels.iter().copied().max().unwrap();
        prop_assert_eq!(d.n_classes(), max as usize + 1);
        let want: Vec<u32> = table.rows.iter().flatten().map(|v| v.to_bits()).collect();
        let got: Vec<u32> = d.features().iter().map(|v| v.to_bits()).collect();
        prop_assert_eq!(got, want, "features differ (compared bit for bit)");
        Ok(())
    });
}

// ---------------------------------------------------------------------------
// IDX
// ---------------------------------------------------------------------------

const IMAGES_MAGIC: [u8; 4] = [0, 0, 8, 3];
const LABELS_MAGIC: [u8; 4] = [0, 0, 8, 1];

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Runs `parse_idx` under the guard and checks everything that must hold
/// whatever the input; returns the result for further checks.
fn check_idx(
    images: Vec<u8>,
    labels: Vec<u8>,
    stats: &Stats,
) -> Result<Option<Dataset>, TestCaseError> {
    let input_len = images.len() + labels.len();
    let out = guarded(move || {
        let r = parse_idx(NAME, &images, &labels);
        (images, labels, r)
    })?;
    account(stats, &out, input_len, out.value.2.is_ok())?;
    let (images, labels, result) = out.value;
    match result {
        Ok(d) => {
            check_dataset(&d)?;
            prop_assert!(
                images.len() >= 16 && labels.len() >= 8,
                "Ok from short files"
            );
            prop_assert_eq!(
                &images[..4],
                &IMAGES_MAGIC[..],
                "Ok with a wrong images magic"
            );
            prop_assert_eq!(
                &labels[..4],
                &LABELS_MAGIC[..],
                "Ok with a wrong labels magic"
            );
            let n = be_u32(&images[4..]) as usize;
            let rows = be_u32(&images[8..]) as usize;
            let cols = be_u32(&images[12..]) as usize;
            prop_assert_eq!(d.len(), n, "rows != header image count");
            prop_assert_eq!(
                be_u32(&labels[4..]) as usize,
                n,
                "label count != image count"
            );
            prop_assert_eq!(d.n_features(), rows * cols, "n_features != rows * cols");
            prop_assert_eq!(images.len(), 16 + n * rows * cols, "images length");
            prop_assert_eq!(labels.len(), 8 + n, "labels length");
            for (i, (&f, &p)) in d.features().iter().zip(&images[16..]).enumerate() {
                prop_assert_eq!(f, f32::from(p) / 255.0, "pixel {}", i);
            }
            let want: Vec<u32> = labels[8..].iter().map(|&l| u32::from(l)).collect();
            prop_assert_eq!(d.labels(), &want);
            let max = labels[8..].iter().copied().max().unwrap();
            prop_assert_eq!(d.n_classes(), usize::from(max) + 1, "n_classes");
            Ok(Some(d))
        }
        Err(Error::Data { path, message }) => {
            prop_assert!(
                path == format!("{NAME} (images)") || path == format!("{NAME} (labels)"),
                "error path {:?}",
                path
            );
            prop_assert!(!message.is_empty(), "empty error message");
            Ok(None)
        }
        Err(other) => Err(TestCaseError::fail(format!(
            "expected Error::Data, got {other:?}"
        ))),
    }
}

/// How much element data follows an IDX header.
#[derive(Debug, Clone)]
enum Payload {
    /// Exactly what the header claims (or a few bytes if it claims > 64 KiB).
    Exact,
    /// That many bytes fewer.
    Short(usize),
    /// That many bytes more.
    Long(usize),
    /// These bytes, whatever the header says.
    Bytes(Vec<u8>),
}

/// The pieces of one IDX file, valid or not.
#[derive(Debug, Clone)]
struct IdxSpec {
    magic: [u8; 4],
    dims: Vec<u32>,
    payload: Payload,
    fill: u8,
    /// Cut the finished file at this position.
    cut: Option<Index>,
}

/// The largest element payload built; bigger claims get a short payload.
const MAX_PAYLOAD: u128 = 1 << 16;

impl IdxSpec {
    fn build(&self) -> Vec<u8> {
        let mut v = self.magic.to_vec();
        for d in &self.dims {
            v.extend_from_slice(&d.to_be_bytes());
        }
        let claimed: u128 = self.dims.iter().map(|&d| u128::from(d)).product();
        let len = |extra: i64| -> usize {
            if claimed <= MAX_PAYLOAD {
                (claimed as i64 + extra).max(0) as usize
            } else {
                (extra.unsigned_abs() as usize) * 3
            }
        };
        let n = match &self.payload {
            Payload::Exact => len(0),
            Payload::Short(k) => len(-(*k as i64)),
            Payload::Long(k) => len(*k as i64),
            Payload::Bytes(b) => {
                v.extend_from_slice(b);
                0
            }
        };
        v.extend((0..n).map(|i| (usize::from(self.fill) + i * 37 + i / 7) as u8));
        if let Some(cut) = &self.cut {
            v.truncate(cut.index(v.len() + 1));
        }
        v
    }
}

fn idx_dim() -> impl Strategy<Value = u32> {
    prop_oneof![
        2 => Just(0),
        12 => 1u32..5,
        4 => 1u32..30,
        1 => Just(u32::MAX),
        1 => Just(u32::MAX - 1),
        1 => Just(1 << 31),
        1 => Just(1 << 16),
        1 => any::<u32>(),
    ]
}

fn idx_spec(magic: [u8; 4], other: [u8; 4]) -> impl Strategy<Value = IdxSpec> {
    let want_dims = usize::from(magic[3]);
    let magic = prop_oneof![
        30 => Just(magic),
        1 => Just(other),
        1 => any::<u8>().prop_map(move |t| [0, 0, t, want_dims as u8]),
        1 => any::<u8>().prop_map(|d| [0, 0, 8, d]),
        1 => any::<[u8; 4]>(),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(a, b)| [0x1f, 0x8b, a, b]),
    ];
    let dims = prop_oneof![
        16 => vec(idx_dim(), want_dims),
        1 => vec(idx_dim(), 0..5),
    ];
    let payload = prop_oneof![
        20 => Just(Payload::Exact),
        2 => (1usize..5).prop_map(Payload::Short),
        2 => (1usize..5).prop_map(Payload::Long),
        1 => vec(any::<u8>(), 0..40).prop_map(Payload::Bytes),
    ];
    (
        magic,
        dims,
        payload,
        any::<u8>(),
        prop::option::weighted(0.05, any::<Index>()),
    )
        .prop_map(|(magic, dims, payload, fill, cut)| IdxSpec {
            magic,
            dims,
            payload,
            fill,
            cut,
        })
}

/// An image file and a label file built from specs; usually with the same
/// image and label counts.
fn idx_pair() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    (
        idx_spec(IMAGES_MAGIC, LABELS_MAGIC),
        idx_spec(LABELS_MAGIC, IMAGES_MAGIC),
        prop::bool::weighted(0.85),
    )
        .prop_map(|(images, mut labels, same_count)| {
            if same_count && !images.dims.is_empty() && !labels.dims.is_empty() {
                labels.dims[0] = images.dims[0];
            }
            (images.build(), labels.build())
        })
}

fn idx_images(n: usize, rows: usize, cols: usize, pixels: &[u8]) -> Vec<u8> {
    let mut v = IMAGES_MAGIC.to_vec();
    for d in [n, rows, cols] {
        v.extend_from_slice(&(d as u32).to_be_bytes());
    }
    v.extend_from_slice(pixels);
    v
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut v = LABELS_MAGIC.to_vec();
    v.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    v.extend_from_slice(labels);
    v
}

#[test]
fn idx_arbitrary_bytes_never_panic() {
    fuzz(
        "idx_arbitrary_bytes_never_panic",
        (vec(any::<u8>(), 0..80), vec(any::<u8>(), 0..40)),
        |(images, labels), stats| check_idx(images, labels, stats).map(drop),
    );
}

#[test]
fn idx_structured_headers_never_panic() {
    let stats = fuzz(
        "idx_structured_headers_never_panic",
        idx_pair(),
        |(images, labels), stats| check_idx(images, labels, stats).map(drop),
    );
    if stats.cases.get() >= 1000 {
        assert!(
            stats.ok.get() > 0,
            "the generator never produced a loadable pair"
        );
        assert!(
            stats.ok.get() < stats.cases.get(),
            "the generator never broke a pair"
        );
    }
}

#[test]
fn idx_round_trip_is_exact() {
    let strategy = (1usize..=20, 1usize..=8, 1usize..=8).prop_flat_map(|(n, rows, cols)| {
        (
            Just((n, rows, cols)),
            vec(any::<u8>(), n * rows * cols),
            vec(any::<u8>(), n),
        )
    });
    fuzz(
        "idx_round_trip_is_exact",
        strategy,
        |((n, rows, cols), pixels, labels), stats| {
            let images = idx_images(n, rows, cols, &pixels);
            let label_file = idx_labels(&labels);
            let Some(d) = check_idx(images, label_file, stats)? else {
                return Err(TestCaseError::fail("a valid IDX pair failed to load"));
            };
            prop_assert_eq!((d.len(), d.n_features()), (n, rows * cols));
            let want: Vec<f32> = pixels.iter().map(|&p| f32::from(p) / 255.0).collect();
            prop_assert_eq!(d.features(), &want);
            let want: Vec<u32> = labels.iter().map(|&l| u32::from(l)).collect();
            prop_assert_eq!(d.labels(), &want);
            prop_assert_eq!(
                d.n_classes(),
                usize::from(*labels.iter().max().unwrap()) + 1
            );
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------
// Regressions: literal inputs, each held to the same properties.
// ---------------------------------------------------------------------------

/// Literal edge inputs (and any minimal failing input the fuzzers report,
/// once fixed) run through the same checks as the fuzzed cases.
#[test]
fn regression_inputs_hold_the_properties() {
    let stats = Stats::default();
    let all_options = [
        CsvOptions::default(),
        CsvOptions {
            label_column: LabelColumn::First,
            header: Header::No,
        },
        CsvOptions {
            label_column: LabelColumn::Index(usize::MAX),
            header: Header::Yes,
        },
    ];
    let mut csv_inputs: Vec<String> = [
        "",
        "\u{feff}",
        ",",
        ",\n,",
        "1,0",
        "1,0\n",
        "\u{feff}1,0\r\n2,1\r\n",
        "a,b\n",
        "nan,0\n",
        "1,65535\n",
        "1,65536\n",
        "1,4294967296\n",
        "1e40,0\n",
        "3.4028236e38,0\n",
        "1\u{85}2,0",
        "1,0\r2,1",
        "\u{3000}1,0\u{3000}",
    ]
    .map(String::from)
    .to_vec();
    // Big inputs, beyond what the generators make: long number literals
    // (float parsing must stay linear), a wide row, many short rows.
    let digits = "1".repeat(1 << 20);
    csv_inputs.push(format!("{digits},0\n"));
    csv_inputs.push(format!("0.{digits},0\n1,{digits}\n"));
    csv_inputs.push(format!("1e{digits},0\n"));
    csv_inputs.push(format!("{}0\n", "1,".repeat(100_000)));
    csv_inputs.push("1,0\n".repeat(100_000));
    csv_inputs.push(",".repeat(1 << 20));
    for text in &csv_inputs {
        for options in all_options {
            if let Err(e) = check_csv(text.clone(), options, &stats) {
                let shown: String = text.chars().take(200).collect();
                panic!("CSV {shown:?} ({} bytes) with {options:?}: {e}", text.len());
            }
        }
    }

    let mut huge = IMAGES_MAGIC.to_vec();
    for d in [u32::MAX; 3] {
        huge.extend_from_slice(&d.to_be_bytes());
    }
    let mut huge_labels = LABELS_MAGIC.to_vec();
    huge_labels.extend_from_slice(&u32::MAX.to_be_bytes());
    let idx_inputs: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (vec![], vec![]),
        (huge.clone(), huge_labels.clone()),
        // Zero images of 2^32-1 × 2^32-1 pixels: the payload claim is 0.
        (
            idx_images(0, u32::MAX as usize, u32::MAX as usize, &[]),
            idx_labels(&[]),
        ),
        // 2^32-1 images of 0 pixels, labels claim 2^32-1 bytes.
        (idx_images(u32::MAX as usize, 0, 1, &[]), huge_labels),
        (idx_images(1, 1, 1, &[7]), idx_labels(&[0])),
        (idx_images(1, 1, 1, &[7]), idx_images(1, 1, 1, &[7])),
        (vec![0x1f, 0x8b, 8, 0], idx_labels(&[0])),
    ];
    for (images, labels) in idx_inputs {
        if let Err(e) = check_idx(images.clone(), labels.clone(), &stats) {
            panic!("IDX images {images:?} labels {labels:?}: {e}");
        }
    }
}
