//! The MNIST IDX format: `u8` images with 3 dimensions, `u8` labels with 1.
//!
//! A file is a 4-byte magic number `00 00 TT DD` (`TT` the element type,
//! `DD` the number of dimensions), then `DD` big-endian `u32` sizes, then
//! the elements. Images must have magic `0x00000803`, labels `0x00000801`.

use super::dataset::Dataset;
use super::io::read_file;
use crate::error::Error;
use std::path::Path;

const IMAGES_MAGIC: u32 = 0x0000_0803;
const LABELS_MAGIC: u32 = 0x0000_0801;

/// Reads an IDX image file and an IDX label file (each gunzipped first if
/// its name ends in `.gz`) and parses them with [`parse_idx`]'s rules; the
/// data set is named after the image file and errors name the file at fault.
pub fn load_idx(images: &Path, labels: &Path) -> Result<Dataset, Error> {
    let image_bytes = read_file(images)?;
    let label_bytes = read_file(labels)?;
    let image_name = images.display().to_string();
    parse_idx_named(
        &image_name,
        &image_name,
        &image_bytes,
        &labels.display().to_string(),
        &label_bytes,
    )
}

/// Parses IDX images (magic `0x00000803`: `u8`, dimensions `n, rows, cols`)
/// and labels (magic `0x00000801`: `u8`, dimension `n`) into a data set
/// called `name`, with `rows * cols` features scaled to `[0, 1]` (divided
/// by 255) and `n_classes` = largest label + 1.
///
/// Errors ([`Error::Data`], path `"NAME (images)"` or `"NAME (labels)"`): a
/// wrong magic number (the message gives the value found and expected and
/// hints at swapped or still-compressed files), an element type other than
/// `u8` (`0x08`), a wrong number of dimensions, zero images or an empty
/// image size, a file shorter than its header claims (expected vs found
/// bytes; checked before anything is allocated), trailing bytes after the
/// data, and image and label counts that differ.
pub fn parse_idx(name: &str, images: &[u8], labels: &[u8]) -> Result<Dataset, Error> {
    parse_idx_named(
        name,
        &format!("{name} (images)"),
        images,
        &format!("{name} (labels)"),
        labels,
    )
}

fn parse_idx_named(
    name: &str,
    image_name: &str,
    images: &[u8],
    label_name: &str,
    labels: &[u8],
) -> Result<Dataset, Error> {
    let (image_dims, pixels) = parse_file(image_name, images, IMAGES_MAGIC)?;
    let (label_dims, label_data) = parse_file(label_name, labels, LABELS_MAGIC)?;
    let (n, rows, cols) = (image_dims[0], image_dims[1], image_dims[2]);
    if n != label_dims[0] {
        return Err(Error::Data {
            path: label_name.to_string(),
            message: format!(
                "{} labels but the image file '{image_name}' has {n} images; \
                 the files must come from the same set (e.g. both train or both t10k)",
                label_dims[0]
            ),
        });
    }
    if n == 0 {
        return Err(Error::Data {
            path: image_name.to_string(),
            message: "the file holds 0 images".to_string(),
        });
    }
    if rows == 0 || cols == 0 {
        return Err(Error::Data {
            path: image_name.to_string(),
            message: format!("images are {rows}×{cols} pixels; both sizes must be at least 1"),
        });
    }
    let features: Vec<f32> = pixels.iter().map(|&p| p as f32 / 255.0).collect();
    let labels: Vec<u32> = label_data.iter().map(|&l| l as u32).collect();
    let n_classes = label_data
        .iter()
        .copied()
        .max()
        .map_or(1, |m| m as usize + 1);
    Dataset::new(name, features, labels, (rows * cols) as usize, n_classes)
}

