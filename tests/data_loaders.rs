//! The data module through its public API: the embedded digits, synthetic
//! sets, splits, standardisation, and the CSV and IDX loaders with every
//! error they report. Needs no GPU.

use flate2::{write::GzEncoder, Compression};
use fusedmlp::data::{
    self, by_name, load_csv, load_idx, parse_csv, parse_idx, CsvOptions, Dataset, Header,
    LabelColumn, Standardizer,
};
use fusedmlp::Error;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// A temp file removed on drop, unique per process and call.
struct TempFile(PathBuf);

impl TempFile {
    fn new(suffix: &str, bytes: &[u8]) -> TempFile {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "fusedmlp-data-test-{}-{n}{suffix}",
            std::process::id()
        ));
        std::fs::write(&path, bytes).expect("writing temp file");
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn opts(label_column: LabelColumn, header: Header) -> CsvOptions {
    CsvOptions {
        label_column,
        header,
    }
}

/// The message of an `Error::Data`, panicking on anything else.
fn data_error(r: Result<Dataset, Error>) -> String {
    match r {
        Err(e @ Error::Data { .. }) => e.to_string(),
        other => panic!("expected Error::Data, got {other:?}"),
    }
}

fn csv_error(text: &str, options: CsvOptions) -> String {
    data_error(parse_csv("t.csv", text, options))
}

// ---------------------------------------------------------------- digits

#[test]
fn digits_loads() {
    let d = data::digits().unwrap();
    assert_eq!(d.name(), "digits");
    assert_eq!(d.len(), 1797);
    assert_eq!(d.n_features(), 64);
    assert_eq!(d.n_classes(), 10);
    assert_eq!(d.features().len(), 1797 * 64);
    assert!(d.features().iter().all(|&v| (0.0..=1.0).contains(&v)));
    let counts = d.class_counts();
    assert_eq!(counts.iter().sum::<usize>(), 1797);
    assert!(
        counts.iter().all(|&c| (170..=190).contains(&c)),
        "{counts:?}"
    );
    // Pixels are integers 0..=16 scaled by 1/16.
    assert!(d
        .features()
        .iter()
        .all(|&v| (v * 16.0 - (v * 16.0).round()).abs() < 1e-5));
}

// ---------------------------------------------------------------- synthetic

#[test]
fn synthetic_sets_are_seeded_sized_and_balanced() {
    type Gen = Box<dyn Fn(u64) -> Result<Dataset, Error>>;
    let sets: Vec<(&str, Gen, usize, usize)> = vec![
        (
            "spirals",
            Box::new(|s| data::two_spirals(501, 0.2, s)),
            501,
            2,
        ),
        ("moons", Box::new(|s| data::moons(300, 0.1, s)), 300, 2),
        (
            "blobs",
            Box::new(|s| data::blobs(400, 5, 3, 1.0, s)),
            400,
            5,
        ),
        (
            "checkerboard",
            Box::new(|s| data::checkerboard(800, 4, s)),
            800,
            2,
        ),
    ];
    for (name, gen, n, classes) in sets {
        let a = gen(7).unwrap();
        let b = gen(7).unwrap();
        let c = gen(8).unwrap();
        assert_eq!(a, b, "{name}: same seed must give the same set");
        assert_ne!(a.features(), c.features(), "{name}: seeds must differ");
        assert_eq!(a.len(), n, "{name}");
        assert_eq!(a.n_classes(), classes, "{name}");
        assert!(a.features().iter().all(|v| v.is_finite()), "{name}");
        let counts = a.class_counts();
        let fair = n as f64 / classes as f64;
        for &count in &counts {
            assert!(
                (count as f64 - fair).abs() <= 0.15 * fair,
                "{name}: unbalanced {counts:?}"
            );
        }
    }
}

