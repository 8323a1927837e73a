//! Reading files, gunzipping `.gz` ones with a bound on the output size.

use crate::error::Error;
#[cfg(feature = "gzip")]
use std::io::Read;
use std::path::Path;

/// The most bytes a gzip stream may decompress to (2 GiB) before the
/// loaders give up with [`Error::Data`]: a guard against decompression bombs.
pub const MAX_DECOMPRESSED_BYTES: u64 = 2 << 30;

/// Whether `path` ends in `.gz` (any case).
pub(crate) fn is_gz(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"))
}

/// Reads `path` whole, gunzipping it when its name ends in `.gz`.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        context: format!("reading {}", path.display()),
        source,
    })?;
    if is_gz(path) {
        gunzip(&path.display().to_string(), &bytes, MAX_DECOMPRESSED_BYTES)
    } else {
        Ok(bytes)
    }
}

/// Decompresses a (possibly multi-member) gzip stream held in memory,
/// refusing to produce more than `limit` bytes.
#[cfg(feature = "gzip")]
pub(crate) fn gunzip(name: &str, bytes: &[u8], limit: u64) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    let mut decoder = flate2::read::MultiGzDecoder::new(bytes).take(limit.saturating_add(1));
    decoder.read_to_end(&mut out).map_err(|e| Error::Data {
        path: name.to_string(),
        message: format!(
            "not a valid gzip stream ({e}); if the file is not compressed, \
                 remove the .gz suffix from its name"
        ),
    })?;
    if out.len() as u64 > limit {
        return Err(Error::Data {
            path: name.to_string(),
            message: format!(
                "decompresses to more than {limit} bytes, the most fusedmlp loads; \
                 split the data into smaller files"
            ),
        });
    }
    Ok(out)
}

/// Without the `gzip` feature a `.gz` file is refused with a message that
/// says how to read it.
#[cfg(not(feature = "gzip"))]
pub(crate) fn gunzip(name: &str, _bytes: &[u8], _limit: u64) -> Result<Vec<u8>, Error> {
    Err(Error::Data {
        path: name.to_string(),
        message: "is gzip-compressed, and this build of fusedmlp has no `gzip` feature: \
                  enable it (features = [\"gzip\"], on by default) or gunzip the file first"
            .to_string(),
    })
}

#[cfg(all(test, not(feature = "gzip")))]
mod no_gzip_tests {
    use super::*;

    #[test]
    fn gz_files_are_refused_with_a_way_out() {
        let err = gunzip("x.csv.gz", b"\x1f\x8b", 1 << 20).unwrap_err();
        let m = err.to_string();
        assert!(
            m.contains("`gzip` feature") && m.contains("x.csv.gz"),
            "{m}"
        );
    }
}

#[cfg(all(test, feature = "gzip"))]
mod tests {
    use super::*;
    use flate2::{write::GzEncoder, Compression};
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn gunzip_round_trips() {
        let data = b"1,2,3\n4,5,6\n".repeat(100);
        assert_eq!(gunzip("t", &gz(&data), 1 << 20).unwrap(), data);
    }

    #[test]
    fn gunzip_enforces_the_limit() {
        let data = vec![0u8; 10_000];
        let err = gunzip("bomb.gz", &gz(&data), 1000).unwrap_err();
        assert!(matches!(err, Error::Data { .. }), "{err}");
        assert!(err.to_string().contains("more than 1000 bytes"), "{err}");
        assert_eq!(gunzip("ok.gz", &gz(&data), 10_000).unwrap().len(), 10_000);
    }

    #[test]
    fn gunzip_rejects_garbage_and_truncation() {
        let err = gunzip("x.gz", b"plain text, not gzip", 1 << 20).unwrap_err();
        assert!(err.to_string().contains("not a valid gzip stream"), "{err}");
        let full = gz(&b"0123456789".repeat(1000));
        let err = gunzip("cut.gz", &full[..full.len() / 2], 1 << 20).unwrap_err();
        assert!(matches!(err, Error::Data { .. }), "{err}");
    }

    #[test]
    fn gz_suffix_detection() {
        assert!(is_gz(Path::new("a/b.csv.gz")));
        assert!(is_gz(Path::new("B.GZ")));
        assert!(!is_gz(Path::new("b.csv")));
        assert!(!is_gz(Path::new("gz")));
    }
}