/// Checks one file's header against `magic` and its length against the
/// header, returning the dimensions and the element bytes.
fn parse_file<'a>(name: &str, bytes: &'a [u8], magic: u32) -> Result<(Vec<u64>, &'a [u8]), Error> {
    let err = |message: String| Error::Data {
        path: name.to_string(),
        message,
    };
    let (what, other, want_dims) = if magic == IMAGES_MAGIC {
        ("images", "labels", 3usize)
    } else {
        ("labels", "images", 1usize)
    };
    let swap_hint = format!(
        "is this the {other} file (are the image and label files swapped?), \
         or a file that is still compressed?"
    );
    if bytes.len() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b {
        return Err(err(format!(
            "found gzip magic bytes 1f 8b, expected IDX {what} magic 0x{magic:08x}: the file is \
             still compressed; gunzip it or give it a name ending in .gz"
        )));
    }
    if bytes.len() < 4 {
        return Err(err(format!(
            "the file is {} bytes long, too short for the 4-byte IDX magic number \
             (expected 0x{magic:08x} for {what})",
            bytes.len()
        )));
    }
    let found = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(err(format!(
            "found magic number 0x{found:08x}, expected 0x{magic:08x} (IDX {what}: u8, \
             {want_dims} dimension{}); this is not an IDX file: {swap_hint}",
            if want_dims == 1 { "" } else { "s" }
        )));
    }
    let elem_type = bytes[2];
    if elem_type != 0x08 {
        let type_name = match elem_type {
            0x09 => "i8",
            0x0b => "i16",
            0x0c => "i32",
            0x0d => "f32",
            0x0e => "f64",
            _ => "unknown",
        };
        return Err(err(format!(
            "found magic number 0x{found:08x}: element type 0x{elem_type:02x} ({type_name}) is \
             not supported; only 0x08 (unsigned byte) is, as in MNIST"
        )));
    }
    let dims = bytes[3] as usize;
    if dims != want_dims {
        return Err(err(format!(
            "found magic number 0x{found:08x} ({dims} dimension{}), expected 0x{magic:08x} \
             (IDX {what}: u8, {want_dims} dimension{}); {swap_hint}",
            if dims == 1 { "" } else { "s" },
            if want_dims == 1 { "" } else { "s" }
        )));
    }
    let header_len = 4 + 4 * dims;
    if bytes.len() < header_len {
        return Err(err(format!(
            "truncated header: expected {header_len} bytes (magic and {dims} u32 sizes), \
             found {}",
            bytes.len()
        )));
    }
    let sizes: Vec<u64> = bytes[4..header_len]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as u64)
        .collect();
    // At most three u32 factors: fits in u128, never overflows.
    let expected: u128 = sizes.iter().map(|&s| s as u128).product();
    let found_len = (bytes.len() - header_len) as u128;
    let shape = sizes
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(" × ");
    if found_len < expected {
        return Err(err(format!(
            "truncated: the header claims {shape} = {expected} bytes of data after the \
             {header_len}-byte header, but only {found_len} bytes follow; the file is \
             incomplete (re-download it)"
        )));
    }
    if found_len > expected {
        return Err(err(format!(
            "{} trailing bytes: the header claims {shape} = {expected} bytes of data after the \
             {header_len}-byte header, but {found_len} bytes follow; the file is corrupt or \
             not an IDX {what} file",
            found_len - expected
        )));
    }
    Ok((sizes, &bytes[header_len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn images(n: u32, rows: u32, cols: u32) -> Vec<u8> {
        let mut v = vec![0, 0, 8, 3];
        for d in [n, rows, cols] {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v.extend((0..n * rows * cols).map(|i| (i % 256) as u8));
        v
    }

    fn labels(ls: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, 8, 1];
        v.extend_from_slice(&(ls.len() as u32).to_be_bytes());
        v.extend_from_slice(ls);
        v
    }

    fn data_msg(r: Result<Dataset, Error>) -> String {
        match r {
            Err(e @ Error::Data { .. }) => e.to_string(),
            other => panic!("expected Error::Data, got {other:?}"),
        }
    }

    #[test]
    fn round_trip() {
        let d = parse_idx("m", &images(3, 2, 2), &labels(&[0, 4, 2])).unwrap();
        assert_eq!((d.len(), d.n_features, d.n_classes), (3, 4, 5));
        assert_eq!(
            d.row(1),
            &[4.0 / 255.0, 5.0 / 255.0, 6.0 / 255.0, 7.0 / 255.0]
        );
        assert_eq!(d.labels, vec![0, 4, 2]);
    }

    #[test]
    fn header_errors() {
        let m = data_msg(parse_idx("m", &labels(&[1]), &labels(&[1])));
        assert!(
            m.contains("0x00000801") && m.contains("0x00000803") && m.contains("swapped"),
            "{m}"
        );
        let m = data_msg(parse_idx("m", &[0x1f, 0x8b, 8, 0, 1, 2], &labels(&[1])));
        assert!(m.contains("compressed"), "{m}");
        let mut f32s = images(1, 1, 1);
        f32s[2] = 0x0d;
        let m = data_msg(parse_idx("m", &f32s, &labels(&[1])));
        assert!(m.contains("0x0d") && m.contains("f32"), "{m}");
        let m = data_msg(parse_idx("m", &[0, 0], &labels(&[1])));
        assert!(m.contains("too short"), "{m}");
        let m = data_msg(parse_idx("m", &[0, 0, 8, 3, 0, 0, 0], &labels(&[1])));
        assert!(m.contains("truncated header"), "{m}");
    }

    #[test]
    fn size_errors() {
        let m = data_msg(parse_idx("m", &images(2, 2, 2), &labels(&[1, 2, 3])));
        assert!(m.contains("3 labels") && m.contains("2 images"), "{m}");
        let mut short = images(2, 2, 2);
        short.pop();
        let m = data_msg(parse_idx("m", &short, &labels(&[1, 2])));
        assert!(m.contains("8 bytes") && m.contains("only 7"), "{m}");
        let mut long = images(2, 2, 2);
        long.push(0);
        let m = data_msg(parse_idx("m", &long, &labels(&[1, 2])));
        assert!(m.contains("1 trailing bytes"), "{m}");
        let m = data_msg(parse_idx("m", &images(0, 2, 2), &labels(&[])));
        assert!(m.contains("0 images"), "{m}");
        let m = data_msg(parse_idx("m", &images(2, 0, 2), &labels(&[1, 1])));
        assert!(m.contains("0×2"), "{m}");
    }

    #[test]
    fn huge_claims_error_without_allocating() {
        let mut v = vec![0, 0, 8, 3];
        for d in [u32::MAX, u32::MAX, u32::MAX] {
            v.extend_from_slice(&d.to_be_bytes());
        }
        let mut l = vec![0, 0, 8, 1];
        l.extend_from_slice(&u32::MAX.to_be_bytes());
        let m = data_msg(parse_idx("m", &v, &l));
        assert!(m.contains("truncated"), "{m}");
    }
}