#[test]
fn synthetic_bad_parameters_are_config_errors() {
    assert!(matches!(
        data::two_spirals(0, 0.2, 0),
        Err(Error::Config(_))
    ));
    assert!(matches!(data::moons(10, -1.0, 0), Err(Error::Config(_))));
    assert!(matches!(
        data::blobs(10, 0, 2, 1.0, 0),
        Err(Error::Config(_))
    ));
    assert!(matches!(
        data::checkerboard(10, 0, 0),
        Err(Error::Config(_))
    ));
    assert!(matches!(
        by_name("moons:99999999999999", 0),
        Err(Error::Config(_))
    ));
}

#[test]
fn by_name_forms() {
    assert_eq!(by_name("digits", 0).unwrap().len(), 1797);
    assert_eq!(by_name("spirals", 0).unwrap().len(), 1000);
    assert_eq!(by_name("moons:64", 0).unwrap().len(), 64);
    let blobs = by_name("blobs", 0).unwrap();
    assert_eq!(
        (blobs.len(), blobs.n_classes(), blobs.n_features()),
        (1000, 4, 2)
    );
    assert_eq!(by_name("checkerboard:10", 0).unwrap().len(), 10);
    let csv = TempFile::new(".csv", b"1,2,0\n3,4,1\n");
    let d = by_name(&format!("csv:{}", csv.0.display()), 0).unwrap();
    assert_eq!(d.len(), 2);
    let (images, labels) = idx_pair(&[0, 1, 2]);
    let img = TempFile::new("-images.idx", &images);
    let lab = TempFile::new("-labels.idx", &labels);
    let d = by_name(&format!("idx:{},{}", img.0.display(), lab.0.display()), 0).unwrap();
    assert_eq!(d.len(), 3);
    match by_name("imagenet", 0) {
        Err(Error::Config(m)) => assert!(m.contains("digits") && m.contains("csv:PATH"), "{m}"),
        other => panic!("expected Error::Config, got {other:?}"),
    }
}

// ---------------------------------------------------------------- split, standardizer

#[test]
fn split_sizes_and_determinism() {
    let d = data::moons(200, 0.1, 1).unwrap();
    let (train, val) = d.split(0.2, 5).unwrap();
    assert_eq!((train.len(), val.len()), (160, 40));
    assert_eq!(train.n_features(), 2);
    assert_eq!(val.n_classes(), 2);
    assert_eq!(d.split(0.2, 5).unwrap(), (train.clone(), val.clone()));
    assert_ne!(d.split(0.2, 6).unwrap().0, train);
    let (t, v) = d.split(0.0, 5).unwrap();
    assert_eq!((t.len(), v.len()), (200, 0));
    assert!(v.is_empty());
    let (t, v) = d.split(0.0001, 5).unwrap();
    assert_eq!((t.len(), v.len()), (199, 1));
    let (t, v) = d.split(0.9999, 5).unwrap();
    assert_eq!((t.len(), v.len()), (1, 199));
    for bad in [-0.5, 1.0, 2.0, f64::NAN] {
        assert!(matches!(d.split(bad, 0), Err(Error::Config(_))), "{bad}");
    }
    // Together the halves hold every row exactly once.
    let mut all: Vec<(u32, u32, u32)> = train
        .features()
        .chunks(2)
        .zip(train.labels())
        .chain(val.features().chunks(2).zip(val.labels()))
        .map(|(r, &l)| (r[0].to_bits(), r[1].to_bits(), l))
        .collect();
    let mut orig: Vec<(u32, u32, u32)> = d
        .features()
        .chunks(2)
        .zip(d.labels())
        .map(|(r, &l)| (r[0].to_bits(), r[1].to_bits(), l))
        .collect();
    all.sort();
    orig.sort();
    assert_eq!(all, orig);
}

#[test]
fn standardizer_zero_mean_unit_std() {
    let mut features = Vec::new();
    let mut labels = Vec::new();
    for i in 0..100 {
        features.extend([i as f32 * 3.0 + 10.0, 4.5, (i % 7) as f32 - 100.0]);
        labels.push((i % 2) as u32);
    }
    let d = Dataset::new("s", features, labels, 3, 2).unwrap();
    let (mut train, mut val) = d.split(0.25, 3).unwrap();
    let st = Standardizer::fit(&train);
    assert_eq!(st.std()[1], 1.0, "zero-variance feature gets std 1");
    st.apply(&mut train).unwrap();
    st.apply(&mut val).unwrap();
    for j in 0..3 {
        let col: Vec<f64> = (0..train.len()).map(|i| train.row(i)[j] as f64).collect();
        let mean = col.iter().sum::<f64>() / col.len() as f64;
        let std = (col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / col.len() as f64).sqrt();
        assert!(mean.abs() < 1e-5, "feature {j}: mean {mean}");
        if j == 1 {
            assert!(col.iter().all(|&v| v == 0.0));
        } else {
            assert!((std - 1.0).abs() < 1e-4, "feature {j}: std {std}");
        }
    }
    assert!(val.features().iter().all(|v| v.is_finite()));
    let mut wrong = data::moons(10, 0.1, 0).unwrap();
    assert!(matches!(st.apply(&mut wrong), Err(Error::Shape { .. })));
}

// ---------------------------------------------------------------- CSV happy paths

#[test]
fn csv_header_modes() {
    let with_header = "x1,x2,label\n0.5,1.5,1\n2.5,3.5,0\n";
    let auto = parse_csv("h", with_header, CsvOptions::default()).unwrap();
    assert_eq!(auto.len(), 2);
    assert_eq!(auto.features(), vec![0.5, 1.5, 2.5, 3.5]);
    assert_eq!(auto.labels(), vec![1, 0]);
    assert_eq!(auto.n_classes(), 2);
    let yes = parse_csv("h", with_header, opts(LabelColumn::Last, Header::Yes)).unwrap();
    assert_eq!(yes, auto);
    let m = csv_error(with_header, opts(LabelColumn::Last, Header::No));
    assert!(m.contains("line 1, column 1: 'x1' is not a number"), "{m}");

    let numeric = "1,2,3\n4,5,6\n";
    let no = parse_csv("n", numeric, opts(LabelColumn::Last, Header::No)).unwrap();
    assert_eq!(no.len(), 2);
    assert_eq!(no.n_classes(), 7);
    assert_eq!(
        parse_csv("n", numeric, CsvOptions::default()).unwrap(),
        no,
        "auto: an all-numeric first row is data"
    );
    let yes = parse_csv("n", numeric, opts(LabelColumn::Last, Header::Yes)).unwrap();
    assert_eq!(yes.len(), 1);
    assert_eq!(yes.labels(), vec![6]);
}

#[test]
fn csv_label_columns() {
    let text = " 2 , 0.1, 0.2 \r\n\r\n 0, 0.3 ,0.4\r\n";
    let first = parse_csv("l", text, opts(LabelColumn::First, Header::No)).unwrap();
    assert_eq!(first.labels(), vec![2, 0]);
    assert_eq!(first.features(), vec![0.1, 0.2, 0.3, 0.4]);
    assert_eq!(first.n_classes(), 3);

    let text = "0.1,1,0.2\n0.3,0,0.4\n";
    let mid = parse_csv("l", text, opts(LabelColumn::Index(1), Header::No)).unwrap();
    assert_eq!(mid.labels(), vec![1, 0]);
    assert_eq!(mid.features(), vec![0.1, 0.2, 0.3, 0.4]);

    let text = "0.1,0.2,1\n0.3,0.4,0\n";
    let last = parse_csv("l", text, opts(LabelColumn::Last, Header::No)).unwrap();
    assert_eq!(
        last,
        parse_csv("l", text, opts(LabelColumn::Index(2), Header::No)).unwrap()
    );
    assert_eq!(last.features(), vec![0.1, 0.2, 0.3, 0.4]);
}

#[test]
fn csv_files_plain_and_gzipped() {
    let text = b"a,b,c\n1,2,0\n3,4,1\n5,6,2\n";
    let plain = TempFile::new(".csv", text);
    let d = load_csv(&plain.0, CsvOptions::default()).unwrap();
    assert_eq!((d.len(), d.n_features(), d.n_classes()), (3, 2, 3));
    assert_eq!(d.name(), plain.0.display().to_string().as_str());
    let gz = TempFile::new(".csv.gz", &gzip(text));
    let dz = load_csv(&gz.0, CsvOptions::default()).unwrap();
    assert_eq!(dz.features(), d.features());
    assert_eq!(dz.labels(), d.labels());
}

#[test]
fn csv_file_errors_name_the_file() {
    let missing = std::env::temp_dir().join("fusedmlp-data-test-no-such-file.csv");
    match load_csv(&missing, CsvOptions::default()) {
        Err(Error::Io { context, .. }) => {
            assert!(
                context.contains(&missing.display().to_string()),
                "{context}"
            )
        }
        other => panic!("expected Error::Io, got {other:?}"),
    }
    let bad = TempFile::new(".csv", b"1,2,0\n3,x,1\n");
    let m = data_error(load_csv(&bad.0, CsvOptions::default()));
    assert!(
        m.contains(&bad.0.display().to_string()) && m.contains("line 2"),
        "{m}"
    );
    let latin1 = TempFile::new(".csv", b"1,2,0\n3,\xe94,1\n");
    let m = data_error(load_csv(&latin1.0, CsvOptions::default()));
    assert!(
        m.contains("UTF-8") && m.contains("byte offset 8") && m.contains("line 2"),
        "{m}"
    );
    let not_gz = TempFile::new(".csv.gz", b"1,2,0\n");
    let m = data_error(load_csv(&not_gz.0, CsvOptions::default()));
    assert!(m.contains("gzip"), "{m}");
}

// ---------------------------------------------------------------- CSV errors

#[test]
fn csv_ragged_rows() {
    let m = csv_error("1,2,3,0\n1,2,3,1\n\n# \n", CsvOptions::default());
    assert!(
        m.contains("line 4 has 1 cell, expected 4 (as in line 1)"),
        "{m}"
    );
    let m = csv_error(
        "1,2,3,0\n1,2,3,1\n1,2,3,1\n1,2,3,1\n1,2,3,1\n1,2,3,1\n1,2,3,4,5\n",
        CsvOptions::default(),
    );
    assert!(
        m.contains("line 7 has 5 cells, expected 4 (as in line 1)"),
        "{m}"
    );
    let m = csv_error("h1,h2,h3\n1,2\n", CsvOptions::default());
    assert!(m.contains("line 2 has 2 cells, expected 3"), "{m}");
}

#[test]
fn csv_non_numeric_cells() {
    let m = csv_error("1,2,0\n4,5,1\n7,abc,0\n", CsvOptions::default());
    assert!(m.contains("line 3, column 2: 'abc' is not a number"), "{m}");
    let m = csv_error("1,2,0\n4, ,1\n", CsvOptions::default());
    assert!(m.contains("line 2, column 2") && m.contains("empty"), "{m}");
}

#[test]
fn csv_non_finite_features() {
    for bad in ["NaN", "nan", "inf", "-inf", "Infinity", "3e38000"] {
        let m = csv_error(&format!("1,2,0\n4,{bad},1\n"), CsvOptions::default());
        assert!(
            m.contains("line 2, column 2") && m.contains("finite"),
            "{bad}: {m}"
        );
    }
}

#[test]
fn csv_bad_labels() {
    for bad in ["1.5", "-1", "cat", "NaN", "inf", "-0.5", "1e9"] {
        let m = csv_error(&format!("1,2,0\n4,5,{bad}\n"), CsvOptions::default());
        assert!(m.contains("line 2, column 3: label"), "{bad}: {m}");
    }
    let m = csv_error("cat,1,2\n", opts(LabelColumn::First, Header::No));
    assert!(
        m.contains("line 1, column 1: label 'cat' is not a number"),
        "{m}"
    );
    // Integer-valued floats are fine.
    let d = parse_csv("t", "1,2,1.0\n", CsvOptions::default()).unwrap();
    assert_eq!(d.labels(), vec![1]);
}

#[test]
fn csv_empty_and_header_only() {
    for text in ["", "\n\n", "   \r\n\t\n"] {
        let m = csv_error(text, CsvOptions::default());
        assert!(m.contains("no data rows"), "{text:?}: {m}");
    }
    // The message says why the line was taken for a header, in words a
    // command-line user can act on (no library type names).
    let m = csv_error("a,b,label\n", CsvOptions::default());
    assert!(m.contains("no data rows") && m.contains("line 1"), "{m}");
    assert!(
        m.contains("non-numeric cell") && !m.contains("Header::"),
        "{m}"
    );
    let m = csv_error("\n1,2,3\n", opts(LabelColumn::Last, Header::Yes));
    assert!(m.contains("no data rows") && m.contains("line 2"), "{m}");
}

#[test]
fn csv_label_column_out_of_range() {
    let m = csv_error("1,2,0\n", opts(LabelColumn::Index(3), Header::No));
    assert!(
        m.contains("label column index 3") && m.contains("line 1"),
        "{m}"
    );
    assert!(m.contains("0..=2"), "{m}");
    let m = csv_error("1\n2\n", CsvOptions::default());
    assert!(m.contains("line 1 has 1 cell"), "{m}");
}

#[test]
fn csv_wide_input_is_linear() {
    // 200k cells on one line followed by a ragged one: no blow-up, fast.
    let start = Instant::now();
    let mut text = "0,".repeat(200_000);
    text.push_str("1\n0,1\n");
    let m = csv_error(&text, CsvOptions::default());
    assert!(m.contains("line 2 has 2 cells, expected 200001"), "{m}");
    assert!(start.elapsed().as_secs() < 5);
}

// ---------------------------------------------------------------- IDX

fn idx_header(magic: [u8; 4], dims: &[u32]) -> Vec<u8> {
    let mut v = magic.to_vec();
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v
}

/// Valid 2×3 images (pixel value = image * 6 + position) and the labels.
fn idx_pair(labels: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let n = labels.len() as u32;
    let mut images = idx_header([0, 0, 8, 3], &[n, 2, 3]);
    images.extend((0..n * 6).map(|i| (i * 10 % 256) as u8));
    let mut l = idx_header([0, 0, 8, 1], &[n]);
    l.extend_from_slice(labels);
    (images, l)
}

#[test]
fn idx_round_trip() {
    let (images, labels) = idx_pair(&[3, 0, 1, 3]);
    let d = parse_idx("mini", &images, &labels).unwrap();
    assert_eq!(d.name(), "mini");
    assert_eq!((d.len(), d.n_features(), d.n_classes()), (4, 6, 4));
    assert_eq!(d.labels(), vec![3, 0, 1, 3]);
    for (i, &v) in d.features().iter().enumerate() {
        let want = ((i * 10) % 256) as f32 / 255.0;
        assert_eq!(v, want, "pixel {i}");
    }
    assert!(d.features().iter().all(|&v| (0.0..=1.0).contains(&v)));
}

#[test]
fn idx_files_plain_and_gzipped() {
    let (images, labels) = idx_pair(&[1, 0, 2]);
    let img = TempFile::new("-images-idx3-ubyte", &images);
    let lab = TempFile::new("-labels-idx1-ubyte.gz", &gzip(&labels));
    let d = load_idx(&img.0, &lab.0).unwrap();
    assert_eq!(
        d,
        parse_idx(&img.0.display().to_string(), &images, &labels).unwrap()
    );
    let img_gz = TempFile::new("-images-idx3-ubyte.gz", &gzip(&images));
    assert_eq!(
        load_idx(&img_gz.0, &lab.0).unwrap().features(),
        d.features()
    );

    let missing = std::env::temp_dir().join("fusedmlp-data-test-missing-labels.idx");
    match load_idx(&img.0, &missing) {
        Err(Error::Io { context, .. }) => {
            assert!(
                context.contains(&missing.display().to_string()),
                "{context}"
            )
        }
        other => panic!("expected Error::Io, got {other:?}"),
    }
    // A compressed file without the .gz name is spotted.
    let hidden_gz = TempFile::new("-images-idx3-ubyte", &gzip(&images));
    let m = data_error(load_idx(&hidden_gz.0, &lab.0));
    assert!(
        m.contains("compressed") && m.contains(&hidden_gz.0.display().to_string()),
        "{m}"
    );
}

#[test]
fn idx_wrong_magic() {
    let (images, labels) = idx_pair(&[0, 1]);
    // Swapped files.
    let m = data_error(parse_idx("m", &labels, &images));
    assert!(m.contains("found magic number 0x00000801"), "{m}");
    assert!(m.contains("expected 0x00000803"), "{m}");
    assert!(m.contains("swapped") && m.contains("compressed"), "{m}");
    // Not an IDX file at all.
    let m = data_error(parse_idx("m", b"P5\n28 28\n255\n....", &labels));
    assert!(
        m.contains("0x50350a32") && m.contains("expected 0x00000803"),
        "{m}"
    );
    // Labels with the image magic.
    let mut bad_labels = labels.clone();
    bad_labels[3] = 3;
    let m = data_error(parse_idx("m", &images, &bad_labels));
    assert!(
        m.contains("(labels)") && m.contains("expected 0x00000801"),
        "{m}"
    );
    // Too short for a magic number.
    let m = data_error(parse_idx("m", &[0, 0, 8], &labels));
    assert!(m.contains("3 bytes"), "{m}");
}

#[test]
fn idx_wrong_type() {
    let (mut images, labels) = idx_pair(&[0, 1]);
    images[2] = 0x0d;
    let m = data_error(parse_idx("m", &images, &labels));
    assert!(m.contains("0x0d") && m.contains("0x08"), "{m}");
    let (images, mut labels) = idx_pair(&[0, 1]);
    labels[2] = 0x0c;
    let m = data_error(parse_idx("m", &images, &labels));
    assert!(m.contains("(labels)") && m.contains("0x0c"), "{m}");
}

#[test]
fn idx_mismatched_counts() {
    let (images, _) = idx_pair(&[0, 1, 2]);
    let (_, labels) = idx_pair(&[0, 1]);
    let m = data_error(parse_idx("m", &images, &labels));
    assert!(m.contains("2 labels") && m.contains("3 images"), "{m}");
}

#[test]
fn idx_truncated_and_trailing() {
    let (images, labels) = idx_pair(&[0, 1, 2]);
    let m = data_error(parse_idx("m", &images[..images.len() - 5], &labels));
    assert!(
        m.contains("truncated") && m.contains("18 bytes") && m.contains("only 13"),
        "{m}"
    );
    let m = data_error(parse_idx("m", &images, &labels[..labels.len() - 1]));
    assert!(
        m.contains("(labels)") && m.contains("3 bytes") && m.contains("only 2"),
        "{m}"
    );
    let m = data_error(parse_idx("m", &images[..10], &labels));
    assert!(m.contains("truncated header"), "{m}");
    let mut long = images.clone();
    long.extend_from_slice(b"junk");
    let m = data_error(parse_idx("m", &long, &labels));
    assert!(m.contains("4 trailing bytes"), "{m}");
}

#[test]
fn idx_huge_claimed_count_errors_quickly() {
    let start = Instant::now();
    // 2^32 - 1 images of 28×28 claimed, 16-byte file: must not allocate.
    let images = idx_header([0, 0, 8, 3], &[u32::MAX, 28, 28]);
    let mut labels = idx_header([0, 0, 8, 1], &[u32::MAX]);
    labels.push(1);
    let m = data_error(parse_idx("m", &images, &labels));
    assert!(m.contains("truncated") && m.contains("only 0 bytes"), "{m}");
    // Every dimension at its maximum: the product does not overflow.
    let images = idx_header([0, 0, 8, 3], &[u32::MAX, u32::MAX, u32::MAX]);
    let m = data_error(parse_idx("m", &images, &labels));
    assert!(m.contains("truncated"), "{m}");
    assert!(start.elapsed().as_secs() < 2);
}

#[test]
fn idx_empty_sets() {
    let (images, labels) = idx_pair(&[]);
    let m = data_error(parse_idx("m", &images, &labels));
    assert!(m.contains("0 images"), "{m}");
}
